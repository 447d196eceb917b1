"""The writer's SQL: lock/load, then one bulk statement per table.

Every function takes the caller's connection; nothing here commits. The
number of statements per batch is fixed (docs/LEDGER.md "Why a single
batching writer"): 4 reads + at most 8 writes, whatever the batch size. The
reads are one pipeline (one round trip), plus a second only when a batch
posts, voids or expires reservations whose accounts its transfers did not
name.

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

from services.ledger.domain.journal import JournalRecord
from services.ledger.domain.model import (
    AccountState,
    Applied,
    Balances,
    TransferKind,
    TransferRecord,
    TransferState,
)
from services.ledger.writer_connection import PgConnection
from services.platform.idempotency import RECORD_COLUMNS, Record

TRANSFER_COLUMNS = (
    "id, kind, debit_account_id, credit_account_id, amount, currency, pending_id,"
    " timeout_seconds, expires_at, linked, code, external_reference, description, state,"
    " posted_amount, created_at, resolved_at, journal_seq"
)

_HEAD = "SELECT seq, hash, now(), current_schema() FROM journal_head WHERE id FOR UPDATE"
# Ids the batch names plus, when asked, the oldest due reservations.
_TRANSFERS = (
    f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ANY(%s::uuid[])"
    f" UNION SELECT * FROM (SELECT {TRANSFER_COLUMNS} FROM transfers"
    "  WHERE state = 'PENDING' AND expires_at <= now() ORDER BY expires_at LIMIT %s) d"
)
# Locks in id order: two ledger processes never deadlock on accounts.
_ACCOUNTS = (
    "SELECT id, currency, debits_must_not_exceed_credits, credits_must_not_exceed_debits,"
    " closed_at IS NOT NULL, debits_posted, credits_posted, debits_pending,"
    " credits_pending FROM accounts WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE"
)
_RESOLVE_TRANSFERS = (
    "UPDATE transfers t SET state = u.state, posted_amount = u.posted, resolved_at = u.resolved"
    " FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::timestamptz[])"
    " AS u(id, state, posted, resolved)"
    " WHERE t.id = u.id AND t.state = 'PENDING'"
)
_UPDATE_ACCOUNTS = (
    "UPDATE accounts a SET debits_posted = u.dp, credits_posted = u.cp,"
    " debits_pending = u.dpe, credits_pending = u.cpe"
    " FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
    " AS u(id, dp, cp, dpe, cpe)"
    " WHERE a.id = u.id"
)
_SET_HEAD = "UPDATE journal_head SET seq = %s, hash = %s WHERE id"
# The platform's outbox row shape (services.platform.outbox), written in bulk by
# COPY; the NOTIFY wakes this schema's relay at commit.
_NOTIFY_OUTBOX = "SELECT pg_notify('outbox_' || current_schema(), '')"

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
_IDEMPOTENCY = (
    "SELECT i.subject, i.method, i.key, i.request_hash, i.response, i.response_type"
    " FROM idempotency_keys i JOIN unnest(%s::text[], %s::text[], %s::text[])"
    " AS u(subject, method, key) USING (subject, method, key)"
)
_COPY_IDEMPOTENCY = (
    f"COPY idempotency_keys ({', '.join(RECORD_COLUMNS)}) FROM STDIN (FORMAT BINARY)",
    ("text", "text", "text", "bytea", "bytea", "text"),
)

Scope = tuple[str, str, str]  # (subject, method, key)
StoredRecords = dict[Scope, tuple[bytes, bytes, str]]  # (request_hash, response, type)


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: bytes
    now: datetime
    schema: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a batch reads under the journal-head lock, in one round trip."""

    head: Head
    records: StoredRecords
    transfers: dict[uuid.UUID, TransferRecord]
    # Locked: the accounts the batch's transfers name (not those of the
    # reservations it resolves that they do not name: `lock_accounts`).
    accounts: dict[uuid.UUID, AccountState]


async def load_batch(
    conn: PgConnection,
    scopes: Sequence[Scope],
    transfer_ids: Iterable[uuid.UUID],
    account_ids: Iterable[uuid.UUID],
    *,
    due_limit: int,
) -> Loaded:
    """Lock the journal head, then read the calls' stored idempotency records
    and the transfers the batch names (plus, when asked, the oldest due
    reservations), and lock the accounts it names: one pipeline, executed in
    this order by the server, so the reads happen under the lock."""
    assert 0 <= due_limit <= 10_000
    account_ids = set(account_ids)
    async with conn.pipeline():
        head_cur = await conn.execute(_HEAD)
        records_cur = (
            await conn.execute(
                _IDEMPOTENCY,
                ([s[0] for s in scopes], [s[1] for s in scopes], [s[2] for s in scopes]),
            )
            if scopes
            else None
        )
        transfers_cur = await conn.execute(_TRANSFERS, (array_literal(transfer_ids), due_limit))
        accounts_cur = (
            await conn.execute(_ACCOUNTS, (array_literal(account_ids),)) if account_ids else None
        )
    seq, head_hash, now, schema = await _one(head_cur)
    records: StoredRecords = {
        (subject, method, key): (bytes(request_hash), bytes(response), response_type)
        for subject, method, key, request_hash, response, response_type in (
            await records_cur.fetchall() if records_cur is not None else []
        )
    }
    transfers = {row[0]: transfer_from_row(row) for row in await transfers_cur.fetchall()}
    accounts = _accounts(await accounts_cur.fetchall()) if accounts_cur is not None else {}
    return Loaded(Head(int(seq), bytes(head_hash), now, schema), records, transfers, accounts)


