"""The writer's SQL: lock/load, then one bulk statement per table.

Every function takes the caller's connection; nothing here commits. The
number of statements per batch is fixed (docs/LEDGER.md "Why a single
batching writer"): 3 reads + at most 8 writes, whatever the batch size.

Why binary COPY and text array literals rather than `unnest` parameter
arrays: psycopg adapts a Python list parameter element by element in Python
(its array dumper is not in the C extension), which was the largest share of
a 1,000-transfer batch. Binary COPY formats whole rows in psycopg's C
extension, so the INSERTs (transfers, entries, journal, outbox) are COPYs; the
accounts UPDATE and the id lists of the reads still need arrays, which go as
ONE text parameter each (an array literal built with `str.join`, parsed by
Postgres). The resolutions UPDATE (a few rows per batch, nullable and
timestamp columns) keeps list parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection as PgConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.domain.journal import JournalRecord
from services.ledger.domain.model import (
    AccountState,
    Applied,
    Balances,
    TransferKind,
    TransferRecord,
    TransferState,
)
from services.platform.idempotency import RECORD_COLUMNS, Record

TRANSFER_COLUMNS = (
    "id, kind, debit_account_id, credit_account_id, amount, currency, pending_id,"
    " timeout_seconds, expires_at, linked, code, external_reference, description, state,"
    " posted_amount, created_at, resolved_at, journal_seq"
)

_HEAD = text(
    "SELECT seq, hash, now() AS now, current_schema() AS schema"
    " FROM journal_head WHERE id FOR UPDATE"
)
# Ids the batch names plus, when asked, the oldest due reservations.
_TRANSFERS = text(
    f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ANY(CAST(:ids AS uuid[]))"
    f" UNION SELECT * FROM (SELECT {TRANSFER_COLUMNS} FROM transfers"
    "  WHERE state = 'PENDING' AND expires_at <= now() ORDER BY expires_at LIMIT :due) d"
)
# Locks in id order: two ledger processes never deadlock on accounts.
_ACCOUNTS = text(
    "SELECT id, currency, debits_must_not_exceed_credits, credits_must_not_exceed_debits,"
    " closed_at IS NOT NULL AS closed, debits_posted, credits_posted, debits_pending,"
    " credits_pending FROM accounts WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE"
)
_RESOLVE_TRANSFERS = text(
    "UPDATE transfers t SET state = u.state, posted_amount = u.posted, resolved_at = u.resolved"
    " FROM unnest(CAST(:id AS uuid[]), CAST(:state AS text[]), CAST(:posted AS bigint[]),"
    " CAST(:resolved AS timestamptz[])) AS u(id, state, posted, resolved)"
    " WHERE t.id = u.id AND t.state = 'PENDING'"
)
_UPDATE_ACCOUNTS = text(
    "UPDATE accounts a SET debits_posted = u.dp, credits_posted = u.cp,"
    " debits_pending = u.dpe, credits_pending = u.cpe"
    " FROM unnest(CAST(:id AS uuid[]), CAST(:dp AS bigint[]), CAST(:cp AS bigint[]),"
    " CAST(:dpe AS bigint[]), CAST(:cpe AS bigint[])) AS u(id, dp, cp, dpe, cpe)"
    " WHERE a.id = u.id"
)
_SET_HEAD = text("UPDATE journal_head SET seq = :head_seq, hash = :head_hash WHERE id")
# The platform's outbox row shape (services.platform.outbox), written in bulk by
# COPY; the NOTIFY wakes this schema's relay at commit.
_NOTIFY_OUTBOX = text("SELECT pg_notify('outbox_' || current_schema(), '')")

_COPY_TRANSFERS = (
    f"COPY transfers ({TRANSFER_COLUMNS}) FROM STDIN (FORMAT BINARY)",
    (
        "uuid", "text", "uuid", "uuid", "int8", "text", "uuid", "int4", "timestamptz",
        "bool", "text", "text", "text", "text", "int8", "timestamptz", "timestamptz", "int8",
    ),
)  # fmt: skip
_COPY_ENTRIES = (
    "COPY entries (account_id, transfer_id, counterparty_id, journal_seq, side, amount,"
    " posted_delta, pending_delta, state, debits_posted, credits_posted, debits_pending,"
    " credits_pending, created_at) FROM STDIN (FORMAT BINARY)",
    (
        "uuid", "uuid", "uuid", "int8", "text", "int8", "int8", "int8", "text",
        "int8", "int8", "int8", "int8", "timestamptz",
    ),
)  # fmt: skip
_COPY_JOURNAL = (
    "COPY journal (seq, transfer_id, record, prev_hash, hash) FROM STDIN (FORMAT BINARY)",
    ("int8", "uuid", "bytea", "bytea", "bytea"),
)
# headers is jsonb: its binary wire format is a version byte (1) followed by
# the JSON text (jsonb_recv), so the row carries those bytes, sent as bytea
# (psycopg's jsonb dumper would JSON-encode our already encoded string again).
_COPY_OUTBOX = (
    "COPY outbox_events (id, subject, type, payload, headers) FROM STDIN (FORMAT BINARY)",
    ("uuid", "text", "text", "bytea", "bytea"),
)
_JSONB_VERSION = b"\x01"
# RPC idempotency records (services.platform.idempotency) of the calls in a
# batch: read and written under the journal-head lock, so no other writer
# stores one for the same key in between.
_IDEMPOTENCY = text(
    "SELECT i.subject, i.method, i.key, i.request_hash, i.response, i.response_type"
    " FROM idempotency_keys i JOIN unnest(CAST(:subjects AS text[]), CAST(:methods AS text[]),"
    " CAST(:keys AS text[])) AS u(subject, method, key) USING (subject, method, key)"
)
_COPY_IDEMPOTENCY = (
    f"COPY idempotency_keys ({', '.join(RECORD_COLUMNS)}) FROM STDIN (FORMAT BINARY)",
    ("text", "text", "text", "bytea", "bytea", "text"),
)


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: bytes
    now: datetime
    schema: str


async def lock_head(conn: AsyncConnection) -> Head:
    row = (await conn.execute(_HEAD)).one()
    return Head(int(row.seq), bytes(row.hash), row.now, row.schema)


def transfer_from_row(row: Any) -> TransferRecord:
    return TransferRecord(
        id=row.id,
        kind=TransferKind(row.kind),
        debit_account=row.debit_account_id,
        credit_account=row.credit_account_id,
        amount=int(row.amount),
        currency=row.currency,
        pending_id=row.pending_id,
        timeout_seconds=int(row.timeout_seconds),
        expires_at=row.expires_at,
        linked=bool(row.linked),
        code=row.code,
        external_reference=row.external_reference,
        description=row.description,
        state=TransferState(row.state),
        posted_amount=None if row.posted_amount is None else int(row.posted_amount),
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        journal_seq=int(row.journal_seq),
    )


async def load_transfers(
    conn: AsyncConnection, ids: Iterable[uuid.UUID], *, due_limit: int
) -> dict[uuid.UUID, TransferRecord]:
    assert 0 <= due_limit <= 10_000
    rows = (await conn.execute(_TRANSFERS, {"ids": array_literal(ids), "due": due_limit})).all()
    return {row.id: transfer_from_row(row) for row in rows}


async def lock_accounts(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountState]:
    rows = (await conn.execute(_ACCOUNTS, {"ids": array_literal(sorted(set(ids)))})).all()
    return {
        row.id: AccountState(
            id=row.id,
            currency=row.currency,
            debits_must_not_exceed_credits=row.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=row.credits_must_not_exceed_debits,
            closed=row.closed,
            balances=Balances(
                int(row.debits_posted),
                int(row.credits_posted),
                int(row.debits_pending),
                int(row.credits_pending),
            ),
        )
        for row in rows
    }


def array_literal(values: Iterable[object]) -> str:
    """A Postgres array literal for values whose text form needs no quoting
    (uuids, ints): one `str.join` instead of psycopg's per-element adaptation."""
    return "{" + ",".join(map(str, values)) + "}"


