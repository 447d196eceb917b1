"""Builders shared by the risk unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal

from services.risk.domain.decision import Applicant
from services.risk.domain.features import Features
from services.risk.domain.statements import StatementTransaction

AS_OF = date(2026, 11, 29)  # window: Nov 2025 .. Oct 2026
TODAY = AS_OF
_ids = itertools.count(1)


def tx(
    day: date,
    amount_minor: int,
    *,
    type: str = "PIX",
    description: str = "",
    counterparty: str = "",
    account_id: str = "acc-1",
    transaction_id: str | None = None,
) -> StatementTransaction:
    return StatementTransaction(
        account_id=account_id,
        transaction_id=transaction_id or f"t{next(_ids)}",
        booked_at=datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC),
        amount_minor=amount_minor,
        currency="BRL",
        type=type,
        description=description,
        counterparty=counterparty,
    )


def window_month_starts() -> list[date]:
    """First day of each month of the 12-month window before AS_OF's month."""
    return [date(2025, 11, 1)] + [date(2026, m, 1) for m in range(1, 11)] + [date(2025, 12, 1)]


def monthly(day_of_month: int) -> list[date]:
    return sorted(d.replace(day=day_of_month) for d in window_month_starts())


def salaried_history(salary: int = 500_000, rent: int = 150_000) -> list[StatementTransaction]:
    """A steady salary on the 5th and rent by boleto to the same landlord on the 10th."""
    out: list[StatementTransaction] = []
    for d in monthly(5):
        out.append(tx(d, salary, type="FOLHA_PAGAMENTO", counterparty="ACME LTDA"))
    for d in monthly(10):
        out.append(tx(d, -rent, type="BOLETO", counterparty="Imobiliária Sol"))
    return out


def good_features(**changes: object) -> Features:
    base: dict[str, object] = {
        "months_of_history": 12,
        "monthly_income_minor": 600_000,
        "income_stability": Decimal("0.9500"),
        "recurring_obligations_minor": 120_000,
        "obligations_to_income": Decimal("0.2000"),
        "balance_volatility": Decimal("0.3000"),
        "days_in_overdraft": 0,
        "gambling_share": Decimal("0.0000"),
        "transaction_count": 300,
    }
    base.update(changes)
    return Features(**base)  # type: ignore[arg-type]


def good_applicant(**changes: object) -> Applicant:
    base: dict[str, object] = {
        "birth_date": date(1990, 5, 17),
        "cpf_status": "REGULAR",
        "kyc_status": "APPROVED",
        "bureau_score": 800,
        "bureau_negative_records": 0,
    }
    base.update(changes)
    return Applicant(**base)  # type: ignore[arg-type]
