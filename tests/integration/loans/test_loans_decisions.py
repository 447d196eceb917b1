"""Risk's decision on a loan: a counter-offer accepted, cancelled or expired (by
the loans clock), a decline with reasons, and a declined customer refused at
simulation.

Simulations use the band cached in Redis while the loan decision always asks
risk afresh. Seeding that cache with a wider band than risk would give is how
these tests make a quote that the real decision then reduces or declines (the
same happens in production when a customer's situation changes between the
simulation and the application).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import grpc
import pytest
import redis
from temporalio.client import Client

from devstack.stack import Stack
from fintech.loans.v1 import loans_pb2
from services.loans import terms, wire
from services.loans.domain.schedule import MIN_FIRST_DUE_DAYS, FeePolicy, QuoteTerms, quote
from services.loans.risk_gateway import (
    BAND_CACHE_PREFIX,
    BAND_CACHE_SECONDS,
    LOCAL_CACHE_SECONDS,
)
from services.loans.service import workflow_id
from tests.integration.loans.loans_it_support import (
    Borrower,
    LedgerClient,
    LoansClient,
    admin_sql,
    prepare_borrower,
    receivable_id_of,
    rpc_error,
    run_accrual,
    set_clock_offset,
)
from tests.integration.risk.risk_it_cpfs import DECLINED_CPFS

pytestmark = pytest.mark.integration

ABOVE_ANY_BAND = 60_000_00  # the best band lends R$ 50.000,00 at most
OFFERED = loans_pb2.LOAN_STATE_OFFERED
Seed = Callable[[str], None]
REASON = re.compile(r"[A-Z][A-Z_]+: \S")  # "CODE: description"


@pytest.fixture
def wide_band(stack: Stack) -> Iterator[Seed]:
    """Seed a borrower's cached band (R$ 1M limit at 2.29% a.m.); removed afterwards."""
    client = redis.Redis.from_url(stack.infra.redis_url)
    seeded: list[str] = []

    def seed(user_id: str) -> None:
        band = {
            "outcome": "APPROVED",
            "band": "B",
            "monthly_rate": "0.0229",
            "max_amount_minor": 1_000_000_00,
            "decision": "",
            "reasons": [],
        }
        client.set(BAND_CACHE_PREFIX + user_id, json.dumps(band), ex=BAND_CACHE_SECONDS)
        seeded.append(user_id)
        time.sleep(LOCAL_CACHE_SECONDS + 0.2)  # loans' in-process copy has expired

    yield seed
    for user_id in seeded:
        client.delete(BAND_CACHE_PREFIX + user_id)
    client.close()
    if seeded:
        time.sleep(LOCAL_CACHE_SECONDS + 0.2)  # nor does the seeded band linger


def _fresh_for(stored: QuoteTerms, day: date) -> QuoteTerms:
    """The domain's own quote of the same contract disbursed on `day`, with the
    stored first due date (the oracle for re-dated terms)."""
    return quote(
        principal=stored.principal,
        term_months=stored.term_months,
        system=stored.system,
        monthly_rate=stored.monthly_rate,
        disbursement_date=day,
        first_due_date=stored.first_due_date,
        iof_mode=stored.iof_mode,
        fees=FeePolicy(),
    )


def _pay_off(loans: LoansClient, ledger: LedgerClient, borrower: Borrower, name: str) -> None:
    """Pay the loan off, so later tests start with no open loan."""
    ledger.top_up(ledger.wallet(borrower.user), loans.payoff_quote(name).payoff_amount.minor_units)
    assert loans.pay(name, payoff=True).loan.state == loans_pb2.LOAN_STATE_PAID


def test_counter_offer_accepted_is_funded_with_the_lower_amount(
    borrower: Borrower, loans: LoansClient, ledger: LedgerClient, wide_band: Seed
) -> None:
    wide_band(borrower.user_id)
    q = loans.simulate(ABOVE_ANY_BAND, 12)
    loan = loans.wait_state(loans.create(q.name).name, {OFFERED})
    offered = loan.approved_principal.minor_units
    assert 0 < offered < ABOVE_ANY_BAND
    assert loan.terms.principal.minor_units == offered  # terms recomputed for the offer
    assert loan.terms.monthly_rate == q.monthly_rate
    assert loan.terms.financed_amount.minor_units < q.financed_amount.minor_units
    # Nothing moved before the customer accepts.
    receivable = f"accounts/{receivable_id_of(loan.name.removeprefix('loans/'))}"
    assert ledger.net_debit_or_none(receivable) is None

    accepted = loans.stub.AcceptLoanOffer(
        loans_pb2.AcceptLoanOfferRequest(name=loan.name),
        metadata=loans.tokens.metadata(uuid.uuid4().hex),
    )
    assert accepted.state in (loans_pb2.LOAN_STATE_FUNDING, loans_pb2.LOAN_STATE_FUNDED)
    funded = loans.wait_state(loan.name, {loans_pb2.LOAN_STATE_FUNDED})
    assert ledger.net_debit(funded.receivable_account) == loan.terms.financed_amount.minor_units

    _pay_off(loans, ledger, borrower, loan.name)


