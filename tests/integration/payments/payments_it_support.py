"""Helpers of the payments integration tests: customers with funded wallets, a
payments client per customer, the PSP simulator's admin API, waits and
ledger read-backs (through the ledger's own RPCs, never its tables)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import nats
import psycopg
import pytest

from devstack.stack import Stack
from fintech.events.v1 import envelope_pb2, identity_events_pb2
from fintech.ledger.v1 import ledger_pb2
from fintech.payments.v1 import payments_pb2 as P
from fintech.payments.v1 import payments_pb2_grpc
from fintech.type.v1 import money_pb2
from services.ledger.domain.chart import BANK_CASH, FEE_REVENUE, PSP_CLEARING
from services.payments.domain import webhooks
from services.platform.crypto import FieldCipher
from services.platform.events import events_subject
from services.platform.migrate import DEFAULT_DATABASE, database_url
from tests.integration.ledger.ledger_it_support import L, LedgerClient, transfer
from tests.support.events import publish_events
from tests.support.tokens import mint_token

CALL_TIMEOUT_S = 20.0
WALLET_DEADLINE_S = 30.0
TERMINAL = frozenset(
    {
        P.PAYMENT_STATE_SETTLED,
        P.PAYMENT_STATE_FAILED,
        P.PAYMENT_STATE_CANCELLED,
        P.PAYMENT_STATE_REFUNDED,
        P.PAYMENT_STATE_PARTIALLY_REFUNDED,
    }
)
BANK_CASH_ACCOUNT = f"accounts/{BANK_CASH.id}"
PSP_CLEARING_ACCOUNT = f"accounts/{PSP_CLEARING.id}"
FEE_REVENUE_ACCOUNT = f"accounts/{FEE_REVENUE.id}"


def brl(minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="BRL", minor_units=minor)


def key() -> str:
    return uuid.uuid4().hex


async def publish_registered(nats_url: str, users: list[str]) -> None:
    """identity's user.registered for each user (ledger opens their wallets)."""
    events = [(user, identity_events_pb2.UserRegistered(user=user)) for user in users]
    await publish_events(nats_url, "identity", events)


@dataclass
class Customer:
    user_id: str
    wallet: str
    client: PaymentsClient


class PaymentsClient:
    """PaymentsService as one customer (or a service/backoffice caller)."""

    def __init__(self, stack: Stack, subject: str, roles: tuple[str, ...] = ("user",)) -> None:
        self.stack = stack
        self.subject = subject
        self.roles = roles
        self.channel = grpc.aio.insecure_channel(stack.grpc_targets["payments"])
        self.stub = payments_pb2_grpc.PaymentsServiceStub(self.channel)

    def md(self, idem: str | None = None) -> tuple[tuple[str, str], ...]:
        token = mint_token(self.stack.secrets_dir, list(self.roles), subject=self.subject)
        pairs = [("authorization", f"Bearer {token}")]
        if idem is not None:
            pairs.append(("idempotency-key", idem))
        return tuple(pairs)

    async def pay_pix(
        self, key_value: str, key_type: int, amount: int, idem: str | None = None
    ) -> P.Payment:
        payment = P.Payment(
            method=P.PAYMENT_METHOD_PIX,
            amount=brl(amount),
            description="integration test",
            pix=P.PixDestination(key_type=key_type, key=key_value),  # type: ignore[arg-type]
        )
        return await self.stub.CreatePayment(
            P.CreatePaymentRequest(payment=payment),
            metadata=self.md(idem or key()),
            timeout=CALL_TIMEOUT_S,
        )

    async def pay_ted(
        self, amount: int, bank_code: str = "341", branch: str = "1234", account: str = "56789-0"
    ) -> P.Payment:
        payment = P.Payment(
            method=P.PAYMENT_METHOD_TED,
            amount=brl(amount),
            bank_account=P.BankAccountDestination(
                bank_code=bank_code,
                branch=branch,
                account_number=account,
                account_type=P.BANK_ACCOUNT_TYPE_CHECKING,
                holder_name="Joao Pereira",
                holder_document="52998224725",
            ),
        )
        return await self.stub.CreatePayment(
            P.CreatePaymentRequest(payment=payment), metadata=self.md(key()), timeout=CALL_TIMEOUT_S
        )

    async def top_up(self, token: str, amount: int) -> P.Payment:
        payment = P.Payment(
            method=P.PAYMENT_METHOD_CARD, amount=brl(amount), card=P.CardSource(card_token=token)
        )
        return await self.stub.CreatePayment(
            P.CreatePaymentRequest(payment=payment), metadata=self.md(key()), timeout=CALL_TIMEOUT_S
        )

    async def get(self, name: str) -> P.Payment:
        return await self.stub.GetPayment(
            P.GetPaymentRequest(name=name), metadata=self.md(), timeout=CALL_TIMEOUT_S
        )

    async def wait(
        self, name: str, states: frozenset[int] = TERMINAL, deadline_s: float = 60.0
    ) -> P.Payment:
        end = time.monotonic() + deadline_s
        while True:
            p = await self.get(name)
            if p.state in states:
                return p
            assert time.monotonic() < end, (
                f"{name} still {P.PaymentState.Name(p.state)} after {deadline_s}s: {p}"
            )
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.channel.close()


