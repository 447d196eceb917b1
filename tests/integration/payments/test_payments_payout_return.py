"""A settled PIX payout returned by the receiving bank (devolução): each return
credits the wallet once however often it is notified, the payment goes
PARTIALLY_REFUNDED then REFUNDED, and a return beyond what is left, for a
payment we do not have or for a fully returned one is refused and recorded
without crediting anything."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psycopg
import pytest

from devstack.stack import Stack
from fintech.payments.v1 import payments_pb2 as P
from tests.integration.ledger.ledger_it_support import LedgerClient
from tests.integration.payments.payments_it_support import (
    PSP_CLEARING_ACCOUNT,
    Customer,
    Psp,
    balances,
    events_about,
    new_customers,
    post_webhook,
)

pytestmark = pytest.mark.integration

FUND = 100_000  # R$ 1.000,00
AMOUNT = 40_00
FIRST = 15_00
EMAIL = P.PIX_KEY_TYPE_EMAIL
KNOWN_KEY = "ana@example.com"  # in the simulator's DICT (another bank)


def _rid() -> str:
    return "ret" + uuid.uuid4().hex[:20]  # the devolução id: [a-zA-Z0-9]{1,35}


def _returns(stack: Stack, return_id: str) -> list[tuple[Any, ...]]:
    """(state, reason, payment_id, amount) recorded for a return id, and how many
    times its notifications arrived."""
    with psycopg.connect(stack.infra.pg_admin_url) as conn:
        rows = conn.execute(
            "SELECT r.state, r.reason, r.payment_id::text, r.amount,"
            " (SELECT sum(w.deliveries) FROM payments.psp_webhooks w"
            "   WHERE w.type = 'payout.returned' AND w.body->'data'->>'id' = r.return_id)"
            " FROM payments.payout_returns r WHERE r.return_id = %s",
            (return_id,),
        ).fetchall()
    return [tuple(r) for r in rows]


async def _credited_twice_notified(stack: Stack, return_id: str) -> tuple[Any, ...]:
    """The return's row once both copies of its notification arrived (the
    duplicate-webhook fault sends each twice)."""
    end = time.monotonic() + 30
    while True:
        rows = _returns(stack, return_id)
        if rows and rows[0][4] is not None and rows[0][4] >= 2:
            return rows[0]
        assert time.monotonic() < end, f"return {return_id}: {rows}"
        await asyncio.sleep(0.2)


def _event(return_id: str, payment: str, e2e: str, amount: int) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "payout.returned",
        "data": {
            "id": return_id,
            "end_to_end_id": e2e,
            "external_reference": payment,
            "amount": amount,
            "reason": "MD06",
            "status": "DEVOLVIDO",
        },
    }


async def _refused(
    stack: Stack, ledger: LedgerClient, c: Customer, event: dict[str, Any], reason: str
) -> tuple[Any, ...]:
    """Deliver `event`: acknowledged (recorded, so the PSP stops retrying it),
    refused with `reason`, and the customer's wallet is untouched."""
    before_wallet = await balances(ledger, c.wallet)
    r = await post_webhook(stack, event)
    assert r.status_code == 200 and r.json() == {"duplicate": False}, r.text
    [row] = _returns(stack, event["data"]["id"])
    assert (row[0], row[1]) == ("REFUSED", reason), row
    assert await balances(ledger, c.wallet) == before_wallet
    return row


