"""The writer's SQL: lock/load, then one bulk statement per table (unnest arrays).

Every function takes the caller's connection; nothing here commits. The
number of statements per batch is fixed (docs/LEDGER.md "Why a single
batching writer"): 3 reads + at most 6 writes, whatever the batch size.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
_INSERT_TRANSFERS = text(
    f"INSERT INTO transfers ({TRANSFER_COLUMNS}) SELECT * FROM unnest("
    " CAST(:id AS uuid[]), CAST(:kind AS text[]), CAST(:debit AS uuid[]),"
    " CAST(:credit AS uuid[]), CAST(:amount AS bigint[]), CAST(:currency AS text[]),"
    " CAST(:pending AS uuid[]), CAST(:timeout AS integer[]), CAST(:expires AS timestamptz[]),"
    " CAST(:linked AS boolean[]), CAST(:code AS text[]), CAST(:ref AS text[]),"
    " CAST(:description AS text[]), CAST(:state AS text[]), CAST(:posted AS bigint[]),"
    " CAST(:created AS timestamptz[]), CAST(:resolved AS timestamptz[]),"
    " CAST(:seq AS bigint[]))"
)
_RESOLVE_TRANSFERS = text(
    "UPDATE transfers t SET state = u.state, posted_amount = u.posted, resolved_at = u.resolved"
    " FROM unnest(CAST(:id AS uuid[]), CAST(:state AS text[]), CAST(:posted AS bigint[]),"
    " CAST(:resolved AS timestamptz[])) AS u(id, state, posted, resolved)"
    " WHERE t.id = u.id AND t.state = 'PENDING'"
)
_INSERT_ENTRIES = text(
    "INSERT INTO entries (account_id, transfer_id, counterparty_id, journal_seq, side, amount,"
    " posted_delta, pending_delta, state, debits_posted, credits_posted, debits_pending,"
    " credits_pending, created_at) SELECT * FROM unnest("
    " CAST(:account AS uuid[]), CAST(:transfer AS uuid[]), CAST(:counterparty AS uuid[]),"
    " CAST(:seq AS bigint[]), CAST(:side AS text[]), CAST(:amount AS bigint[]),"
    " CAST(:posted AS bigint[]), CAST(:pending AS bigint[]), CAST(:state AS text[]),"
    " CAST(:dp AS bigint[]), CAST(:cp AS bigint[]), CAST(:dpe AS bigint[]),"
    " CAST(:cpe AS bigint[]), CAST(:created AS timestamptz[]))"
)
_UPDATE_ACCOUNTS = text(
    "UPDATE accounts a SET debits_posted = u.dp, credits_posted = u.cp,"
    " debits_pending = u.dpe, credits_pending = u.cpe"
    " FROM unnest(CAST(:id AS uuid[]), CAST(:dp AS bigint[]), CAST(:cp AS bigint[]),"
    " CAST(:dpe AS bigint[]), CAST(:cpe AS bigint[])) AS u(id, dp, cp, dpe, cpe)"
    " WHERE a.id = u.id"
)
_APPEND_JOURNAL = text(
    "WITH j AS (INSERT INTO journal (seq, transfer_id, record, prev_hash, hash)"
    " SELECT * FROM unnest(CAST(:seq AS bigint[]), CAST(:transfer AS uuid[]),"
    " CAST(:record AS bytea[]), CAST(:prev AS bytea[]), CAST(:hash AS bytea[])))"
    " UPDATE journal_head SET seq = :head_seq, hash = :head_hash WHERE id"
)
# The platform's outbox row shape (services.platform.outbox), written in bulk;
# the NOTIFY wakes this schema's relay at commit.
_INSERT_OUTBOX = text(
    "WITH o AS (INSERT INTO outbox_events (id, subject, type, payload, headers)"
    " SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:subject AS text[]),"
    " CAST(:type AS text[]), CAST(:payload AS bytea[]), CAST(:headers AS jsonb[])))"
    " SELECT pg_notify('outbox_' || current_schema(), '')"
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
    rows = (await conn.execute(_TRANSFERS, {"ids": list(ids), "due": due_limit})).all()
    return {row.id: transfer_from_row(row) for row in rows}


async def lock_accounts(
    conn: AsyncConnection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountState]:
    rows = (await conn.execute(_ACCOUNTS, {"ids": sorted(set(ids))})).all()
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
        await conn.execute(_INSERT_TRANSFERS, _transfer_columns(created))
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
        await conn.execute(
            _INSERT_ENTRIES,
            {
                "account": [e.account_id for e in entries],
                "transfer": [e.transfer_id for e in entries],
                "counterparty": [e.counterparty_id for e in entries],
                "seq": [e.journal_seq for e in entries],
                "side": [e.side.value for e in entries],
                "amount": [e.amount for e in entries],
                "posted": [e.posted_delta for e in entries],
                "pending": [e.pending_delta for e in entries],
                "state": [e.state.value for e in entries],
                "dp": [e.balances.debits_posted for e in entries],
                "cp": [e.balances.credits_posted for e in entries],
                "dpe": [e.balances.debits_pending for e in entries],
                "cpe": [e.balances.credits_pending for e in entries],
                "created": [e.created_at for e in entries],
            },
        )
    if accounts:
        await conn.execute(
            _UPDATE_ACCOUNTS,
            {
                "id": [a.id for a in accounts],
                "dp": [a.balances.debits_posted for a in accounts],
                "cp": [a.balances.credits_posted for a in accounts],
                "dpe": [a.balances.debits_pending for a in accounts],
                "cpe": [a.balances.credits_pending for a in accounts],
            },
        )
    if journal:
        await conn.execute(
            _APPEND_JOURNAL,
            {
                "seq": [j.seq for j in journal],
                "transfer": [uuid.UUID(j.transfer_id) for j in journal],
                "record": [j.record for j in journal],
                "prev": [j.prev_hash for j in journal],
                "hash": [j.hash for j in journal],
                "head_seq": journal[-1].seq,
                "head_hash": journal[-1].hash,
            },
        )


def _transfer_columns(created: Sequence[TransferRecord]) -> dict[str, list[Any]]:
    return {
        "id": [t.id for t in created],
        "kind": [t.kind.value for t in created],
        "debit": [t.debit_account for t in created],
        "credit": [t.credit_account for t in created],
        "amount": [t.amount for t in created],
        "currency": [t.currency for t in created],
        "pending": [t.pending_id for t in created],
        "timeout": [t.timeout_seconds for t in created],
        "expires": [t.expires_at for t in created],
        "linked": [t.linked for t in created],
        "code": [t.code for t in created],
        "ref": [t.external_reference for t in created],
        "description": [t.description for t in created],
        "state": [t.state.value for t in created],
        "posted": [t.posted_amount for t in created],
        "created": [t.created_at for t in created],
        "resolved": [t.resolved_at for t in created],
        "seq": [t.journal_seq for t in created],
    }


async def insert_outbox(
    conn: AsyncConnection,
    rows: Sequence[tuple[uuid.UUID, str, str, bytes, str]],
) -> None:
    """(id, subject, type, envelope bytes, headers JSON) rows in one statement."""
    if not rows:
        return
    await conn.execute(
        _INSERT_OUTBOX,
        {
            "id": [r[0] for r in rows],
            "subject": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "payload": [r[3] for r in rows],
            "headers": [r[4] for r in rows],
        },
    )
