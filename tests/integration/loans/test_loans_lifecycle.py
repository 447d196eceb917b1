"""A loan's whole life through the real stack, with the loans clock advanced:
simulate → apply → approve → fund → pay one → miss one → charges accrue →
pay off early, checking the ledger (balances and VerifyLedger) after each step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date
from zoneinfo import ZoneInfo

import grpc
import pytest
from temporalio.client import Client

from devstack.stack import Stack
from fintech.loans.v1 import loans_pb2
from services.ledger.domain import chart
from services.loans.domain.charges import default_interest_for, fine_for
from services.loans.workflows import ACCRUAL_WORKFLOW
from tests.integration.loans.loans_it_support import (
    Borrower,
    LedgerClient,
    LoansClient,
    rpc_error,
    set_clock_offset,
)

pytestmark = pytest.mark.integration

PRINCIPAL = 3_000_00
TERM = 6
LATE_DAYS = 10
TOP_UP = 10_000_00
SYSTEM = {
    "funding": f"accounts/{chart.LOAN_FUNDING.id}",
    "iof": f"accounts/{chart.IOF_PAYABLE.id}",
    "fees": f"accounts/{chart.FEE_REVENUE.id}",
    "interest": f"accounts/{chart.INTEREST_INCOME.id}",
    "penalties": f"accounts/{chart.PENALTY_INCOME.id}",
}
FUNDED = loans_pb2.LOAN_STATE_FUNDED


def credits(ledger: LedgerClient) -> dict[str, int]:
    return {k: ledger.net_credit(v) for k, v in SYSTEM.items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def assert_ledger_ok(ledger: LedgerClient) -> None:
    verdict = ledger.verify()
    assert verdict.ok, list(verdict.discrepancies)[:5]


async def run_accrual(stack: Stack) -> int:
    """One run of the daily accrual, now (the cron one runs at 04:00 UTC)."""
    client = await Client.connect(stack.infra.temporal_address)
    result: int = await client.execute_workflow(
        ACCRUAL_WORKFLOW, id=f"test-accrual-{uuid.uuid4()}", task_queue="loans"
    )
    return result


async def test_full_life_cycle(
    stack: Stack, borrower: Borrower, loans: LoansClient, backoffice: LoansClient,
    ledger: LedgerClient, clock: None,
) -> None:  # fmt: skip
    wallet = ledger.wallet(borrower.user)
    ledger.top_up(wallet, TOP_UP)
    system0 = credits(ledger)
    wallet0 = ledger.net_credit(wallet)

    # -- simulate and apply (idempotent by key, and by the quote itself)
    q = loans.simulate(PRINCIPAL, TERM)
    key = uuid.uuid4().hex
    applied = loans.create(q.name, key=key)
    assert applied.state in (loans_pb2.LOAN_STATE_APPLIED, loans_pb2.LOAN_STATE_APPROVED,
                             loans_pb2.LOAN_STATE_FUNDING, FUNDED)  # fmt: skip
    assert loans.create(q.name, key=key).name == applied.name
    assert loans.create(q.name).name == applied.name  # the quote already has its loan

    # -- decision and funding (the workflow)
    loan = loans.wait_state(applied.name, {FUNDED})
    assert loan.approved_principal.minor_units == PRINCIPAL
    assert loan.risk_decision.startswith("decisions/")
    financed = q.financed_amount.minor_units
    receivable = loan.receivable_account
    assert ledger.net_debit(receivable) == financed
    assert ledger.net_credit(wallet) - wallet0 == PRINCIPAL  # financed IOF: all reaches the wallet
    moved = delta(credits(ledger), system0)
    assert moved["iof"] == q.iof.minor_units and moved["fees"] == q.fees.minor_units
    assert moved["funding"] == 0  # the funding source passes the money through
    assert len(loan.installments) == TERM
    assert loan.outstanding_principal.minor_units == financed
    assert_ledger_ok(ledger)

    # -- pay the first installment on its due date
    today0 = date.fromisoformat(q.schedule[0].due_date)
    funded_on = _funded_on(loan)
    first = loan.installments[0]
    # Two days before it is due the customer is reminded (once).
    set_clock_offset(stack, (today0 - funded_on).days - 2)
    await run_accrual(stack)
    soon = [e for e in backoffice.events(loan.name) if e.event_type == "loan.installment_due_soon"]
    assert [e.detail for e in soon] == [f"installment 1 due {first.due_date}"]
    set_clock_offset(stack, (today0 - funded_on).days)
    before = credits(ledger)
    paid = loans.pay(loan.name, first.amount.minor_units)
    assert paid.penalties.minor_units == 0
    assert paid.interest.minor_units == first.interest.minor_units
    assert paid.principal.minor_units == first.amortization.minor_units
    assert list(paid.installment_numbers) == [1]
    assert paid.loan.installments[0].state == loans_pb2.INSTALLMENT_STATE_PAID
    assert ledger.net_debit(receivable) == financed - first.amortization.minor_units
    assert delta(credits(ledger), before)["interest"] == first.interest.minor_units
    assert_ledger_ok(ledger)

    # -- miss the second: LATE_DAYS later the daily accrual has charged it
    second = loan.installments[1]
    late_day = date.fromisoformat(second.due_date).toordinal() + LATE_DAYS
    set_clock_offset(stack, late_day - funded_on.toordinal())
    before = credits(ledger)
    assert await run_accrual(stack) >= 1
    loan = loans.get(loan.name)
    inst = loan.installments[1]
    assert inst.state == loans_pb2.INSTALLMENT_STATE_OVERDUE
    assert inst.days_past_due == LATE_DAYS == loan.days_past_due
    assert loan.delinquency_bucket == loans_pb2.DELINQUENCY_BUCKET_DPD_1_30
    fine = fine_for(second.amount.minor_units)
    mora = default_interest_for(second.amount.minor_units, LATE_DAYS)
    assert (inst.fine.minor_units, inst.default_interest.minor_units) == (fine, mora)
    charged = financed - first.amortization.minor_units + fine + mora
    assert ledger.net_debit(receivable) == charged
    # This loan's charges, transfer by transfer (other loans may accrue too).
    accrued = [e for e in backoffice.events(loan.name) if e.event_type == "loan.charges_accrued"]
    transfers = [ledger.transfer(t) for e in accrued for t in e.ledger_transfers]
    assert {(t.debit_account, t.credit_account) for t in transfers} == {
        (receivable, SYSTEM["penalties"])
    }
    assert sum(t.amount.minor_units for t in transfers) == fine + mora
    assert delta(credits(ledger), before)["penalties"] >= fine + mora
    # Restart-safe: running the same day again charges nothing more.
    await run_accrual(stack)
    assert ledger.net_debit(receivable) == charged
    assert_ledger_ok(ledger)

    # -- a partial payment: the charges first, then the installment's interest
    partial = loans.pay(loan.name, fine + mora + 10_00)
    assert partial.penalties.minor_units == fine + mora
    assert (partial.interest.minor_units, partial.principal.minor_units) == (10_00, 0)
    assert ledger.net_debit(receivable) == charged - fine - mora
    assert partial.loan.installments[1].outstanding_amount.minor_units == (
        second.amount.minor_units - 10_00
    )
    assert_ledger_ok(ledger)

    # -- pay off early: overdue in full, future interest waived
    pq = loans.payoff_quote(loan.name)
    assert pq.penalties.minor_units == 0
    assert pq.interest_discount.minor_units > 0
    assert pq.principal.minor_units == financed - first.amortization.minor_units
    wallet_before = ledger.net_credit(wallet)
    off = loans.pay(loan.name, payoff=True)
    assert off.amount.minor_units == pq.payoff_amount.minor_units
    assert off.interest_discount.minor_units == pq.interest_discount.minor_units
    assert off.loan.state == loans_pb2.LOAN_STATE_PAID
    assert wallet_before - ledger.net_credit(wallet) == pq.payoff_amount.minor_units
    assert ledger.net_debit(receivable) == 0
    assert_ledger_ok(ledger)

    # -- the backoffice history tells the whole story, in order
    history = backoffice.events(loan.name)
    kinds = [e.event_type for e in history]
    for expected in ("loan.applied", "loan.approved", "loan.funding_started", "loan.funded",
                     "loan.payment_received", "loan.charges_accrued", "loan.installment_overdue",
                     "loan.paid_off"):  # fmt: skip
        assert expected in kinds, (expected, kinds)
    assert kinds.index("loan.applied") < kinds.index("loan.funded") < kinds.index("loan.paid_off")
    funded_event = history[kinds.index("loan.funded")]
    assert funded_event.ledger_transfers and funded_event.actor == "system"
    assert history[-1].state == loans_pb2.LOAN_STATE_PAID
    # The history is the backoffice's; the customer reads the loan and payments.
    denied = rpc_error(lambda: loans.events(loan.name))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert backoffice.get(loan.name).state == loans_pb2.LOAN_STATE_PAID

    # Payments, newest first, one per page.
    names: list[str] = []
    token = ""
    for _ in range(10):
        page = loans.stub.ListLoanPayments(
            loans_pb2.ListLoanPaymentsRequest(parent=loan.name, page_size=1, page_token=token),
            metadata=loans.tokens.metadata(),
        )
        names += [p.name for p in page.loan_payments]
        token = page.next_page_token
        if not token:
            break
    assert names == [off.name, partial.name, paid.name]
    listed = loans.stub.ListLoans(
        loans_pb2.ListLoansRequest(state=loans_pb2.LOAN_STATE_PAID, page_size=100),
        metadata=loans.tokens.metadata(),
    )
    assert loan.name in [x.name for x in listed.loans]
    assert all(x.user == borrower.user for x in listed.loans)


def _funded_on(loan: loans_pb2.Loan) -> date:
    """The funding day in São Paulo (offset 0: the clock was not moved before)."""
    moment = loan.fund_time.ToDatetime(tzinfo=UTC)
    return moment.astimezone(ZoneInfo("America/Sao_Paulo")).date()