async def _driver(conn: AsyncConnection) -> PgConnection[Any]:
    """The psycopg connection under SQLAlchemy's, in the same transaction (for COPY)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, PgConnection), type(driver)
    return driver


async def _copy(
    conn: AsyncConnection, spec: tuple[str, tuple[str, ...]], rows: Iterable[tuple[Any, ...]]
) -> None:
    statement, types = spec
    async with (await _driver(conn)).cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            await copy.write_row(row)


async def write_applied(
    conn: AsyncConnection,
    applied: Sequence[Applied],
    accounts: Sequence[AccountState],
    journal: Sequence[JournalRecord],
) -> None:
    """Bulk-write one batch's effects: transfers, resolutions, entries, balances, journal."""
    assert len(applied) == len(journal)
    created = [a.transfer for a in applied if not a.expiry]
    resolved = [a.resolved for a in applied if a.resolved is not None]
    resolved += [a.transfer for a in applied if a.expiry]
    if created:
        await _copy(
            conn,
            _COPY_TRANSFERS,
            (
                (
                    t.id, t.kind.value, t.debit_account, t.credit_account, t.amount, t.currency,
                    t.pending_id, t.timeout_seconds, t.expires_at, t.linked, t.code,
                    t.external_reference, t.description, t.state.value, t.posted_amount,
                    t.created_at, t.resolved_at, t.journal_seq,
                )
                for t in created
            ),
        )  # fmt: skip
    if resolved:
        result = await conn.execute(
            _RESOLVE_TRANSFERS,
            {
                "id": [t.id for t in resolved],
                "state": [t.state.value for t in resolved],
                "posted": [t.posted_amount for t in resolved],
                "resolved": [t.resolved_at for t in resolved],
            },
        )
        # Every resolution found its reservation still PENDING: the engine and
        # the table agree (the journal_head lock serialises writers).
        assert result.rowcount == len(resolved), (result.rowcount, len(resolved))
    entries = [e for a in applied for e in a.entries]
    if entries:
        await _copy(
            conn,
            _COPY_ENTRIES,
            (
                (
                    e.account_id, e.transfer_id, e.counterparty_id, e.journal_seq, e.side.value,
                    e.amount, e.posted_delta, e.pending_delta, e.state.value,
                    e.balances.debits_posted, e.balances.credits_posted,
                    e.balances.debits_pending, e.balances.credits_pending, e.created_at,
                )
                for e in entries
            ),
        )  # fmt: skip
    if accounts:
        await conn.execute(
            _UPDATE_ACCOUNTS,
            {
                "id": array_literal(a.id for a in accounts),
                "dp": array_literal(a.balances.debits_posted for a in accounts),
                "cp": array_literal(a.balances.credits_posted for a in accounts),
                "dpe": array_literal(a.balances.debits_pending for a in accounts),
                "cpe": array_literal(a.balances.credits_pending for a in accounts),
            },
        )
    if journal:
        await _copy(
            conn,
            _COPY_JOURNAL,
            # The record's transfer id as the UUID the operation already holds
            # (JournalRecord keeps it as text for the hashed record).
            (
                (j.seq, op.transfer.id, j.record, j.prev_hash, j.hash)
                for op, j in zip(applied, journal, strict=True)
            ),
        )
        await conn.execute(_SET_HEAD, {"head_seq": journal[-1].seq, "head_hash": journal[-1].hash})


