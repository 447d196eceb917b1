"""The PSP webhook at the edge (HMAC, not JWT; dedup; durable before 2xx) and the
reconciliation of the PSP's settlement report."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from sqlalchemy import text

from devstack.stack import Stack
from fintech.payments.v1 import payments_pb2 as P
from services.payments.domain import webhooks
from services.payments.service import _payments_named
from services.platform.db import Database
from services.platform.migrate import DEFAULT_DATABASE, database_url
from tests.integration.ledger.ledger_it_support import LedgerClient
from tests.integration.payments.payments_it_support import (
    PaymentsClient,
    Psp,
    key,
    new_customers,
)

pytestmark = pytest.mark.integration


def _post(stack: Stack, body: bytes, headers: dict[str, str]) -> httpx.Response:
    tls = ssl.create_default_context(cafile=str(stack.ca_file))
    with httpx.Client(base_url=stack.https_url, verify=tls, timeout=15) as c:
        return c.post(
            "/v1/webhooks/psp",
            content=body,
            headers={"content-type": "application/json", **headers},
        )


def _signed(stack: Stack, body: bytes) -> dict[str, str]:
    secret = base64.b64decode((stack.secrets_dir / "webhook_hmac_secret").read_text().strip())
    ts = int(time.time())
    return {
        webhooks.TIMESTAMP_HEADER: str(ts),
        webhooks.SIGNATURE_HEADER: webhooks.sign(secret, ts, body),
    }


async def test_webhook_needs_hmac_and_is_recorded_once(stack: Stack) -> None:
    event_id = f"evt_{uuid.uuid4().hex}"
    body = json.dumps({"id": event_id, "type": "test.ping", "data": {}}).encode()
    forged = _post(
        stack,
        body,
        {
            webhooks.TIMESTAMP_HEADER: str(int(time.time())),
            webhooks.SIGNATURE_HEADER: "v1=" + "0" * 64,
        },
    )
    assert forged.status_code == 403, forged.text
    assert "WEBHOOK_SIGNATURE_INVALID" in forged.text
    first = _post(stack, body, _signed(stack, body))
    assert first.status_code == 200, first.text
    assert first.json() == {"duplicate": False}
    again = _post(stack, body, _signed(stack, body))
    assert again.json() == {"duplicate": True}
    # Acknowledged means durably recorded: the row is there, with both deliveries.
    url = stack.infra.pg_admin_url
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT deliveries FROM payments.psp_webhooks WHERE event_id = %s", (event_id,)
        ).fetchone()
    assert row == (2,)


async def test_reconciliation_flags_payments_whose_state_disagrees(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    [c] = await new_customers(stack, ledger, 1, 100_000)
    done = await c.client.wait(
        (await c.client.pay_pix("ana@example.com", P.PIX_KEY_TYPE_EMAIL, 11_00)).name
    )
    assert done.state == P.PAYMENT_STATE_SETTLED
    # The next one settles at the PSP but its webhook is lost: until our status
    # query runs, the PSP says settled and we say processing.
    await psp.faults(webhook_drop_rate=1.0)
    lagging = await c.client.pay_pix("ana@example.com", P.PIX_KEY_TYPE_EMAIL, 12_00)
    await c.client.wait(lagging.name, frozenset({P.PAYMENT_STATE_PROCESSING}))
    await asyncio.sleep(0.5)  # the PSP settles after its settle delay
    today = datetime.now(UTC).astimezone(ZoneInfo("America/Sao_Paulo")).date().isoformat()
    ops = PaymentsClient(stack, "ops-1", roles=("backoffice",))
    result = await ops.stub.ReconcilePayments(
        P.ReconcilePaymentsRequest(report_date=today), metadata=ops.md(key()), timeout=60
    )
    assert result.reconciliation.startswith("reconciliations/")
    assert result.payments_checked >= 2
    flagged = {m.payment: m for m in result.mismatches}
    assert done.name not in flagged
    assert flagged[lagging.name].match_status == "STATE_DISAGREES"
    assert flagged[lagging.name].state == P.PAYMENT_STATE_PROCESSING
    settled = await c.client.wait(lagging.name, deadline_s=60)
    assert settled.state == P.PAYMENT_STATE_SETTLED
    await ops.close()


async def test_reconciliation_flags_a_payment_whose_amount_the_psp_reports_otherwise(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    """The ledger's run compares amounts; ReconcilePayments reads its
    AMOUNT_MISMATCH items back and names the payment."""
    [c] = await new_customers(stack, ledger, 1, 100_000)
    paid = await c.client.wait(
        (await c.client.pay_pix("ana@example.com", P.PIX_KEY_TYPE_EMAIL, 13_00)).name
    )
    assert paid.state == P.PAYMENT_STATE_SETTLED
    today = datetime.now(UTC).astimezone(ZoneInfo("America/Sao_Paulo")).date().isoformat()
    ops = PaymentsClient(stack, "ops-1", roles=("backoffice",))
    await psp.faults(report_payout_skew=7)  # the report says R$ 13,07 for each payout
    try:
        result = await ops.stub.ReconcilePayments(
            P.ReconcilePaymentsRequest(report_date=today), metadata=ops.md(key()), timeout=60
        )
    finally:
        await psp.faults()
        await ops.close()
    flagged = {m.payment: m for m in result.mismatches}
    assert flagged[paid.name].match_status == "AMOUNT_DISAGREES", flagged.get(paid.name)
    assert flagged[paid.name].state == P.PAYMENT_STATE_SETTLED
    assert "1307" in flagged[paid.name].detail and "1300" in flagged[paid.name].detail
    # The same report without the skew: the payment is not flagged.
    ops = PaymentsClient(stack, "ops-1", roles=("backoffice",))
    try:
        again = await ops.stub.ReconcilePayments(
            P.ReconcilePaymentsRequest(report_date=today), metadata=ops.md(key()), timeout=60
        )
    finally:
        await ops.close()
    assert paid.name not in {m.payment for m in again.mismatches}


async def test_references_beyond_the_day_are_read_in_one_lookup(
    stack: Stack, ledger: LedgerClient, psp: Psp
) -> None:
    """What reconciliation reads for references outside the day's payments:
    existing payments by reference; an unknown, malformed or non-payment
    reference is simply absent (it is then flagged as missing, not an error)."""
    [c] = await new_customers(stack, ledger, 1, 100_000)
    paid = await c.client.wait(
        (await c.client.pay_pix("ana@example.com", P.PIX_KEY_TYPE_EMAIL, 5_00)).name
    )
    db = Database(database_url(stack.infra.pg_admin_url, DEFAULT_DATABASE), pool_size=1)
    try:
        async with db.transaction() as conn:
            await conn.execute(text("SET LOCAL search_path TO payments"))
            found = await _payments_named(
                conn,
                [paid.name, f"payments/{uuid.uuid4()}", "payments/not-a-uuid", "charges/x"],
            )
    finally:
        await db.close()
    assert list(found) == [paid.name]
    assert found[paid.name].state == "SETTLED"
