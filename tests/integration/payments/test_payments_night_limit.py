"""The BACEN night limit (20:00-06:00 Sao Paulo time) through the real stack.

The payments process of the test stack runs with FINTECH_PAYMENTS_TEST_CLOCK=1
(see conftest.py), so a test can put its clock at night or in daytime by
writing `payments.test_clock.offset_seconds` with the admin role.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import psycopg
import pytest

from devstack.stack import Stack
from fintech.payments.v1 import payments_pb2 as P
from services.platform.errors import details_from_rpc_error
from services.platform.migrate import DEFAULT_DATABASE, database_url
from tests.integration.ledger.ledger_it_support import LedgerClient
from tests.integration.payments.payments_it_support import (
    PaymentsClient,
    Psp,
    balances,
    brl,
    key,
    new_customers,
)

pytestmark = pytest.mark.integration

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
FUND = 100_000  # R$ 1.000,00
NIGHTLY = 50_00
KNOWN_KEY = "ana@example.com"  # in the simulator's DICT
UNKNOWN_KEY = "nobody@example.com"  # not in it: the payout fails
EMAIL = P.PIX_KEY_TYPE_EMAIL


def set_offset(stack: Stack, seconds: int) -> None:
    admin = database_url(stack.infra.pg_admin_url, DEFAULT_DATABASE)
    with psycopg.connect(admin, connect_timeout=10, autocommit=True) as conn:
        conn.execute("UPDATE payments.test_clock SET offset_seconds = %s WHERE id", (seconds,))


def offset_to(wall: time, days_ahead: int = 0) -> int:
    """Seconds to add to now so that the service's Sao Paulo clock reads `wall`
    on a day `days_ahead` after tomorrow (always in the future)."""
    now = datetime.now(UTC)
    day = now.astimezone(SAO_PAULO).date() + timedelta(days=1 + days_ahead)
    target = datetime.combine(day, wall, SAO_PAULO)
    return int((target - now).total_seconds())


@pytest.fixture
def clock(stack: Stack) -> Iterator[None]:
    yield
    set_offset(stack, 0)  # every other test runs on the real clock


async def refused_reason(client: PaymentsClient, amount: int) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.pay_pix(KNOWN_KEY, EMAIL, amount)
    d = details_from_rpc_error(err.value)
    assert d.code == grpc.StatusCode.FAILED_PRECONDITION, d
    return d.reason


async def test_the_night_limit_applies_from_20h_to_6h_and_a_failure_gives_it_back(
    stack: Stack, ledger: LedgerClient, psp: Psp, clock: None
) -> None:
    [c] = await new_customers(stack, ledger, 1, FUND)
    ops = PaymentsClient(stack, "ops-night", roles=("backoffice",))
    await ops.stub.UpdatePaymentLimits(
        P.UpdatePaymentLimitsRequest(
            payment_limits=P.PaymentLimits(
                name=f"users/{c.user_id}/paymentLimits",
                per_payment_limit=brl(5_000_00),
                daily_limit=brl(20_000_00),
                nightly_limit=brl(NIGHTLY),
            ),
            reason="night limit test",
        ),
        metadata=ops.md(key()),
        timeout=20,
    )
    await ops.close()

    set_offset(stack, offset_to(time(23, 0)))
    first = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, 30_00)).name)
    assert first.state == P.PAYMENT_STATE_SETTLED
    assert await refused_reason(c.client, 30_00) == "NIGHTLY_LIMIT_EXCEEDED"

    # A payment that fails gives its share of the night back.
    failed = await c.client.wait((await c.client.pay_pix(UNKNOWN_KEY, EMAIL, 20_00)).name)
    assert failed.state == P.PAYMENT_STATE_FAILED
    second = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, 20_00)).name)
    assert second.state == P.PAYMENT_STATE_SETTLED  # 30 + 20 = the whole night's limit

    # 03:00 the next morning is still the same night.
    set_offset(stack, offset_to(time(3, 0), days_ahead=1))
    assert await refused_reason(c.client, 1_00) == "NIGHTLY_LIMIT_EXCEEDED"

    # In daytime only the daily limit applies.
    set_offset(stack, offset_to(time(7, 0), days_ahead=1))
    day = await c.client.wait((await c.client.pay_pix(KNOWN_KEY, EMAIL, 60_00)).name)
    assert day.state == P.PAYMENT_STATE_SETTLED
    # The wallet paid exactly the settled payments; nothing stays reserved.
    assert await balances(ledger, c.wallet) == (30_00 + 20_00 + 60_00, FUND, 0, 0)
