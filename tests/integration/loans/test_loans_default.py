"""More than 90 days past due: DEFAULTED, the receivable moved to the defaulted
book, a new application refused while it lasts, and a payoff still settles it."""

from __future__ import annotations

from datetime import UTC, date
from zoneinfo import ZoneInfo

import grpc
import pytest

from devstack.stack import Stack
from fintech.loans.v1 import loans_pb2
from services.ledger.domain import chart
from tests.integration.loans.loans_it_support import (
    Borrower,
    LedgerClient,
    LoansClient,
    rpc_error,
    run_accrual,
    set_clock_offset,
)

pytestmark = pytest.mark.integration

PRINCIPAL = 1_000_00
DEFAULTED_BOOK = f"accounts/{chart.LOAN_DEFAULTED.id}"


async def test_over_90_days_past_due_defaults(
    stack: Stack,
    borrower: Borrower,
    loans: LoansClient,
    backoffice: LoansClient,
    ledger: LedgerClient,
    clock: None,
) -> None:
    wallet = ledger.wallet(borrower.user)
    q = loans.simulate(PRINCIPAL, 3)
    loan = loans.wait_state(loans.create(q.name).name, {loans_pb2.LOAN_STATE_FUNDED})
    funded_on = loan.fund_time.ToDatetime(tzinfo=UTC).astimezone(ZoneInfo("America/Sao_Paulo"))
    first_due = date.fromisoformat(loan.installments[0].due_date)
    defaulted0 = ledger.net_debit(DEFAULTED_BOOK)

    # 90 days past the first due date: still only in the last bucket.
    set_clock_offset(stack, (first_due - funded_on.date()).days + 90)
    await run_accrual(stack)
    loan = loans.get(loan.name)
    assert loan.state == loans_pb2.LOAN_STATE_FUNDED
    assert loan.days_past_due == 90
    assert loan.delinquency_bucket == loans_pb2.DELINQUENCY_BUCKET_DPD_61_90

    # Day 91: default, and the receivable leaves the performing book whole.
    set_clock_offset(stack, (first_due - funded_on.date()).days + 91)
    await run_accrual(stack)
    loan = loans.get(loan.name)
    assert loan.state == loans_pb2.LOAN_STATE_DEFAULTED
    assert loan.delinquency_bucket == loans_pb2.DELINQUENCY_BUCKET_DPD_90_PLUS
    assert ledger.net_debit(loan.receivable_account) == 0
    # Principal and charges move; contractual interest is income only when paid.
    owed = sum(i.outstanding_amount.minor_units for i in loan.installments)
    interest = sum(i.interest.minor_units for i in loan.installments)  # none paid
    assert ledger.net_debit(DEFAULTED_BOOK) - defaulted0 == owed - interest > PRINCIPAL
    kinds = [e.event_type for e in backoffice.events(loan.name)]
    assert "loan.defaulted" in kinds and "loan.installment_overdue" in kinds

    # While it lasts, no new loan.
    q2 = loans.simulate(PRINCIPAL, 3)
    err = rpc_error(lambda: loans.create(q2.name))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DEFAULTED_LOAN_EXISTS")

    # A payoff settles it; the defaulted book gets its money back.
    pq = loans.payoff_quote(loan.name)
    ledger.top_up(wallet, pq.payoff_amount.minor_units)
    off = loans.pay(loan.name, payoff=True)
    assert off.loan.state == loans_pb2.LOAN_STATE_PAID
    assert ledger.net_debit(DEFAULTED_BOOK) == defaulted0
    verdict = ledger.verify()
    assert verdict.ok, list(verdict.discrepancies)[:5]
