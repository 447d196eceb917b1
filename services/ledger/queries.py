"""Read-side and account SQL (everything that is not the writer's batch).

Keyset pagination everywhere: tokens carry the last row's sort key, so a
page costs one index range scan however deep it is.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.domain.model import Balances, TransferRecord
from services.ledger.store import TRANSFER_COLUMNS, transfer_from_row
from services.ledger.views import ACCOUNT_COLUMNS, AccountView, EntryView

MAX_PAGE_SIZE = 500
_AFTER_NONE = 2**63 - 1  # keyset start: above every journal_seq / entry id


async def get_account(conn: AsyncConnection, account_id: uuid.UUID) -> AccountView | None:
    row = (
        await conn.execute(
            text(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = :id"),  # noqa: S608 - constant columns
            {"id": account_id},
        )
    ).first()
    return AccountView.from_row(row) if row else None


async def list_accounts(
    conn: AsyncConnection, *, owner: str, kind: str, after: uuid.UUID | None, limit: int
) -> list[AccountView]:
    assert 1 <= limit <= MAX_PAGE_SIZE + 1
    rows = (
        await conn.execute(
            text(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts"  # noqa: S608 - constant column list, values bound
                " WHERE (:owner = '' OR owner = :owner) AND (:kind = '' OR kind = :kind)"
                " AND (CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid))"
                " ORDER BY id LIMIT :limit"
            ),
            {"owner": owner, "kind": kind, "after": after, "limit": limit},
        )
    ).all()
    return [AccountView.from_row(r) for r in rows]


async def insert_account(conn: AsyncConnection, view: AccountView) -> AccountView | None:
    """Insert; None when the id exists already (the caller compares)."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO accounts (id, owner, currency, kind, ledger_code, display_name,"  # noqa: S608 - constant column list, values bound
                " debits_must_not_exceed_credits, credits_must_not_exceed_debits)"
                " VALUES (:id, :owner, :currency, :kind, :code, :display, :dmnec, :cmned)"
                f" ON CONFLICT DO NOTHING RETURNING {ACCOUNT_COLUMNS}"
            ),
            {
                "id": view.id,
                "owner": view.owner,
                "currency": view.currency,
                "kind": view.kind,
                "code": view.ledger_code,
                "display": view.display_name,
                "dmnec": view.debits_must_not_exceed_credits,
                "cmned": view.credits_must_not_exceed_debits,
            },
        )
    ).first()
    return AccountView.from_row(row) if row else None


async def close_account(conn: AsyncConnection, account_id: uuid.UUID) -> AccountView | None:
    """Close when net zero and nothing pending; None when those do not hold.

    One conditional UPDATE: it waits for the writer's row lock and re-checks
    the balances after it, so no transfer can slip in between check and close.
    """
    row = (
        await conn.execute(
            text(
                "UPDATE accounts SET closed_at = now() WHERE id = :id AND closed_at IS NULL"  # noqa: S608 - constant column list, values bound
                " AND debits_posted = credits_posted AND debits_pending = 0"
                f" AND credits_pending = 0 RETURNING {ACCOUNT_COLUMNS}"
            ),
            {"id": account_id},
        )
    ).first()
    return AccountView.from_row(row) if row else None


async def balance_as_of(conn: AsyncConnection, account_id: uuid.UUID, as_of: datetime) -> Balances:
    """The balances after the last entry at or before `as_of` (zero before any)."""
    row = (
        await conn.execute(
            text(
                "SELECT debits_posted, credits_posted, debits_pending, credits_pending"
                " FROM entries WHERE account_id = :id AND created_at <= :as_of"
                " ORDER BY journal_seq DESC LIMIT 1"
            ),
            {"id": account_id, "as_of": as_of},
        )
    ).first()
    if row is None:
        return Balances()
    return Balances(*(int(v) for v in row))


async def list_entries(
    conn: AsyncConnection,
    account_id: uuid.UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    before_seq: int | None,
    limit: int,
) -> list[EntryView]:
    assert 1 <= limit <= MAX_PAGE_SIZE + 1
    rows = (
        await conn.execute(
            text(
                "SELECT e.account_id, e.transfer_id, e.counterparty_id, e.side, e.amount,"
                " e.state, e.debits_posted, e.credits_posted, e.debits_pending,"
                " e.credits_pending, e.created_at, e.journal_seq, t.code, t.description,"
                " t.external_reference FROM entries e JOIN transfers t ON t.id = e.transfer_id"
                " WHERE e.account_id = :id AND e.journal_seq < :before"
                " AND (CAST(:start AS timestamptz) IS NULL OR e.created_at >= :start)"
                " AND (CAST(:end AS timestamptz) IS NULL OR e.created_at < :end)"
                " ORDER BY e.journal_seq DESC LIMIT :limit"
            ),
            {
                "id": account_id,
                "before": before_seq if before_seq is not None else _AFTER_NONE,
                "start": start,
                "end": end,
                "limit": limit,
            },
        )
    ).all()
    return [_entry(r) for r in rows]


def _entry(r: Any) -> EntryView:
    return EntryView(
        account_id=r.account_id,
        transfer_id=r.transfer_id,
        counterparty_id=r.counterparty_id,
        side=r.side,
        amount=int(r.amount),
        state=r.state,
        balances=Balances(
            int(r.debits_posted),
            int(r.credits_posted),
            int(r.debits_pending),
            int(r.credits_pending),
        ),
        created_at=r.created_at,
        code=r.code,
        description=r.description,
        external_reference=r.external_reference,
        journal_seq=int(r.journal_seq),
    )


async def get_transfer(conn: AsyncConnection, transfer_id: uuid.UUID) -> TransferRecord | None:
    row = (
        await conn.execute(
            text(f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = :id"),  # noqa: S608 - constant columns
            {"id": transfer_id},
        )
    ).first()
    return transfer_from_row(row) if row else None


async def list_transfers(
    conn: AsyncConnection,
    *,
    external_reference: str,
    account: uuid.UUID | None,
    state: str,
    before_seq: int | None,
    limit: int,
) -> list[TransferRecord]:
    assert 1 <= limit <= MAX_PAGE_SIZE + 1
    rows = (
        await conn.execute(
            text(
                f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE journal_seq < :before"  # noqa: S608 - constant column list, values bound
                " AND (:ref = '' OR external_reference = :ref)"
                " AND (CAST(:account AS uuid) IS NULL OR debit_account_id = :account"
                "      OR credit_account_id = :account)"
                " AND (:state = '' OR state = :state)"
                " ORDER BY journal_seq DESC LIMIT :limit"
            ),
            {
                "before": before_seq if before_seq is not None else _AFTER_NONE,
                "ref": external_reference,
                "account": account,
                "state": state,
                "limit": limit,
            },
        )
    ).all()
    return [transfer_from_row(r) for r in rows]
