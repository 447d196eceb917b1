"""CreatePayment commits first and starts the workflow after the commit.

The start happens in the background (services/payments/starter.py); a sweep
starts any payment whose start was lost, e.g. when the process died between
the commit and the start. The lost start is reproduced by writing a PENDING
payment the way CreatePayment does, minus the start.
"""

from __future__ import annotations

import uuid

import pytest

from devstack.stack import Stack
from fintech.payments.v1 import payments_pb2 as P
from tests.integration.ledger.ledger_it_support import LedgerClient
from tests.integration.payments.payments_it_support import (
    Psp,
    admin_connection,
    balances,
    copy_payment_unstarted,
    new_customers,
)

pytestmark = pytest.mark.integration

FUND = 100_000
AMOUNT = 12_34
KNOWN_KEY = "ana@example.com"
EMAIL = P.PIX_KEY_TYPE_EMAIL
SWEEP_DEADLINE_S = 60.0  # sweep every 2 s, then the payout itself


def _started(stack: Stack, payment_id: uuid.UUID) -> bool:
    with admin_connection(stack) as conn:
        row = conn.execute(
            "SELECT workflow_started FROM payments.payments WHERE id = %s", (payment_id,)
        ).fetchone()
    assert row is not None, payment_id
    return bool(row[0])


async def test_a_payment_whose_start_was_lost_is_started_by_the_sweep(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    (customer,) = await new_customers(stack, ledger, 1, FUND)
    first = await customer.client.wait(
        (await customer.client.pay_pix(KNOWN_KEY, EMAIL, AMOUNT)).name
    )
    assert first.state == P.PAYMENT_STATE_SETTLED, first
    first_id = uuid.UUID(first.name.removeprefix("payments/"))
    assert _started(stack, first_id)  # the after-commit path marked it
    fee = first.fee.minor_units
    assert await balances(ledger, customer.wallet) == (AMOUNT + fee, FUND, 0, 0)

    lost = copy_payment_unstarted(stack, first_id)
    recovered = await customer.client.wait(f"payments/{lost}", deadline_s=SWEEP_DEADLINE_S)

    assert recovered.state == P.PAYMENT_STATE_SETTLED, recovered
    assert _started(stack, lost)
    assert {s.step for s in recovered.steps} >= {"validate", "reserve", "psp_submit", "post"}
    # Exactly one more payout left the wallet: nothing pending, nothing twice.
    assert await balances(ledger, customer.wallet) == (2 * (AMOUNT + fee), FUND, 0, 0)