async def test_returned_payout_credits_once_per_return_then_refunded(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    await psp.faults(webhook_duplicate_rate=1.0)
    [c] = await new_customers(stack, ledger, 1, FUND)
    done = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, AMOUNT)).name)
    assert done.state == P.PAYMENT_STATE_SETTLED, done
    assert await balances(ledger, c.wallet) == (AMOUNT, FUND, 0, 0)
    clearing = await balances(ledger, PSP_CLEARING_ACCOUNT)

    # The receiving bank returns part of it; the notification arrives twice.
    first = _rid()
    r = await psp.return_payout(done.end_to_end_id, first, FIRST)
    assert r.status_code == 201, r.text
    part = await c.client.wait(done.name, frozenset({P.PAYMENT_STATE_PARTIALLY_REFUNDED}), 30)
    state, _, pid, amount, deliveries = await _credited_twice_notified(stack, first)
    assert (state, pid, amount, deliveries) == ("CREDITED", done.name.split("/")[1], FIRST, 2)
    part = await c.client.get(done.name)
    assert part.state == P.PAYMENT_STATE_PARTIALLY_REFUNDED
    assert part.refunded_amount.minor_units == FIRST
    [step] = [s for s in part.steps if s.step == "return"]
    assert (step.state, step.attempts) == (P.STEP_STATE_SUCCEEDED, 1)  # the repeat: no-op
    assert await balances(ledger, c.wallet) == (AMOUNT, FUND + FIRST, 0, 0)
    d, cr, dp, cp = clearing
    assert await balances(ledger, PSP_CLEARING_ACCOUNT) == (d + FIRST, cr, dp, cp)

    # More than is left: the simulated PSP refuses it; a PSP that sent it anyway
    # is refused here and recorded, with nothing credited.
    left = AMOUNT - FIRST
    assert (await psp.return_payout(done.end_to_end_id, _rid(), left + 1)).status_code == 422
    over = _event(_rid(), done.name, done.end_to_end_id, left + 1)
    await _refused(stack, ledger, c, over, "RETURN_EXCEEDS_PAYMENT")
    unknown = _event(_rid(), f"payments/{uuid.uuid4()}", done.end_to_end_id, 1_00)
    assert (await _refused(stack, ledger, c, unknown, "PAYMENT_NOT_FOUND"))[2] is None
    # The same return notified again under another event id: still credited once.
    again = _event(first, done.name, done.end_to_end_id, FIRST)
    assert (await post_webhook(stack, again)).status_code == 200
    assert _returns(stack, first)[0][0] == "CREDITED"
    still = await c.client.get(done.name)
    assert still.state == P.PAYMENT_STATE_PARTIALLY_REFUNDED
    assert still.refunded_amount.minor_units == FIRST
    assert await balances(ledger, c.wallet) == (AMOUNT, FUND + FIRST, 0, 0)

    # The rest comes back: REFUNDED, the wallet got all of it back, once.
    rest = _rid()
    assert (await psp.return_payout(done.end_to_end_id, rest, left)).status_code == 201
    full = await c.client.wait(done.name, frozenset({P.PAYMENT_STATE_REFUNDED}), 30)
    assert (await _credited_twice_notified(stack, rest))[0] == "CREDITED"
    full = await c.client.get(done.name)
    assert full.refunded_amount.minor_units == AMOUNT
    assert [s.attempts for s in full.steps if s.step == "return"] == [2]
    assert await balances(ledger, c.wallet) == (AMOUNT, FUND + AMOUNT, 0, 0)
    assert await balances(ledger, PSP_CLEARING_ACCOUNT) == (d + AMOUNT, cr, dp, cp)
    # Nothing is left to return.
    late = _event(_rid(), done.name, done.end_to_end_id, 1)
    await _refused(stack, ledger, c, late, "PAYMENT_NOT_RETURNABLE")
    assert (await c.client.get(done.name)).refunded_amount.minor_units == AMOUNT

    await ledger.assert_verifies()
    # One payment.refunded per return, none for the repeats or the refusals.
    assert await events_about(stack.infra.nats_url, "payment.refunded", done.name) == 2


async def test_a_return_id_is_unique_only_within_its_payout(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    """API Pix names a devolução by its payout's endToEndId and its own id: two
    receiving banks may pick the same id for two payouts, and each credits."""
    customers = await new_customers(stack, ledger, 2, FUND)
    same = _rid()
    for c in customers:
        done = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, AMOUNT)).name)
        assert done.state == P.PAYMENT_STATE_SETTLED, done
        r = await psp.return_payout(done.end_to_end_id, same, FIRST)
        assert r.status_code == 201, r.text
        back = await c.client.wait(done.name, frozenset({P.PAYMENT_STATE_PARTIALLY_REFUNDED}), 30)
        assert back.refunded_amount.minor_units == FIRST
        assert await balances(ledger, c.wallet) == (AMOUNT, FUND + FIRST, 0, 0)
