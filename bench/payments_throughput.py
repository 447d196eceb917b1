"""Benchmark: payments accepted/s and settled/s, request -> SETTLED latency, edge acceptance.

Starts its own stack (profile `hpaybench`, its own ports and state), opens
customer wallets (user.registered, as identity publishes it), funds them, then:
1. accepted/s at the API: closed loop of CreatePayment (PIX) over gRPC for a
   few seconds, as fast as the service accepts;
2. settled/s end to end and p50/p99 from request to SETTLED, with the PSP
   simulator at zero latency: open loop at `--rate` for `--seconds`, then
   wait until every payment is terminal;
3. the same with 200 ms PSP latency on every PSP call;
4. what a payout costs the machine: a closed loop of CreatePayment, every
   payout settled, the CPU of every process over it (bench/proc_cpu.py, the
   benchmark runs alone) divided by the payouts, by part of the stack; and
   the Temporal history events of one payout. `settle_ceiling_per_s` is the
   rate the machine's cores could settle at that cost; `temporal_cores_at_
   100_per_s` what Temporal alone would need to settle 100/s;
5. acceptance p99 through Envoy (HTTPS, JWT, JSON transcoding) at 100
   payments/s, open loop (target < 50 ms), requests sent by Node
   (bench/edgeload.py: the Python generator fell behind at this rate);
6. the same once the machine has settled phase 5's payouts, with the payments
   worker paused (SIGSTOP) for the 15 s: the acceptance path alone, without
   the settlement of the payouts it accepts competing for the same cores
   (payouts wait in Temporal meanwhile and settle once it resumes). Phase 5
   against phase 6 is what settlement on the same two cores costs acceptance.
Prints `name: value` lines.

    python bench/payments_throughput.py [--rate 40] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC
from pathlib import Path

import grpc
from temporalio.client import Client

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from bench.edgeload import run_edge_load  # noqa: E402
from bench.loadgen import bench_stack, open_loop, percentile  # noqa: E402
from bench.proc_cpu import CpuSnapshot, cpu_by_part, process_cpu_s  # noqa: E402
from fintech.payments.v1 import payments_pb2 as P  # noqa: E402
from fintech.type.v1 import money_pb2  # noqa: E402
from services.payments.domain.rules import workflow_id  # noqa: E402
from tests.integration.ledger.ledger_it_support import LedgerClient, wait_serving  # noqa: E402
from tests.integration.payments.payments_it_support import (  # noqa: E402
    TERMINAL,
    Customer,
    Psp,
    new_customers,
)
from tests.support.processes import service_pid  # noqa: E402
from tests.support.tokens import mint_token  # noqa: E402

BENCH_PROFILE = "hpaybench"
BENCH_PORT_BASE = 22000  # the payments helper's port range
CUSTOMERS = 40
FUND = 10**10
AMOUNT = 1_00
MAX_IN_FLIGHT = 200
CLOSED_LOOP_WORKERS = 16
CLOSED_LOOP_SECONDS = 8.0
SETTLE_DEADLINE_S = 300.0
EDGE_RATE = 100.0
EDGE_SECONDS = 15.0
KEY = "ana@example.com"
POLL_CONCURRENCY = 4
POLL_INTERVAL_S = 3.0
MAX_LIST_PAGES = 50  # 5,000 payments per customer: far more than a run makes
CPU_PHASE_SECONDS = 5.0
CPU_PARTS_SHOWN = 12  # the biggest; the rest is in the machine total
TEMPORAL_RATE = 100.0  # the acceptance target's rate, for temporal_cores_at_100_per_s
# Phase 6 waits for the worker to go quiet (phase 5's payouts settled): less
# than this much CPU in a sampling interval, within the bound.
QUIET_WORKER_CPU_S = 0.3
QUIET_SAMPLE_S = 5.0
QUIET_MAX_WAIT_S = 400.0


def _payment() -> P.Payment:
    return P.Payment(
        method=P.PAYMENT_METHOD_PIX,
        amount=money_pb2.Money(currency_code="BRL", minor_units=AMOUNT),
        pix=P.PixDestination(key_type=P.PIX_KEY_TYPE_EMAIL, key=KEY),
    )


async def _create(c: Customer) -> tuple[str, float] | None:
    sent = time.time()
    try:
        p = await c.client.stub.CreatePayment(
            P.CreatePaymentRequest(payment=_payment()),
            metadata=c.client.md(uuid.uuid4().hex),
            timeout=20,
        )
    except grpc.aio.AioRpcError:
        return None
    return p.name, sent


async def accepted_per_second(
    customers: list[Customer], seconds: float = CLOSED_LOOP_SECONDS
) -> tuple[float, list[tuple[Customer, str, float]]]:
    made: list[tuple[Customer, str, float]] = []
    end = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        n = 0
        while time.perf_counter() < end:
            c = customers[(i + n * CLOSED_LOOP_WORKERS) % len(customers)]
            n += 1
            got = await _create(c)
            if got is not None:
                made.append((c, *got))

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CLOSED_LOOP_WORKERS)))
    return len(made) / (time.perf_counter() - began), made


async def _states(c: Customer, names: set[str]) -> dict[str, P.Payment]:
    """The customer's payments among `names`, read with ListPayments (newest
    first, 100 a page) until all are seen: a few calls per customer instead of
    one GetPayment per payment, so the polling does not load the service."""
    found: dict[str, P.Payment] = {}
    token = ""
    for _ in range(MAX_LIST_PAGES):
        page = await c.client.stub.ListPayments(
            P.ListPaymentsRequest(page_size=100, page_token=token),
            metadata=c.client.md(),
            timeout=20,
        )
        for p in page.payments:
            if p.name in names:
                found[p.name] = p
        token = page.next_page_token
        if not token or len(found) == len(names):
            break
    return found


async def settle_all(made: list[tuple[Customer, str, float]]) -> tuple[list[float], float, int]:
    """Latencies request -> SETTLED (ms, sorted), settled/s over the run, failures."""
    pending = list(made)
    latencies: list[float] = []
    failed = 0
    first_sent = min(s for _, _, s in made)
    last_settle = first_sent
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    # Gentle polling: the latency comes from the server's settle_time, so a slow
    # poll does not change it, while a hard one would load the service measured.
    sem = asyncio.Semaphore(POLL_CONCURRENCY)

    async def states(c: Customer, names: set[str]) -> dict[str, P.Payment]:
        async with sem:
            return await _states(c, names)

    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} payments never became terminal"
        by_customer: dict[str, tuple[Customer, set[str]]] = {}
        for c, n, _ in pending:
            by_customer.setdefault(c.user_id, (c, set()))[1].add(n)
        pages = await asyncio.gather(*(states(c, names) for c, names in by_customer.values()))
        seen = {name: p for page in pages for name, p in page.items()}
        still = []
        for c, n, sent in pending:
            p = seen.get(n)
            if p is None or p.state not in TERMINAL:
                still.append((c, n, sent))
            elif p.state == P.PAYMENT_STATE_SETTLED:
                settled_at = p.settle_time.ToDatetime(tzinfo=UTC).timestamp()
                latencies.append((settled_at - sent) * 1000)
                last_settle = max(last_settle, settled_at)
            else:
                failed += 1
        pending = still
        if pending:
            await asyncio.sleep(POLL_INTERVAL_S)
    rate = len(latencies) / max(1e-6, last_settle - first_sent)
    return sorted(latencies), rate, failed


async def open_loop_payments(
    customers: list[Customer], rate: float, seconds: float
) -> tuple[list[float], list[tuple[Customer, str, float]], int]:
    made: list[tuple[Customer, str, float]] = []

    async def call(i: int) -> bool:
        c = customers[i % len(customers)]
        got = await _create(c)
        if got is None:
            return False
        made.append((c, *got))
        return True

    accept, errors = await open_loop(call, rate, seconds, MAX_IN_FLIGHT)
    return accept, made, errors


def edge_acceptance(
    base_url: str, ca_file: Path, secrets_dir: Path, customers: list[Customer]
) -> tuple[list[float], int, dict[str, int]]:
    tokens = [
        mint_token(secrets_dir, ["user"], subject=c.user_id, lifetime_s=600) for c in customers
    ]
    body = json.dumps(
        {
            "method": "PAYMENT_METHOD_PIX",
            "amount": {"currency_code": "BRL", "minor_units": str(AMOUNT)},
            "pix": {"key_type": "PIX_KEY_TYPE_EMAIL", "key": KEY},
        }
    )
    load = run_edge_load(
        f"{base_url}/v1/payments",
        ca_file,
        rate=EDGE_RATE,
        seconds=EDGE_SECONDS,
        warmup_seconds=2.0,  # connections, caches
        headers_list=[{"authorization": f"Bearer {t}"} for t in tokens],
        bodies=[body],
        unique_header="idempotency-key",
    )
    return load.latencies_ms, load.errors, load.statuses


async def wait_until_quiet(pid: int) -> float:
    """Seconds until `pid` used under QUIET_WORKER_CPU_S of CPU in QUIET_SAMPLE_S."""
    began = time.perf_counter()
    last = process_cpu_s(pid)
    while time.perf_counter() - began < QUIET_MAX_WAIT_S:
        await asyncio.sleep(QUIET_SAMPLE_S)
        now = process_cpu_s(pid)
        if now - last < QUIET_WORKER_CPU_S:
            break
        last = now
    return time.perf_counter() - began


def edge_acceptance_worker_paused(
    worker_pid: int, base_url: str, ca_file: Path, secrets_dir: Path, customers: list[Customer]
) -> tuple[list[float], int, dict[str, int]]:
    """Phase 5 with the payments worker stopped: nothing settles meanwhile."""
    os.kill(worker_pid, signal.SIGSTOP)
    try:
        return edge_acceptance(base_url, ca_file, secrets_dir, customers)
    finally:
        os.kill(worker_pid, signal.SIGCONT)


def _statuses(statuses: dict[str, int]) -> str:
    """HTTP status → count; 0 is a request the generator gave up on (its
    timeout or a reset), an error with no answer from the edge."""
    return " ".join(f"{k}={v}" for k, v in sorted(statuses.items()))


def _ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p):.1f}" if values else "n/a"


async def cpu_per_payout(customers: list[Customer], temporal_address: str) -> None:
    """Phase 4: the machine's CPU per payout, accepted and settled, by part."""
    before = CpuSnapshot.take()
    _, made = await accepted_per_second(customers, CPU_PHASE_SECONDS)
    _, _, failed = await settle_all(made)
    machine_s, parts = cpu_by_part(before, CpuSnapshot.take())
    n = len(made)
    per_payout_ms = machine_s / n * 1000
    print(f"cpu_phase_payouts: {n} ({failed} failed)")
    print(f"cpu_per_payout_ms: {per_payout_ms:.1f}")
    for part, cpu_s in sorted(parts.items(), key=lambda kv: -kv[1])[:CPU_PARTS_SHOWN]:
        print(f"cpu_per_payout_ms_{part}: {cpu_s / n * 1000:.1f}")
    cores = os.cpu_count() or 1
    print(f"settle_ceiling_per_s: {cores * 1000 / per_payout_ms:.1f} (all {cores} cores)")
    temporal_ms = parts.get("temporal", 0.0) / n * 1000
    print(f"temporal_cores_at_100_per_s: {temporal_ms * TEMPORAL_RATE / 1000:.2f}")
    client = await Client.connect(temporal_address)
    payment_id = uuid.UUID(made[0][1].removeprefix("payments/"))
    history = await client.get_workflow_handle(workflow_id(payment_id)).fetch_history()
    print(f"temporal_history_events_per_payout: {len(history.events)}")