def test_counter_offer_accepted_days_later_is_dated_the_day_it_is_accepted(
    stack: Stack,
    borrower: Borrower,
    loans: LoansClient,
    backoffice: LoansClient,
    ledger: LedgerClient,
    wide_band: Seed,
    clock: None,
) -> None:
    wide_band(borrower.user_id)
    q = loans.simulate(ABOVE_ANY_BAND, 12)
    loan = loans.wait_state(loans.create(q.name).name, {OFFERED})
    loan_id = loan.name.removeprefix(wire.LOAN_PREFIX)
    [(quoted_day,)] = admin_sql(
        stack,
        "SELECT disbursement_date FROM loans.quotes WHERE id = %s",
        (q.name.removeprefix(wire.QUOTE_PREFIX),),
    )
    [(stored,)] = admin_sql(stack, "SELECT terms FROM loans.loans WHERE id = %s", (loan_id,))
    offered = terms.from_json(stored)
    assert offered.disbursement_date == quoted_day

    # Accepted three days later by the loans clock (within the offer's 7 days).
    set_clock_offset(stack, 3)
    accepted = loans.stub.AcceptLoanOffer(
        loans_pb2.AcceptLoanOfferRequest(name=loan.name),
        metadata=loans.tokens.metadata(uuid.uuid4().hex),
    )
    day = quoted_day + timedelta(days=3)
    # The default first due date (a month out) is still in policy: it stays.
    assert (offered.first_due_date - day).days >= MIN_FIRST_DUE_DAYS
    expected = _fresh_for(offered, day)
    assert expected.iof < offered.iof  # three days fewer to every due date
    want = wire.quote_message(expected, user_id=borrower.user_id)
    assert accepted.terms == want  # the customer is shown what they accepted
    funded = loans.wait_state(loan.name, {loans_pb2.LOAN_STATE_FUNDED})
    assert funded.terms == want
    assert [(i.due_date, i.amount, i.interest, i.amortization) for i in funded.installments] == [
        (r.due_date, r.amount, r.interest, r.amortization) for r in want.schedule
    ]
    [(dated,)] = admin_sql(
        stack, "SELECT terms->>'disbursement_date' FROM loans.loans WHERE id = %s", (loan_id,)
    )
    assert dated == day.isoformat()

    # The ledger's funding chain carries the recomputed amounts to the centavo.
    history = backoffice.events(loan.name)
    [funded_event] = [e for e in history if e.event_type == "loan.funded"]
    moved = {t.code: t for t in map(ledger.transfer, funded_event.ledger_transfers)}
    assert moved["loan.funding"].amount.minor_units == expected.financed_amount
    assert moved["loan.disbursement"].amount.minor_units == expected.disbursed_amount
    assert moved["loan.iof"].amount.minor_units == expected.iof
    assert moved["loan.fee"].amount.minor_units == expected.fees
    assert ledger.net_debit(funded.receivable_account) == expected.financed_amount

    _pay_off(loans, ledger, borrower, loan.name)


def test_counter_offer_cancelled_moves_nothing(
    borrower: Borrower, loans: LoansClient, ledger: LedgerClient, wide_band: Seed
) -> None:
    wide_band(borrower.user_id)
    q = loans.simulate(ABOVE_ANY_BAND, 6)
    loan = loans.wait_state(loans.create(q.name).name, {OFFERED})
    cancelled = loans.stub.CancelLoan(
        loans_pb2.CancelLoanRequest(name=loan.name),
        metadata=loans.tokens.metadata(uuid.uuid4().hex),
    )
    assert cancelled.state == loans_pb2.LOAN_STATE_CANCELLED
    assert cancelled.HasField("close_time")
    # Accepting afterwards is refused with a reason; so is cancelling a funded loan.
    err = rpc_error(
        lambda: loans.stub.AcceptLoanOffer(
            loans_pb2.AcceptLoanOfferRequest(name=loan.name),
            metadata=loans.tokens.metadata(uuid.uuid4().hex),
        )
    )
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_OFFER")
    receivable = f"accounts/{receivable_id_of(loan.name.removeprefix('loans/'))}"
    assert ledger.net_debit_or_none(receivable) is None


