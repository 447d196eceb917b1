"""A loan with a PIX key: funded to the wallet, then paid out through payments'
CreateServicePayment (the PSP simulator plays the other bank); loans follows the
payout's outcome from payments' events, once."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest

from devstack.stack import Stack
from fintech.events.v1 import payments_events_pb2
from fintech.loans.v1 import loans_pb2
from fintech.payments.v1 import payments_pb2, payments_pb2_grpc
from services.loans.payout_consumer import CONSUMERS
from tests.integration.loans.loans_it_support import (
    CALL_TIMEOUT_S,
    Borrower,
    LedgerClient,
    LoansClient,
    Tokens,
    admin_sql,
    rpc_error,
)
from tests.integration.payments.payments_it_support import Psp
from tests.support.events import publish_events

pytestmark = pytest.mark.integration

PRINCIPAL = 1_200_00
PIX_KEY = "ana@example.com"  # in the PSP simulator's DICT (simulators/psp)
TERMINAL = {
    payments_pb2.PAYMENT_STATE_SETTLED,
    payments_pb2.PAYMENT_STATE_FAILED,
    payments_pb2.PAYMENT_STATE_CANCELLED,
}
OUTCOMES = ("loan.payout_settled", "loan.payout_failed")


def wait_events(
    backoffice: LoansClient, loan: str, kinds: tuple[str, ...], timeout_s: float = 60.0
) -> list[loans_pb2.LoanEvent]:
    """The loan's history once it holds one of `kinds`."""
    deadline = time.monotonic() + timeout_s
    while True:
        history = backoffice.events(loan)
        if any(e.event_type in kinds for e in history):
            return history
        assert time.monotonic() < deadline, f"none of {kinds} in {[e.event_type for e in history]}"
        time.sleep(0.25)