@pytest.fixture
async def psp(stack: Stack) -> AsyncIterator[Psp]:
    """The PSP simulator with no faults before and after each test (a fixture:
    import it into a conftest or test module to use it)."""
    client = Psp(stack.simulator_urls["psp"])
    await client.clear()
    yield client
    await client.clear()
    await client.close()


class Psp:
    """The PSP simulator's admin API (faults, DICT, simulated payers)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)

    async def faults(self, **psp: Any) -> None:
        common = {
            k: psp.pop(k)
            for k in list(psp)
            if k in ("latency_ms", "error_rate", "outage", "timeout_rate")
        }
        r1 = await self.http.post("/__admin/faults", json=common)
        r2 = await self.http.post("/__admin/psp", json=psp)
        assert r1.status_code == 200 and r2.status_code == 200, (r1.text, r2.text)

    async def clear(self) -> None:
        await self.faults()

    async def register_key(self, key_type: str, key_value: str, user_id: str, name: str) -> None:
        r = await self.http.post(
            "/__admin/dict",
            json={
                "key_type": key_type,
                "key": key_value,
                "account": user_id,
                "name": name,
                "ispb": "12345678",
            },
        )
        assert r.status_code == 201, r.text

    async def pay_cob(self, txid: str) -> dict[str, Any]:
        r = await self.http.post(f"/__admin/cob/{txid}/pay")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def return_payout(self, e2e: str, return_id: str, amount: int) -> httpx.Response:
        """The receiving bank returns `amount` of the settled PIX payout `e2e`."""
        return await self.http.post(
            f"/__admin/payouts/{e2e}/devolucao/{return_id}", json={"amount": amount}
        )

    async def close(self) -> None:
        await self.http.aclose()


async def post_webhook(stack: Stack, event: dict[str, Any]) -> httpx.Response:
    """`event` as the PSP would send it (HMAC-signed with the dev secret), through
    Envoy: for what the simulator itself never sends (a misbehaving PSP)."""
    secret = base64.b64decode((stack.secrets_dir / "webhook_hmac_secret").read_text().strip())
    body = json.dumps(event).encode()
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        webhooks.TIMESTAMP_HEADER: str(ts),
        webhooks.SIGNATURE_HEADER: webhooks.sign(secret, ts, body),
    }
    tls = ssl.create_default_context(cafile=str(stack.ca_file))
    async with httpx.AsyncClient(base_url=stack.https_url, verify=tls, timeout=15) as c:
        return await c.post("/v1/webhooks/psp", content=body, headers=headers)


async def new_customers(stack: Stack, ledger: LedgerClient, n: int, fund: int) -> list[Customer]:
    """`n` customers with wallets (opened by the ledger from user.registered), each
    funded with `fund` centavos from bank cash."""
    users = [str(uuid.uuid4()) for _ in range(n)]
    await publish_registered(stack.infra.nats_url, [f"users/{u}" for u in users])
    wallets: dict[str, str] = {}
    end = time.monotonic() + WALLET_DEADLINE_S
    for u in users:
        while u not in wallets:
            page = await ledger.stub.ListAccounts(
                ledger_pb2.ListAccountsRequest(owner=f"users/{u}", kind=L.ACCOUNT_KIND_USER_WALLET),
                timeout=10,
            )
            if page.accounts:
                wallets[u] = page.accounts[0].name
                break
            assert time.monotonic() < end, "wallets were not opened"
            await asyncio.sleep(0.2)
    if fund:
        for i in range(0, n, 1000):
            batch = users[i : i + 1000]
            await ledger.submit_ok(
                [transfer(BANK_CASH_ACCOUNT, wallets[u], fund, code="FUNDING") for u in batch]
            )
    return [Customer(u, wallets[u], PaymentsClient(stack, u)) for u in users]


async def balances(ledger: LedgerClient, account: str) -> tuple[int, int, int, int]:
    """(debits_posted, credits_posted, debits_pending, credits_pending)."""
    a = await ledger.account(account)
    return (
        a.debits_posted.minor_units,
        a.credits_posted.minor_units,
        a.debits_pending.minor_units,
        a.credits_pending.minor_units,
    )


def step_names(p: P.Payment) -> list[str]:
    return [s.step for s in p.steps]


async def events_about(
    nats_url: str, event_type: str, aggregate: str, timeout_s: float = 15.0
) -> int:
    """How many `event_type` envelopes about `aggregate` are on the FINTECH stream."""
    nc = await nats.connect(nats_url)
    found = 0
    try:
        js = nc.jetstream()
        sub = await js.subscribe(events_subject(event_type), ordered_consumer=True)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                if found:
                    break
                continue
            envelope = envelope_pb2.EventEnvelope.FromString(msg.data)
            if envelope.subject == aggregate:
                found += 1
        await sub.unsubscribe()
    finally:
        await nc.close()
    return found


def admin_connection(stack: Stack) -> psycopg.Connection:
    """The stack's Postgres as its admin (to write what no API would)."""
    return psycopg.connect(
        database_url(stack.infra.pg_admin_url, DEFAULT_DATABASE), connect_timeout=10
    )