async def test_counter_offer_expires_after_7_days_of_the_loans_clock(
    stack: Stack,
    borrower: Borrower,
    loans: LoansClient,
    backoffice: LoansClient,
    ledger: LedgerClient,
    wide_band: Seed,
    clock: None,
) -> None:
    wide_band(borrower.user_id)
    q = loans.simulate(ABOVE_ANY_BAND, 6)
    loan = loans.wait_state(loans.create(q.name).name, {OFFERED})

    def accept() -> loans_pb2.Loan:
        reply: loans_pb2.Loan = loans.stub.AcceptLoanOffer(
            loans_pb2.AcceptLoanOfferRequest(name=loan.name),
            metadata=loans.tokens.metadata(uuid.uuid4().hex),
        )
        return reply

    # Six days on, the daily job leaves the offer open.
    set_clock_offset(stack, 6)
    await run_accrual(stack)
    assert loans.get(loan.name).state == OFFERED

    # Eight days on it has lapsed: refused with its reason even before the job
    # runs, then the job cancels it and ends the loan's workflow.
    set_clock_offset(stack, 8)
    err = rpc_error(accept)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "OFFER_EXPIRED")
    assert loans.get(loan.name).state == OFFERED
    await run_accrual(stack)
    expired = loans.get(loan.name)
    assert expired.state == loans_pb2.LOAN_STATE_CANCELLED
    assert expired.HasField("close_time")
    cancelled = [e for e in backoffice.events(loan.name) if e.event_type == "loan.cancelled"]
    assert [e.detail for e in cancelled] == ["OFFER_EXPIRED"]
    err = rpc_error(accept)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "OFFER_EXPIRED")
    temporal = await Client.connect(stack.infra.temporal_address)
    handle = temporal.get_workflow_handle(workflow_id(uuid.UUID(loan.name.removeprefix("loans/"))))
    assert await asyncio.wait_for(handle.result(), timeout=30) == "CANCELLED"
    receivable = f"accounts/{receivable_id_of(loan.name.removeprefix('loans/'))}"
    assert ledger.net_debit_or_none(receivable) is None  # nothing ever moved


@pytest.fixture(scope="module")
def gambler(stack: Stack) -> Borrower:
    return prepare_borrower(stack, DECLINED_CPFS["gambler"])


def test_declined_customer_is_refused_at_simulation(stack: Stack, gambler: Borrower) -> None:
    client = LoansClient(stack, gambler.user_id, ["user"])
    try:
        err = rpc_error(lambda: client.simulate(1_000_00, 12))
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CREDIT_DECLINED")
        # The customer is told why: risk's reason codes with their descriptions.
        assert REASON.search(err.message.split("now:", 1)[1]), err.message
    finally:
        client.close()


def test_decline_at_decision_carries_risks_reasons(
    stack: Stack, gambler: Borrower, wide_band: Seed
) -> None:
    wide_band(gambler.user_id)
    client = LoansClient(stack, gambler.user_id, ["user"])
    try:
        q = client.simulate(1_000_00, 12)
        loan = client.wait_state(client.create(q.name).name, {loans_pb2.LOAN_STATE_DECLINED})
        assert loan.decline_reasons
        assert all(REASON.match(r) for r in loan.decline_reasons), loan.decline_reasons
        assert loan.risk_decision.startswith("decisions/")
        assert loan.HasField("close_time")
    finally:
        client.close()


def test_a_quote_approved_outright_on_a_later_day_is_dated_the_day_it_is_funded(
    stack: Stack,
    borrower: Borrower,
    loans: LoansClient,
    backoffice: LoansClient,
    ledger: LedgerClient,
    clock: None,
) -> None:
    """A quote made just before midnight (it lives 30 minutes) and approved in
    full just after: funding dates the contract by the day the money moves.
    The loans test clock moves in whole days, so the test lengthens the stored
    quote's life instead of waiting for midnight."""
    q = loans.simulate(1_000_00, 6)
    quote_id = q.name.removeprefix(wire.QUOTE_PREFIX)
    admin_sql(
        stack,
        "UPDATE loans.quotes SET expire_at = now() + interval '2 days' WHERE id = %s",
        (quote_id,),
    )
    [(quoted_day,)] = admin_sql(
        stack, "SELECT disbursement_date FROM loans.quotes WHERE id = %s", (quote_id,)
    )
    set_clock_offset(stack, 1)
    loan = loans.create(q.name)
    funded = loans.wait_state(loan.name, {loans_pb2.LOAN_STATE_FUNDED})

    day = quoted_day + timedelta(days=1)
    quoted = terms.from_json(
        admin_sql(stack, "SELECT terms FROM loans.quotes WHERE id = %s", (quote_id,))[0][0]
    )
    expected = _fresh_for(quoted, day)  # its first due date is still in policy: kept
    assert expected.iof < quoted.iof  # one day fewer to every due date
    want = wire.quote_message(expected, user_id=borrower.user_id)
    assert funded.terms == want
    assert [(i.due_date, i.amount, i.interest, i.amortization) for i in funded.installments] == [
        (r.due_date, r.amount, r.interest, r.amortization) for r in want.schedule
    ]
    history = backoffice.events(loan.name)
    [funded_event] = [e for e in history if e.event_type == "loan.funded"]
    moved = {t.code: t for t in map(ledger.transfer, funded_event.ledger_transfers)}
    assert moved["loan.iof"].amount.minor_units == expected.iof
    assert moved["loan.funding"].amount.minor_units == expected.financed_amount
    assert ledger.net_debit(funded.receivable_account) == expected.financed_amount

    _pay_off(loans, ledger, borrower, loan.name)
