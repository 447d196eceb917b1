"""Payments end to end through the real stack and the PSP simulator: every method's
happy path, receiving, failures, each asserting the final ledger state."""

from __future__ import annotations

import grpc
import pytest

from devstack.stack import Stack
from fintech.payments.v1 import payments_pb2 as P
from services.payments.domain import brcode
from services.payments.domain.pix import is_end_to_end_id
from services.platform.errors import details_from_rpc_error
from tests.integration.ledger.ledger_it_support import LedgerClient
from tests.integration.payments.payments_it_support import (
    FEE_REVENUE_ACCOUNT,
    PaymentsClient,
    Psp,
    balances,
    brl,
    events_about,
    key,
    new_customers,
    step_names,
)

pytestmark = pytest.mark.integration

FUND = 100_000  # R$ 1.000,00
EMAIL = P.PIX_KEY_TYPE_EMAIL
KNOWN_KEY = "ana@example.com"  # in the simulator's DICT (another bank)


async def test_pix_payout_settles_and_debits_once(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    [c] = await new_customers(stack, ledger, 1, FUND)
    idem = key()
    created = await c.client.pay_pix(KNOWN_KEY, EMAIL, 12_34, idem=idem)
    assert created.state == P.PAYMENT_STATE_PENDING
    again = await c.client.pay_pix(KNOWN_KEY, EMAIL, 12_34, idem=idem)
    assert again.name == created.name  # same key: same payment, no second workflow
    done = await c.client.wait(created.name)
    assert done.state == P.PAYMENT_STATE_SETTLED, done
    assert is_end_to_end_id(done.end_to_end_id)
    assert done.pix.recipient_name == "Ana Souza"
    assert step_names(done)[:4] == ["validate", "reserve", "psp_submit", "await_settlement"]
    assert all(s.state == P.STEP_STATE_SUCCEEDED for s in done.steps), done.steps
    assert await balances(ledger, c.wallet) == (12_34, FUND, 0, 0)
    await ledger.assert_verifies()
    # Outbox -> JetStream: created once, settled once (however often retried).
    assert await events_about(stack.infra.nats_url, "payment.created", done.name) == 1
    assert await events_about(stack.infra.nats_url, "payment.settled", done.name) == 1


async def test_ted_payout_posts_fee_linked(stack: Stack, ledger: LedgerClient, psp: Psp) -> None:
    [c] = await new_customers(stack, ledger, 1, FUND)
    fee_before = (await balances(ledger, FEE_REVENUE_ACCOUNT))[1]
    p = await c.client.wait((await c.client.pay_ted(50_00)).name)
    assert p.state == P.PAYMENT_STATE_SETTLED, p
    assert p.fee.minor_units == 390
    assert (
        p.bank_account.holder_document_masked.startswith("***")
        and not p.bank_account.holder_document
    )
    assert await balances(ledger, c.wallet) == (50_00 + 390, FUND, 0, 0)
    assert (await balances(ledger, FEE_REVENUE_ACCOUNT))[1] - fee_before >= 390


async def test_unknown_key_and_insufficient_funds_fail_without_moving_money(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    [c] = await new_customers(stack, ledger, 1, 10_00)
    p = await c.client.wait((await c.client.pay_pix("nobody@example.com", EMAIL, 5_00)).name)
    assert (p.state, p.failure_reason) == (P.PAYMENT_STATE_FAILED, "PIX_KEY_NOT_FOUND")
    p = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, 20_00)).name)
    assert (p.state, p.failure_reason) == (P.PAYMENT_STATE_FAILED, "INSUFFICIENT_FUNDS")
    assert await balances(ledger, c.wallet) == (0, 10_00, 0, 0)


async def test_psp_rejects_at_settlement_voids_reservation(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    await psp.faults(reject_rate=1.0)
    [c] = await new_customers(stack, ledger, 1, FUND)
    p = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, 30_00)).name)
    assert (p.state, p.failure_reason) == (P.PAYMENT_STATE_FAILED, "REJECTED_BY_RECEIVER"), p
    assert "void" in step_names(p)
    assert await balances(ledger, c.wallet) == (0, FUND, 0, 0)