def copy_payment_unstarted(
    stack: Stack, template: uuid.UUID, instrument_change: dict[str, str] | None = None
) -> uuid.UUID:
    """A new PENDING payment like `template` (its instrument changed by
    `instrument_change`), committed 10 s ago and never started: the payments
    sweep starts its workflow. Stands for a payment whose start was lost, or
    one accepted before a check CreatePayment makes now."""
    cipher = FieldCipher.from_file(stack.secrets_dir / "pii_keys.json")
    new_id = uuid.uuid4()
    with admin_connection(stack) as conn:
        row = conn.execute(
            "SELECT instrument_ciphertext FROM payments.payments WHERE id = %s", (template,)
        ).fetchone()
        assert row is not None
        instrument = cipher.decrypt(bytes(row[0]), template.bytes)
        if instrument_change:
            instrument = json.dumps(json.loads(instrument) | instrument_change).encode()
        conn.execute(
            "INSERT INTO payments.payments (id, user_id, method, direction, amount, currency,"
            " fee, description, instrument_ciphertext, instrument_public, state, limit_day,"
            " created_at, updated_at, workflow_started)"
            " SELECT %(new)s, user_id, method, direction, amount, currency, fee, description,"
            " %(ct)s, instrument_public, 'PENDING', limit_day, now() - interval '10 seconds',"
            " now() - interval '10 seconds', false"
            " FROM payments.payments WHERE id = %(old)s",
            {"new": new_id, "old": template, "ct": cipher.encrypt(instrument, new_id.bytes)},
        )
    return new_id
