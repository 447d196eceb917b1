"""A loan with a PIX key: funded to the wallet, then paid out through payments'
CreateServicePayment (the PSP simulator plays the other bank)."""

from __future__ import annotations

import time

import grpc
import pytest

from devstack.stack import Stack
from fintech.loans.v1 import loans_pb2
from fintech.payments.v1 import payments_pb2, payments_pb2_grpc
from tests.integration.loans.loans_it_support import (
    CALL_TIMEOUT_S,
    Borrower,
    LedgerClient,
    LoansClient,
    Tokens,
    rpc_error,
)

pytestmark = pytest.mark.integration

PRINCIPAL = 1_200_00
PIX_KEY = "ana@example.com"  # in the PSP simulator's DICT (simulators/psp)
TERMINAL = {
    payments_pb2.PAYMENT_STATE_SETTLED,
    payments_pb2.PAYMENT_STATE_FAILED,
    payments_pb2.PAYMENT_STATE_CANCELLED,
}


def test_an_invalid_pix_key_is_refused_at_application(loans: LoansClient) -> None:
    q = loans.simulate(PRINCIPAL, 3)
    err = rpc_error(lambda: loans.create(q.name, pix_key="not a key"))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DISBURSEMENT_INVALID")
    assert [f for f, _ in err.violations] == ["disbursement.pix_key"]


def test_payout_after_funding(
    stack: Stack, borrower: Borrower, loans: LoansClient, backoffice: LoansClient,
    ledger: LedgerClient,
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
        time.sleep(0.25)
    assert "loan.payout_requested" in kinds, kinds["loan.payout_failed"].detail
    payment_name = kinds["loan.payout_requested"].detail
    assert payment_name.startswith("payments/")

    channel = grpc.insecure_channel(stack.grpc_targets["payments"])
    try:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        tokens = Tokens(stack, ["user"], borrower.user_id)
        deadline = time.monotonic() + 60
        while True:
            payment = stub.GetPayment(
                payments_pb2.GetPaymentRequest(name=payment_name),
                metadata=tokens.metadata(),
                timeout=CALL_TIMEOUT_S,
            )
            if payment.state in TERMINAL:
                break
            assert time.monotonic() < deadline, payments_pb2.PaymentState.Name(payment.state)
            time.sleep(0.25)
    finally:
        channel.close()
    assert payment.method == payments_pb2.PAYMENT_METHOD_PIX
    assert payment.amount.minor_units == q.disbursed_amount.minor_units
    assert payment.pix.key_type == payments_pb2.PIX_KEY_TYPE_EMAIL  # payments masks the key
    assert payment.state == payments_pb2.PAYMENT_STATE_SETTLED, payment.failure_reason

    ledger.top_up(wallet, loans.payoff_quote(loan.name).payoff_amount.minor_units)
    assert loans.pay(loan.name, payoff=True).loan.state == loans_pb2.LOAN_STATE_PAID
    verdict = ledger.verify()
    assert verdict.ok, list(verdict.discrepancies)[:5]