async def _one(cur: Any) -> tuple[Any, ...]:
    row = await cur.fetchone()
    assert row is not None
    return tuple(row)


def transfer_from_row(row: Sequence[Any]) -> TransferRecord:
    """A transfers row in TRANSFER_COLUMNS order (a tuple or an SQLAlchemy Row)."""
    (
        id_, kind, debit, credit, amount, currency, pending_id, timeout_seconds, expires_at,
        linked, code, external_reference, description, state, posted_amount, created_at,
        resolved_at, journal_seq,
    ) = row  # fmt: skip
    return TransferRecord(
        id=id_,
        kind=TransferKind(kind),
        debit_account=debit,
        credit_account=credit,
        amount=int(amount),
        currency=currency,
        pending_id=pending_id,
        timeout_seconds=int(timeout_seconds),
        expires_at=expires_at,
        linked=bool(linked),
        code=code,
        external_reference=external_reference,
        description=description,
        state=TransferState(state),
        posted_amount=None if posted_amount is None else int(posted_amount),
        created_at=created_at,
        resolved_at=resolved_at,
        journal_seq=int(journal_seq),
    )


async def lock_accounts(
    conn: PgConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountState]:
    """Lock more accounts: those of the reservations a batch resolves that its
    transfers did not name. Locking in two steps cannot deadlock: every writer
    holds the journal head first, and nothing else locks two accounts."""
    # No sort here: ORDER BY id ... FOR UPDATE locks the rows in id order.
    cur = await conn.execute(_ACCOUNTS, (array_literal(set(ids)),))
    return _accounts(await cur.fetchall())


def _accounts(rows: Iterable[Sequence[Any]]) -> dict[uuid.UUID, AccountState]:
    return {
        id_: AccountState(
            id=id_,
            currency=currency,
            debits_must_not_exceed_credits=dmnec,
            credits_must_not_exceed_debits=cmned,
            closed=closed,
            balances=Balances(int(dp), int(cp), int(dpe), int(cpe)),
        )
        for id_, currency, dmnec, cmned, closed, dp, cp, dpe, cpe in rows
    }


def array_literal(values: Iterable[object]) -> str:
    """A Postgres array literal for values whose text form needs no quoting
    (uuids, ints): one `str.join` instead of psycopg's per-element adaptation."""
    return "{" + ",".join(map(str, values)) + "}"


async def _copy(
    conn: PgConnection, spec: tuple[str, tuple[str, ...]], rows: Iterable[tuple[Any, ...]]
) -> None:
    statement, types = spec
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            await copy.write_row(row)


async def write_batch(
    conn: PgConnection,
    applied: Sequence[Applied],
    accounts: Sequence[AccountState],
    journal: Sequence[JournalRecord],
    outbox: Sequence[tuple[uuid.UUID, str, str, bytes, str]],
    records: Sequence[Record],
) -> None:
    """Bulk-write one batch: transfers, entries, journal, outbox events and RPC
    idempotency records by COPY (one each), then the resolutions, balances,
    journal head and the relay's NOTIFY as one pipeline."""
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
    if outbox:
        await _copy(
            conn,
            _COPY_OUTBOX,
            (
                (event_id, subject, kind, payload, _JSONB_VERSION + headers.encode())
                for event_id, subject, kind, payload, headers in outbox
            ),
        )
    if records:
        # A key already stored fails the batch (its primary key).
        await _copy(conn, _COPY_IDEMPOTENCY, records)
    if not (resolved or accounts or journal or outbox):
        return
    async with conn.pipeline():
        resolve_cur = (
            await conn.execute(
                _RESOLVE_TRANSFERS,
                (
                    [t.id for t in resolved],
                    [t.state.value for t in resolved],
                    [t.posted_amount for t in resolved],
                    [t.resolved_at for t in resolved],
                ),
            )
            if resolved
            else None
        )
        if accounts:
            await conn.execute(
                _UPDATE_ACCOUNTS,
                (
                    array_literal(a.id for a in accounts),
                    array_literal(a.balances.debits_posted for a in accounts),
                    array_literal(a.balances.credits_posted for a in accounts),
                    array_literal(a.balances.debits_pending for a in accounts),
                    array_literal(a.balances.credits_pending for a in accounts),
                ),
            )
        if journal:
            await conn.execute(_SET_HEAD, (journal[-1].seq, journal[-1].hash))
        if outbox:
            await conn.execute(_NOTIFY_OUTBOX)
    if resolve_cur is not None:
        # Every resolution found its reservation still PENDING: the engine and
        # the table agree (the journal_head lock serialises writers).
        assert resolve_cur.rowcount == len(resolved), (resolve_cur.rowcount, len(resolved))