Scope = tuple[str, str, str]  # (subject, method, key)


async def load_idempotency(
    conn: AsyncConnection, scopes: Sequence[Scope]
) -> dict[Scope, tuple[bytes, bytes, str]]:
    """Stored records by scope: (request_hash, response, response_type)."""
    if not scopes:
        return {}
    rows = await conn.execute(
        _IDEMPOTENCY,
        {
            "subjects": [s[0] for s in scopes],
            "methods": [s[1] for s in scopes],
            "keys": [s[2] for s in scopes],
        },
    )
    return {
        (r.subject, r.method, r.key): (bytes(r.request_hash), bytes(r.response), r.response_type)
        for r in rows
    }


async def insert_idempotency(conn: AsyncConnection, records: Sequence[Record]) -> None:
    """Store the batch's RPC idempotency records (a key already stored fails the batch)."""
    if records:
        await _copy(conn, _COPY_IDEMPOTENCY, records)


async def insert_outbox(
    conn: AsyncConnection,
    rows: Sequence[tuple[uuid.UUID, str, str, bytes, str]],
) -> None:
    """(id, subject, type, envelope bytes, headers JSON) rows: one COPY, one NOTIFY."""
    if not rows:
        return
    await _copy(
        conn,
        _COPY_OUTBOX,
        (
            (event_id, subject, kind, payload, _JSONB_VERSION + headers.encode())
            for event_id, subject, kind, payload, headers in rows
        ),
    )
    await conn.execute(_NOTIFY_OUTBOX)
