"""QuoteTerms <-> JSON (the `terms` column of quotes and loans). Rates stay strings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from services.loans.domain.schedule import IofMode, QuoteTerms, Row, System


def to_json(t: QuoteTerms) -> dict[str, Any]:
    return {
        "principal": t.principal,
        "term_months": t.term_months,
        "system": t.system.value,
        "monthly_rate": str(t.monthly_rate),
        "disbursement_date": t.disbursement_date.isoformat(),
        "first_due_date": t.first_due_date.isoformat(),
        "iof_mode": t.iof_mode.value,
        "iof": t.iof,
        "fees": t.fees,
        "financed_amount": t.financed_amount,
        "disbursed_amount": t.disbursed_amount,
        "total_payable": t.total_payable,
        "cet_monthly": str(t.cet_monthly),
        "cet_annual": str(t.cet_annual),
        # Compact rows: [number, due, amount, interest, amortization, balance, iof].
        "schedule": [
            [
                r.number,
                r.due_date.isoformat(),
                r.amount,
                r.interest,
                r.amortization,
                r.balance,
                r.iof,
            ]
            for r in t.schedule
        ],
    }


def from_json(d: dict[str, Any]) -> QuoteTerms:
    return QuoteTerms(
        principal=int(d["principal"]),
        term_months=int(d["term_months"]),
        system=System(d["system"]),
        monthly_rate=Decimal(d["monthly_rate"]),
        disbursement_date=date.fromisoformat(d["disbursement_date"]),
        first_due_date=date.fromisoformat(d["first_due_date"]),
        iof_mode=IofMode(d["iof_mode"]),
        iof=int(d["iof"]),
        fees=int(d["fees"]),
        financed_amount=int(d["financed_amount"]),
        disbursed_amount=int(d["disbursed_amount"]),
        total_payable=int(d["total_payable"]),
        cet_monthly=Decimal(d["cet_monthly"]),
        cet_annual=Decimal(d["cet_annual"]),
        schedule=tuple(
            Row(int(n), date.fromisoformat(due), int(a), int(i), int(am), int(b), int(iof))
            for n, due, a, i, am, b, iof in d["schedule"]
        ),
    )