async def test_timeout_after_accept_is_resolved_without_double_payout(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    # The PSP stores the payout, then hangs past our 3 s timeout: the retry with
    # the same reference finds the accepted payout instead of creating another.
    await psp.faults(timeout_after_accept_rate=1.0, timeout_after_accept_ms=4000)
    [c] = await new_customers(stack, ledger, 1, FUND)
    p = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, 7_00)).name, deadline_s=90)
    assert p.state == P.PAYMENT_STATE_SETTLED, p
    submit = next(s for s in p.steps if s.step == "psp_submit")
    assert submit.attempts >= 1
    assert await balances(ledger, c.wallet) == (7_00, FUND, 0, 0)


async def test_webhook_never_arrives_status_query_settles(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    await psp.faults(webhook_drop_rate=1.0)
    [c] = await new_customers(stack, ledger, 1, FUND)
    p = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, 8_00)).name, deadline_s=90)
    assert p.state == P.PAYMENT_STATE_SETTLED, p
    waited = next(s for s in p.steps if s.step == "await_settlement")
    assert waited.attempts >= 2  # the first wait, then at least one status query
    assert await balances(ledger, c.wallet) == (8_00, FUND, 0, 0)


async def test_duplicate_and_out_of_order_webhooks_settle_once(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    await psp.faults(
        webhook_duplicate_rate=1.0, webhook_out_of_order_rate=1.0, webhook_delay_ms=300
    )
    customers = await new_customers(stack, ledger, 3, FUND)
    names = [(c, (await c.client.pay_pix(KNOWN_KEY, EMAIL, 9_00)).name) for c in customers]
    for c, name in names:
        p = await c.client.wait(name)
        assert p.state == P.PAYMENT_STATE_SETTLED, p
        assert await balances(ledger, c.wallet) == (9_00, FUND, 0, 0)
    await ledger.assert_verifies()


async def test_outage_opens_breaker_payments_wait_and_resume(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    [c] = await new_customers(stack, ledger, 1, FUND)
    await psp.faults(outage=True)
    name = (await c.client.pay_pix(KNOWN_KEY, EMAIL, 6_00)).name
    # While the PSP is down the payment waits (no failure, no money moved).
    import asyncio

    await asyncio.sleep(6)
    p = await c.client.get(name)
    assert p.state == P.PAYMENT_STATE_PENDING, p
    validate = next(s for s in p.steps if s.step == "validate")
    assert validate.state in (P.STEP_STATE_WAITING_PROVIDER, P.STEP_STATE_RUNNING)
    assert validate.attempts >= 2
    await psp.clear()
    p = await c.client.wait(name, deadline_s=90)
    assert p.state == P.PAYMENT_STATE_SETTLED, p
    assert await balances(ledger, c.wallet) == (6_00, FUND, 0, 0)


async def test_cancel_before_submission_and_refused_after(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    [c] = await new_customers(stack, ledger, 1, FUND)
    await psp.faults(outage=True)  # holds the payment before the PSP accepts it
    name = (await c.client.pay_pix(KNOWN_KEY, EMAIL, 4_00)).name
    cancelled = await c.client.stub.CancelPayment(
        P.CancelPaymentRequest(name=name), metadata=c.client.md(key()), timeout=20
    )
    assert cancelled.state == P.PAYMENT_STATE_CANCELLED
    await psp.clear()
    settled_name = (await c.client.pay_pix(KNOWN_KEY, EMAIL, 3_00)).name
    settled = await c.client.wait(settled_name)
    assert settled.state == P.PAYMENT_STATE_SETTLED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.client.stub.CancelPayment(
            P.CancelPaymentRequest(name=settled_name), metadata=c.client.md(key()), timeout=20
        )
    assert details_from_rpc_error(err.value).reason == "PAYMENT_NOT_CANCELLABLE"
    import asyncio

    await asyncio.sleep(2)  # the cancelled workflow ends without touching the ledger
    assert (await c.client.get(name)).state == P.PAYMENT_STATE_CANCELLED
    assert await balances(ledger, c.wallet) == (3_00, FUND, 0, 0)


async def test_cancel_racing_acceptance_leaves_consistent_ledger(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    customers = await new_customers(stack, ledger, 6, FUND)
    outcomes = []
    for c in customers:
        name = (await c.client.pay_pix(KNOWN_KEY, EMAIL, 5_00)).name
        try:
            await c.client.stub.CancelPayment(
                P.CancelPaymentRequest(name=name), metadata=c.client.md(key()), timeout=20
            )
        except grpc.aio.AioRpcError as exc:
            assert details_from_rpc_error(exc).reason == "PAYMENT_NOT_CANCELLABLE"
        outcomes.append((c, name))
    for c, name in outcomes:
        p = await c.client.wait(name)
        debited = 5_00 if p.state == P.PAYMENT_STATE_SETTLED else 0
        assert p.state in (P.PAYMENT_STATE_SETTLED, P.PAYMENT_STATE_CANCELLED), p
        import asyncio

        for _ in range(50):  # a cancelled one's reservation is voided by its workflow
            if await balances(ledger, c.wallet) == (debited, FUND, 0, 0):
                break
            await asyncio.sleep(0.2)
        assert await balances(ledger, c.wallet) == (debited, FUND, 0, 0)


async def test_on_us_pix_moves_wallet_to_wallet(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    payer, payee = await new_customers(stack, ledger, 2, FUND)
    email = f"{payee.user_id[:8]}@fintech.example.com"
    await psp.register_key("EMAIL", email, payee.user_id, "Cliente da Casa")
    p = await payer.client.wait((await payer.client.pay_pix(email, EMAIL, 15_00)).name)
    assert p.state == P.PAYMENT_STATE_SETTLED and p.on_us, p
    assert "psp_submit" not in [s.step for s in p.steps if s.state == P.STEP_STATE_SUCCEEDED]
    assert await balances(ledger, payer.wallet) == (15_00, FUND, 0, 0)
    assert await balances(ledger, payee.wallet) == (0, FUND + 15_00, 0, 0)


async def test_pix_charge_paid_credits_once(stack: Stack, ledger: LedgerClient, psp: Psp) -> None:
    await psp.faults(webhook_duplicate_rate=1.0)
    [c] = await new_customers(stack, ledger, 1, 0)
    charge = await c.client.stub.CreatePixCharge(
        P.CreatePixChargeRequest(pix_charge=P.PixCharge(amount=brl(25_00), description="Pedido 7")),
        metadata=c.client.md(key()),
        timeout=20,
    )
    assert charge.state == P.PIX_CHARGE_STATE_ACTIVE
    fields = brcode.parse(charge.br_code)  # CRC16 checked
    assert fields["54"] == "25.00"
    assert brcode.parse_nested(fields["62"])["05"] == charge.txid
    await psp.pay_cob(charge.txid)
    import asyncio

    for _ in range(100):
        got = await c.client.stub.GetPixCharge(
            P.GetPixChargeRequest(name=charge.name), metadata=c.client.md(), timeout=20
        )
        if got.state == P.PIX_CHARGE_STATE_COMPLETED:
            break
        await asyncio.sleep(0.1)
    assert got.state == P.PIX_CHARGE_STATE_COMPLETED and got.payment
    await asyncio.sleep(1.0)  # the duplicate notification has arrived by now
    assert await balances(ledger, c.wallet) == (0, 25_00, 0, 0)
    received = await c.client.get(got.payment)
    assert received.direction == P.PAYMENT_DIRECTION_INBOUND
    assert received.state == P.PAYMENT_STATE_SETTLED
    # Devolução of part of it, by the backoffice.
    ops = PaymentsClient(stack, "ops-3", roles=("backoffice",))
    refunded = await ops.stub.RefundPayment(
        P.RefundPaymentRequest(name=received.name, amount=brl(5_00), reason="devolucao"),
        metadata=ops.md(key()),
        timeout=20,
    )
    assert refunded.state == P.PAYMENT_STATE_PARTIALLY_REFUNDED
    assert await balances(ledger, c.wallet) == (5_00, 25_00, 0, 0)
    await ops.close()


async def test_card_top_up_with_challenge_credits_on_capture(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    [c] = await new_customers(stack, ledger, 1, 0)
    p = await c.client.top_up("tok_challenge_visa", 40_00)
    p = await c.client.wait(p.name, frozenset({P.PAYMENT_STATE_REQUIRES_ACTION}))
    assert await balances(ledger, c.wallet) == (0, 0, 0, 0)  # nothing before capture
    await c.client.stub.ConfirmPaymentChallenge(
        P.ConfirmPaymentChallengeRequest(name=p.name, challenge_response="123456"),
        metadata=c.client.md(key()),
        timeout=20,
    )
    p = await c.client.wait(p.name)
    assert p.state == P.PAYMENT_STATE_SETTLED and p.card.last4 == "4242", p
    assert await balances(ledger, c.wallet) == (0, 40_00, 0, 0)
    # Refunds (backoffice): in part, then the rest; never beyond the payment.
    ops = PaymentsClient(stack, "ops-2", roles=("backoffice",))
    part = await ops.stub.RefundPayment(
        P.RefundPaymentRequest(name=p.name, amount=brl(15_00), reason="customer asked"),
        metadata=ops.md(key()),
        timeout=20,
    )
    assert part.state == P.PAYMENT_STATE_PARTIALLY_REFUNDED
    assert part.refunded_amount.minor_units == 15_00
    refund_key = key()
    rest = await ops.stub.RefundPayment(
        P.RefundPaymentRequest(name=p.name, reason="the rest"),
        metadata=ops.md(refund_key),
        timeout=20,
    )
    assert rest.state == P.PAYMENT_STATE_REFUNDED
    replay = await ops.stub.RefundPayment(
        P.RefundPaymentRequest(name=p.name, reason="the rest"),
        metadata=ops.md(refund_key),
        timeout=20,
    )
    assert replay.refunded_amount.minor_units == 40_00  # same key: no second refund
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ops.stub.RefundPayment(
            P.RefundPaymentRequest(name=p.name, amount=brl(1), reason="again"),
            metadata=ops.md(key()),
            timeout=20,
        )
    assert details_from_rpc_error(err.value).reason == "PAYMENT_NOT_REFUNDABLE"
    assert await balances(ledger, c.wallet) == (40_00, 40_00, 0, 0)
    await ops.close()
    declined = await c.client.wait((await c.client.top_up("tok_declined_x", 10_00)).name)
    assert (declined.state, declined.failure_reason) == (P.PAYMENT_STATE_FAILED, "CARD_DECLINED")


async def test_limits_and_bad_input(stack: Stack, ledger: LedgerClient, psp: Psp) -> None:
    [c] = await new_customers(stack, ledger, 1, FUND)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.client.pay_pix(KNOWN_KEY, EMAIL, 6_000_00)
    d = details_from_rpc_error(err.value)
    assert (d.code, d.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_LIMIT_EXCEEDED")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.client.pay_pix("not a key", P.PIX_KEY_TYPE_CPF, 1_00)
    d = details_from_rpc_error(err.value)
    assert d.code == grpc.StatusCode.INVALID_ARGUMENT
    assert ("payment.pix.key", "not a valid CPF key") in d.violations
    limits = await c.client.stub.GetPaymentLimits(
        P.GetPaymentLimitsRequest(name="users/me/paymentLimits"), metadata=c.client.md(), timeout=20
    )
    assert limits.per_payment_limit.minor_units == 5_000_00
    # Someone else's payment is not visible.
    [other] = await new_customers(stack, ledger, 1, 0)
    await c.client.pay_pix(KNOWN_KEY, EMAIL, 2_00)
    mine = await c.client.pay_pix(KNOWN_KEY, EMAIL, 1_00)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await other.client.get(mine.name)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await c.client.stub.ListPayments(
        P.ListPaymentsRequest(page_size=1), metadata=c.client.md(), timeout=20
    )
    assert [p.name for p in listed.payments] == [mine.name] and listed.next_page_token
    rest = await c.client.stub.ListPayments(
        P.ListPaymentsRequest(page_size=10, page_token=listed.next_page_token),
        metadata=c.client.md(),
        timeout=20,
    )
    assert len(rest.payments) == 1 and not rest.next_page_token


async def test_service_payment_for_loans_is_idempotent_by_reference(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    # Above the customer's own per-payment limit: service payouts skip it.
    [c] = await new_customers(stack, ledger, 1, 10 * FUND)
    svc = PaymentsClient(stack, "loans", roles=("service",))
    req = P.CreateServicePaymentRequest(
        user=f"users/{c.user_id}",
        external_reference="loans/abc",
        payment=P.Payment(
            method=P.PAYMENT_METHOD_PIX,
            amount=brl(6_000_00),
            pix=P.PixDestination(key_type=EMAIL, key=KNOWN_KEY),
        ),
    )
    first = await svc.stub.CreateServicePayment(req, metadata=svc.md(key()), timeout=20)
    second = await svc.stub.CreateServicePayment(req, metadata=svc.md(key()), timeout=20)
    assert first.name == second.name
    p = await c.client.wait(first.name)
    assert p.state == P.PAYMENT_STATE_SETTLED
    assert await balances(ledger, c.wallet) == (6_000_00, 10 * FUND, 0, 0)
    await svc.close()