async def run(rate: float, seconds: float) -> None:
    with bench_stack(BENCH_PROFILE, BENCH_PORT_BASE) as bench:
        stack = bench.stack
        print(f"stack_ready_seconds: {bench.ready_seconds:.1f}")
        ledger = LedgerClient(stack.grpc_targets["ledger"], stack.secrets_dir)
        await wait_serving(ledger)
        psp = Psp(stack.simulator_urls["psp"])
        await psp.clear()
        customers = await new_customers(stack, ledger, CUSTOMERS, FUND)
        # Warm the service (wallet cache, token, pools) before measuring.
        warm = [x for x in await asyncio.gather(*(_create(c) for c in customers)) if x]
        await settle_all([(c, n, s) for c, (n, s) in zip(customers, warm, strict=False)])

        per_s, made = await accepted_per_second(customers)
        print(f"api_accepted_per_s_closed_loop: {per_s:.1f}")
        lat, settled_rate, failed = await settle_all(made)
        print(f"closed_loop_settled_per_s: {settled_rate:.1f}")

        for label, latency_ms in (("zero_latency", 0), ("psp_200ms", 200)):
            await psp.faults(latency_ms=latency_ms)
            accept, made, errors = await open_loop_payments(customers, rate, seconds)
            lat, settled_rate, failed = await settle_all(made)
            print(f"{label}_offered_rate_per_s: {rate:.0f}")
            print(f"{label}_accept_p50_ms: {_ms(accept, 50)}")
            print(f"{label}_accept_p99_ms: {_ms(accept, 99)}")
            print(f"{label}_accept_errors: {errors}")
            print(f"{label}_settled_per_s: {settled_rate:.1f}")
            print(f"{label}_request_to_settled_p50_ms: {_ms(lat, 50)}")
            print(f"{label}_request_to_settled_p99_ms: {_ms(lat, 99)}")
            print(f"{label}_failed: {failed}")
        await psp.clear()
        await cpu_per_payout(customers, stack.infra.temporal_address)

        edge, errors, statuses = edge_acceptance(
            stack.https_url, stack.ca_file, stack.secrets_dir, customers
        )
        print(f"edge_accept_rate_per_s: {EDGE_RATE:.0f}")
        print(f"edge_accept_p50_ms: {_ms(edge, 50)}")
        print(f"edge_accept_p99_ms: {_ms(edge, 99)}")
        print(f"edge_accept_errors: {errors}")
        print(f"edge_accept_statuses: {_statuses(statuses)}")

        worker = service_pid("payments", stack.infra.config.ports["payments_worker"])
        print(f"edge_settled_wait_s: {await wait_until_quiet(worker):.0f}")
        paused, errors, statuses = edge_acceptance_worker_paused(
            worker, stack.https_url, stack.ca_file, stack.secrets_dir, customers
        )
        print(f"edge_accept_worker_paused_p50_ms: {_ms(paused, 50)}")
        print(f"edge_accept_worker_paused_p99_ms: {_ms(paused, 99)}")
        print(f"edge_accept_worker_paused_errors: {errors}")
        print(f"edge_accept_worker_paused_statuses: {_statuses(statuses)}")
        for c in customers:
            await c.client.close()
        await psp.close()
        await ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    asyncio.run(run(args.rate, args.seconds))


if __name__ == "__main__":
    main()
