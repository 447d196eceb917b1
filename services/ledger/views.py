"""Read-side rows of the ledger (accounts, entries) as plain values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.ledger.domain.chart import (
    CREDIT_NORMAL_KINDS,
    SYSTEM_CURRENCY,
    WALLET_DISPLAY_NAME,
    WALLET_LEDGER_CODE,
)
from services.ledger.domain.model import (
    Balances,
    credit_normal_available,
    debit_normal_available,
)

ACCOUNT_COLUMNS = (
    "id, owner, currency, kind, ledger_code, display_name, debits_must_not_exceed_credits,"
    " credits_must_not_exceed_debits, closed_at, debits_posted, credits_posted,"
    " debits_pending, credits_pending, created_at"
)


@dataclass(frozen=True, slots=True)
class AccountView:
    id: uuid.UUID
    owner: str
    currency: str
    kind: str
    ledger_code: str
    display_name: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    closed_at: datetime | None
    balances: Balances
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AccountView:
        return cls(
            id=row.id,
            owner=row.owner,
            currency=row.currency,
            kind=row.kind,
            ledger_code=row.ledger_code,
            display_name=row.display_name,
            debits_must_not_exceed_credits=row.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=row.credits_must_not_exceed_debits,
            closed_at=row.closed_at,
            balances=Balances(
                int(row.debits_posted),
                int(row.credits_posted),
                int(row.debits_pending),
                int(row.credits_pending),
            ),
            created_at=row.created_at,
        )

    @classmethod
    def wallet(cls, account_id: uuid.UUID, owner: str, created_at: datetime) -> AccountView:
        return cls(
            id=account_id,
            owner=owner,
            currency=SYSTEM_CURRENCY,
            kind="USER_WALLET",
            ledger_code=WALLET_LEDGER_CODE,
            display_name=WALLET_DISPLAY_NAME,
            debits_must_not_exceed_credits=True,
            credits_must_not_exceed_debits=False,
            closed_at=None,
            balances=Balances(),
            created_at=created_at,
        )


def credit_normal(kind: str) -> bool:
    return kind in CREDIT_NORMAL_KINDS


def available(kind: str, balances: Balances) -> int:
    """What the owner can spend now, in the account's normal direction."""
    if credit_normal(kind):
        return credit_normal_available(balances)
    return debit_normal_available(balances)


def posted_balance(kind: str, balances: Balances) -> int:
    """The signed posted balance in the normal direction (statement running balance)."""
    if credit_normal(kind):
        return balances.credits_posted - balances.debits_posted
    return balances.debits_posted - balances.credits_posted


@dataclass(frozen=True, slots=True)
class EntryView:
    account_id: uuid.UUID
    transfer_id: uuid.UUID
    counterparty_id: uuid.UUID
    side: str
    amount: int
    state: str
    balances: Balances
    created_at: datetime
    code: str
    description: str
    external_reference: str
    journal_seq: int
