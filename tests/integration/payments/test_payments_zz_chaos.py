"""Chaos: many payouts while the PSP injects errors, duplicate and delayed webhooks,
and both payments processes (the API, and the worker that runs the Temporal
workflows and activities) are SIGKILLed and restarted twice. At the end every
payment is terminal, the ledger verifies, each wallet was debited exactly its
settled payments (never twice, never without the PSP's settlement) and no
reservation is left open.

Runs last in the package (file name): it replaces the stack's payments
processes with its own, which it stops at the end. The issue asks for 500
payments; CHAOS_PAYMENTS is what the shared 2-core machine runs in a few minutes.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import grpc
import pytest

from devstack.devsecrets import provider_client
from devstack.procs import Supervisor
from devstack.stack import Stack
from fintech.payments.v1 import payments_pb2 as P
from tests.integration.ledger.ledger_it_support import LedgerClient
from tests.integration.payments.payments_it_support import (
    PSP_CLEARING_ACCOUNT,
    TERMINAL,
    Customer,
    Psp,
    balances,
    key,
    new_customers,
)
from tests.support.processes import (
    RestartableService,
    port_of,
    service_pid,
    service_spec,
    sigkill,
)

pytestmark = pytest.mark.integration

CHAOS_PAYMENTS = 500
CUSTOMERS = 50
AMOUNT = 1_00
FUND = 100_000
KILLS = 2
DEADLINE_S = 600.0
CONCURRENCY = 24


@dataclass
class PaymentsProcess(RestartableService):
    """One of the stack's payments processes, replaced by one we can SIGKILL and restart."""

    port: int = 0

    def kill_original(self) -> None:
        sigkill(service_pid("payments", self.port))


@dataclass
class PaymentsProcesses:
    api: PaymentsProcess
    worker: PaymentsProcess

    def kill(self) -> None:
        self.worker.kill()
        self.api.kill()

    async def start(self) -> None:
        self.api.start()
        self.worker.start()
        await self.api.wait_ready()
        await self.worker.wait_ready()


@pytest.fixture
def payments_procs(stack: Stack, service_restarts: Supervisor) -> PaymentsProcesses:
    # The last replacements keep serving after the test (service_restarts).
    return PaymentsProcesses(
        api=PaymentsProcess(
            spec=service_spec(stack, "payments", "payments-chaos"),
            supervisor=service_restarts,
            port=port_of(stack.grpc_targets["payments"]),
        ),
        worker=PaymentsProcess(
            spec=service_spec(stack, "payments_worker", "payments-worker-chaos"),
            supervisor=service_restarts,
            port=stack.infra.config.ports["payments_worker"],
        ),
    )


async def _create(c: Customer, idem: str) -> str:
    """CreatePayment, retried with the same key until the service answers."""
    while True:
        try:
            return (
                await c.client.pay_pix("ana@example.com", P.PIX_KEY_TYPE_EMAIL, AMOUNT, idem=idem)
            ).name
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.INTERNAL,
                grpc.StatusCode.UNKNOWN,
            ):
                raise
            await asyncio.sleep(0.3)


async def _state(c: Customer, name: str) -> int:
    try:
        return int((await c.client.get(name)).state)
    except grpc.aio.AioRpcError:
        return P.PAYMENT_STATE_UNSPECIFIED


async def test_chaos_payouts_survive_kills_and_psp_faults(
    stack: Stack, ledger: LedgerClient, psp: Psp, payments_procs: PaymentsProcesses
) -> None:
    customers = await new_customers(stack, ledger, CUSTOMERS, FUND)
    await psp.faults(
        error_rate=0.2,
        latency_ms=5,
        webhook_duplicate_rate=0.1,
        webhook_delay_ms=800,
        webhook_out_of_order_rate=0.2,
        reject_rate=0.05,
        seed=7,
    )
    payments_procs.worker.kill_original()
    payments_procs.api.kill_original()
    await payments_procs.start()

    rng = random.Random(3)
    jobs = [(customers[i % CUSTOMERS], key()) for i in range(CHAOS_PAYMENTS)]
    rng.shuffle(jobs)
    names: list[tuple[Customer, str]] = []
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(c: Customer, idem: str) -> None:
        async with sem:
            names.append((c, await _create(c, idem)))

    started = time.monotonic()
    creating = asyncio.gather(*(one(c, k) for c, k in jobs))
    for _ in range(KILLS):
        await asyncio.sleep(4.0)
        payments_procs.kill()
        await asyncio.sleep(1.0)
        await payments_procs.start()
    await creating
    assert len(names) == CHAOS_PAYMENTS
    assert len({n for _, n in names}) == CHAOS_PAYMENTS  # one payment per request key

    pending = list(names)
    final: dict[str, int] = {}
    while pending:
        assert time.monotonic() - started < DEADLINE_S, f"{len(pending)} payments not terminal"
        states = await asyncio.gather(*(_state(c, n) for c, n in pending))
        still = []
        for (c, n), s in zip(pending, states, strict=True):
            if s in TERMINAL:
                final[n] = s
            else:
                still.append((c, n))
        pending = still
        if pending:
            await asyncio.sleep(1.0)
    await psp.clear()

    settled = {n for n, s in final.items() if s == P.PAYMENT_STATE_SETTLED}
    assert set(final.values()) <= {P.PAYMENT_STATE_SETTLED, P.PAYMENT_STATE_FAILED}
    assert len(settled) > CHAOS_PAYMENTS // 2  # most go through despite the faults

    # Each wallet was debited exactly its settled payments, nothing left reserved.
    per_customer: dict[str, int] = {}
    for c, n in names:
        per_customer[c.user_id] = per_customer.get(c.user_id, 0) + (AMOUNT if n in settled else 0)
    for c in customers:
        assert await balances(ledger, c.wallet) == (per_customer.get(c.user_id, 0), FUND, 0, 0)

    # Nothing reserved anywhere on PSP clearing (every workflow resolved its hold).
    clearing = await balances(ledger, PSP_CLEARING_ACCOUNT)
    assert clearing[3] == 0, clearing

    # The PSP agrees: settled here <=> settled there (no debit without a settlement).
    from services.payments.psp import PspClient

    client = PspClient(stack.simulator_urls["psp"], *provider_client(stack.secrets_dir, "psp"))
    try:
        for _, n in names:
            payout = await client.find_payout(n)
            there = payout.status if payout is not None else "NONE"
            assert (there == "SETTLED") == (n in settled), (n, there, final[n])
    finally:
        await client.aclose()
    await ledger.assert_verifies()