def get_payment(stack: Stack, borrower: Borrower, name: str) -> payments_pb2.Payment:
    channel = grpc.insecure_channel(stack.grpc_targets["payments"])
    try:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        tokens = Tokens(stack, ["user"], borrower.user_id)
        deadline = time.monotonic() + 60
        while True:
            payment: payments_pb2.Payment = stub.GetPayment(
                payments_pb2.GetPaymentRequest(name=name),
                metadata=tokens.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
            if payment.state in TERMINAL:
                return payment
            assert time.monotonic() < deadline, payments_pb2.PaymentState.Name(payment.state)
            time.sleep(0.25)
    finally:
        channel.close()


async def redeliver(stack: Stack, event: payments_events_pb2.PaymentSettled) -> None:
    """payments' event for the payment once more (a new event id, as a duplicate
    publication would carry), and wait until loans' consumer has handled it."""
    [event_id] = await publish_events(
        stack.infra.nats_url, "payments", [(event.payment.name, event)]
    )
    durable = CONSUMERS["payment.settled"]
    deadline = time.monotonic() + 30
    while not admin_sql(
        stack,
        "SELECT 1 FROM loans.processed_events WHERE consumer = %s AND event_id = %s",
        (durable, event_id),
    ):
        assert time.monotonic() < deadline, "the redelivered event was not handled"
        await asyncio.sleep(0.25)


def test_an_invalid_pix_key_is_refused_at_application(loans: LoansClient) -> None:
    q = loans.simulate(PRINCIPAL, 3)
    err = rpc_error(lambda: loans.create(q.name, pix_key="not a key"))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DISBURSEMENT_INVALID")
    assert [f for f, _ in err.violations] == ["disbursement.pix_key"]


async def test_payout_after_funding(
    stack: Stack, borrower: Borrower, loans: LoansClient, backoffice: LoansClient,
    ledger: LedgerClient, psp: Psp,
) -> None:  # fmt: skip
    wallet = ledger.wallet(borrower.user)
    q = loans.simulate(PRINCIPAL, 3)
    loan = loans.wait_state(
        loans.create(q.name, pix_key=PIX_KEY).name, {loans_pb2.LOAN_STATE_FUNDED}
    )
    assert not loan.disbursement.pix_key  # PII never echoed back
    deadline = time.monotonic() + 60
    while True:
        kinds = {e.event_type: e for e in backoffice.events(loan.name)}
        if "loan.payout_requested" in kinds or "loan.payout_failed" in kinds:
            break
        assert time.monotonic() < deadline, "no payout recorded"
        await asyncio.sleep(0.25)
    assert "loan.payout_requested" in kinds, kinds["loan.payout_failed"].detail
    payment_name = kinds["loan.payout_requested"].detail
    assert payment_name.startswith("payments/")

    payment = get_payment(stack, borrower, payment_name)
    assert payment.method == payments_pb2.PAYMENT_METHOD_PIX
    assert payment.amount.minor_units == q.disbursed_amount.minor_units
    assert payment.pix.key_type == payments_pb2.PIX_KEY_TYPE_EMAIL  # payments masks the key
    assert payment.state == payments_pb2.PAYMENT_STATE_SETTLED, payment.failure_reason

    # Loans learns the outcome from payments' payment.settled, and records it once
    # even when the event comes again.
    history = wait_events(backoffice, loan.name, OUTCOMES)
    [settled] = [e for e in history if e.event_type in OUTCOMES]
    assert (settled.event_type, settled.detail) == ("loan.payout_settled", payment_name)
    assert settled.amount.minor_units == q.disbursed_amount.minor_units
    await redeliver(stack, payments_events_pb2.PaymentSettled(payment=payment))
    outcomes = [e.event_type for e in backoffice.events(loan.name) if e.event_type in OUTCOMES]
    assert outcomes == ["loan.payout_settled"]
    assert loans.get(loan.name).state == loans_pb2.LOAN_STATE_FUNDED

    # The receiving bank returns part of it (a devolução): payments credits the
    # wallet, and the loan's history says so; the loan itself is unchanged.
    before = ledger.net_credit(wallet)
    returned = 10_00
    return_id = f"DL{uuid.uuid4().hex[:20]}"  # [a-zA-Z0-9]{1,35}, unique per payout
    answer = await psp.return_payout(payment.end_to_end_id, return_id, returned)
    assert answer.status_code == 201, answer.text  # created at the receiving bank
    history = wait_events(backoffice, loan.name, ("loan.payout_returned",))
    [back] = [e for e in history if e.event_type == "loan.payout_returned"]
    assert back.amount.minor_units == returned and payment_name in back.detail
    assert ledger.net_credit(wallet) == before + returned
    assert loans.get(loan.name).state == loans_pb2.LOAN_STATE_FUNDED

    ledger.top_up(wallet, loans.payoff_quote(loan.name).payoff_amount.minor_units)
    assert loans.pay(loan.name, payoff=True).loan.state == loans_pb2.LOAN_STATE_PAID
    verdict = ledger.verify()
    assert verdict.ok, list(verdict.discrepancies)[:5]


async def test_payout_rejected_by_the_psp_leaves_the_money_in_the_wallet(
    stack: Stack, borrower: Borrower, loans: LoansClient, backoffice: LoansClient,
    ledger: LedgerClient, psp: Psp,
) -> None:  # fmt: skip
    await psp.faults(reject_rate=1.0)  # accepted, then FAILED at settlement
    wallet = ledger.wallet(borrower.user)
    available0 = ledger.account(wallet).available_balance.minor_units
    q = loans.simulate(PRINCIPAL, 3)
    loan = loans.wait_state(
        loans.create(q.name, pix_key=PIX_KEY).name, {loans_pb2.LOAN_STATE_FUNDED}
    )
    history = wait_events(backoffice, loan.name, OUTCOMES)
    [requested] = [e for e in history if e.event_type == "loan.payout_requested"]
    payment = get_payment(stack, borrower, requested.detail)
    assert (payment.state, payment.failure_reason) == (
        payments_pb2.PAYMENT_STATE_FAILED,
        "REJECTED_BY_RECEIVER",
    )
    [failed] = [e for e in history if e.event_type in OUTCOMES]
    assert failed.event_type == "loan.payout_failed"
    assert failed.detail.startswith(f"REJECTED_BY_RECEIVER: {payment.name} failed")
    # payments voided its reservation: the disbursed amount is spendable again,
    # nothing pending; the loan is funded all the same.
    account = ledger.account(wallet)
    assert account.available_balance.minor_units == available0 + q.disbursed_amount.minor_units
    assert account.debits_pending.minor_units == 0
    assert loans.get(loan.name).state == loans_pb2.LOAN_STATE_FUNDED
    # A late, contradicting settlement event for the same payment changes nothing.
    await redeliver(stack, payments_events_pb2.PaymentSettled(payment=payment))
    outcomes = [e.event_type for e in backoffice.events(loan.name) if e.event_type in OUTCOMES]
    assert outcomes == ["loan.payout_failed"]

    ledger.top_up(wallet, loans.payoff_quote(loan.name).payoff_amount.minor_units)
    assert loans.pay(loan.name, payoff=True).loan.state == loans_pb2.LOAN_STATE_PAID
    verdict = ledger.verify()
    assert verdict.ok, list(verdict.discrepancies)[:5]
