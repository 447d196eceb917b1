"""Builders shared by the ledger unit tests (pure domain, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from services.ledger.domain.engine import WorkingSet
from services.ledger.domain.model import AccountState, TransferKind, TransferSpec

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def account(
    *,
    currency: str = "BRL",
    no_overdraft: bool = False,
    no_credit_overrun: bool = False,
    closed: bool = False,
) -> AccountState:
    return AccountState(
        id=uuid.uuid4(),
        currency=currency,
        debits_must_not_exceed_credits=no_overdraft,
        credits_must_not_exceed_debits=no_credit_overrun,
        closed=closed,
    )


def working_set(accounts: Iterable[AccountState], now: datetime = NOW) -> WorkingSet:
    return WorkingSet({a.id: a for a in accounts}, {}, now=now, next_seq=1)


def posted(debit: AccountState, credit: AccountState, amount: int, **kw: object) -> TransferSpec:
    return spec(TransferKind.POSTED, debit.id, credit.id, amount, **kw)


def pending(debit: AccountState, credit: AccountState, amount: int, **kw: object) -> TransferSpec:
    return spec(TransferKind.PENDING, debit.id, credit.id, amount, **kw)


def post(pending_id: uuid.UUID, amount: int = 0, **kw: object) -> TransferSpec:
    return spec(
        TransferKind.POST_PENDING, None, None, amount, pending_id=pending_id, currency="", **kw
    )


def void(pending_id: uuid.UUID, **kw: object) -> TransferSpec:
    return spec(TransferKind.VOID_PENDING, None, None, 0, pending_id=pending_id, currency="", **kw)


def spec(
    kind: TransferKind,
    debit: uuid.UUID | None,
    credit: uuid.UUID | None,
    amount: int,
    **kw: object,
) -> TransferSpec:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "kind": kind,
        "debit_account": debit,
        "credit_account": credit,
        "amount": amount,
        "currency": "BRL",
        "code": "TEST",
    }
    fields.update(kw)
    return TransferSpec(**fields)  # type: ignore[arg-type]
