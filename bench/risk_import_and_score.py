"""Benchmark: Open Finance import end to end, then RiskService.Score latency.

Starts its own stack (profile `benchrisk`, port base 14000, state wiped first
unless --keep-state), with the Open Finance and bureau simulators, then:
1. import: the heavy fixed customer (3 accounts x 12 months, ~3,000
   transactions) through the edge as the app does it — CreateConsent →
   authorisation at the bank → AuthoriseConsent → CreateStatementImport →
   polled until SUCCEEDED. Timed from the consent request to the poll that
   sees SUCCEEDED (client view), and from the import's create_time to its
   complete_time (server view, free of the polling interval).
2. Score: open-loop gRPC calls (service token, a fresh idempotency key each,
   as loans would call it) at a steady rate for the customer just imported.
   Latency is measured from each request's *scheduled* start, so a stall is
   not hidden by the generator waiting (no coordinated omission); the rate
   actually sent and completed is printed next to the target.
Prints `name: value` lines.

    python bench/risk_import_and_score.py [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from bench.loadgen import bench_stack, percentile  # noqa: E402
from devstack.stack import Stack  # noqa: E402
from fintech.risk.v1 import risk_pb2, risk_pb2_grpc  # noqa: E402
from tests.integration.edge import EdgeClient  # noqa: E402
from tests.integration.risk.risk_it_cpfs import HEAVY_CPF, SALARIED_CPF  # noqa: E402
from tests.integration.risk.risk_it_support import (  # noqa: E402
    SUCCEEDED,
    Bank,
    OpenFinanceApp,
    as_int,
    brl,
    customer,
    months_ago,
    parse_time,
    simulator_urls,
)
from tests.support.tokens import mint_token  # noqa: E402

BENCH_PORT_BASE = 14000  # ledger bench 12000, edge bench 13000; all below the ephemeral range
MAX_IN_FLIGHT = 400  # bounds the generator if the service stalls
WARMUP_SECONDS = 2.0
IMPORT_TIMEOUT_S = 300.0
IMPORT_POLL_S = 0.05  # fine-grained so the client-side import time is not rounded up much
SIMULATOR_READY_TIMEOUT_S = 30.0
SCORE_TIMEOUT_S = 10.0
SCORE_AMOUNT_MINOR = 100_000
UNLOADED_CALLS = 30


@dataclass
class ImportResult:
    seconds_client: float
    seconds_server: float
    transactions: int
    accounts: int
    pages: int


def run_import(stack: Stack, cpf: str = HEAVY_CPF) -> tuple[ImportResult, str]:
    """A customer's import (the heavy one by default), end to end through the edge;
    returns it and users/{id}."""
    open_finance_url, _ = simulator_urls(stack)
    bank = Bank(open_finance_url)
    deadline = time.monotonic() + SIMULATOR_READY_TIMEOUT_S
    while not bank.healthy():
        if time.monotonic() > deadline:
            raise SystemExit(f"Open Finance simulator not healthy at {open_finance_url}")
        time.sleep(0.5)
    bank.reset_faults()
    edge = EdgeClient(stack.https_url, str(stack.ca_file))
    try:
        app = OpenFinanceApp(edge, customer(edge, cpf))
        began = time.perf_counter()
        consent = app.authorised_consent(bank)
        started = app.start_import(consent["name"], from_date=months_ago(12), to_date=months_ago(0))
        assert started.status_code == 200, started.text
        name = started.json()["name"]
        poll_deadline = time.monotonic() + IMPORT_TIMEOUT_S
        while True:
            current = app.get_import(name)
            if current["state"] == SUCCEEDED:
                break
            if current["state"] == "IMPORT_STATE_FAILED" or time.monotonic() > poll_deadline:
                raise SystemExit(f"import did not succeed: {current}")
            time.sleep(IMPORT_POLL_S)
        seconds_client = time.perf_counter() - began
        server = parse_time(current["complete_time"]) - parse_time(current["create_time"])
        # With --keep-state the customer may have been imported before: then its
        # transactions count as skipped, and both are the work done.
        transactions = as_int(current["transactions_imported"]) + as_int(
            current["transactions_skipped"]
        )
        return (
            ImportResult(
                seconds_client=seconds_client,
                seconds_server=server.total_seconds(),
                transactions=transactions,
                accounts=as_int(current["accounts_imported"]),
                pages=as_int(current["pages_fetched"]),
            ),
            app.user,
        )
    finally:
        edge.close()
        bank.close()


@dataclass
class LoadResult:
    latencies_ms: list[float]
    errors: int
    error_codes: dict[str, int]
    sent_rps: float
    completed_rps: float


async def open_loop(
    stub: risk_pb2_grpc.RiskServiceStub, token: str, user: str, rate: float, seconds: float
) -> LoadResult:
    """Issue Score every 1/rate s for `seconds`, whatever the answers' speed."""
    interval = 1.0 / rate
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    error_codes: dict[str, int] = {}
    # Bounds the requests in flight; acquiring it is where a saturated
    # generator waits, and that wait shows up in latency (measured from schedule).
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: list[asyncio.Task[None]] = []
    last_done = 0.0

    async def one(scheduled: float) -> None:
        nonlocal errors, last_done
        request = risk_pb2.ScoreRequest(
            user=user,
            requested_amount=brl(SCORE_AMOUNT_MINOR),
            term_months=12,
            reference=f"quotes/{uuid.uuid4()}",
        )
        metadata = (("authorization", f"Bearer {token}"), ("idempotency-key", uuid.uuid4().hex))
        try:
            await stub.Score(request, metadata=metadata, timeout=SCORE_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            errors += 1
            error_codes[exc.code().name] = error_codes.get(exc.code().name, 0) + 1
        finally:
            slots.release()
            last_done = time.perf_counter()
            latencies.append((last_done - scheduled) * 1000)

    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(one(scheduled)))
    sent_window = time.perf_counter() - start
    await asyncio.gather(*tasks)
    done_window = last_done - start
    return LoadResult(
        latencies_ms=sorted(latencies),
        errors=errors,
        error_codes=error_codes,
        sent_rps=total / sent_window if sent_window > 0 else 0.0,
        completed_rps=(total - errors) / done_window if done_window > 0 else 0.0,
    )


async def unloaded(stub: risk_pb2_grpc.RiskServiceStub, token: str, user: str) -> list[float]:
    """One Score at a time: the service's own cost per call, without queueing."""
    latencies = []
    for _ in range(UNLOADED_CALLS):
        began = time.perf_counter()
        await stub.Score(
            risk_pb2.ScoreRequest(
                user=user, requested_amount=brl(SCORE_AMOUNT_MINOR), term_months=12
            ),
            metadata=(("authorization", f"Bearer {token}"), ("idempotency-key", uuid.uuid4().hex)),
            timeout=SCORE_TIMEOUT_S,
        )
        latencies.append((time.perf_counter() - began) * 1000)
    return sorted(latencies)


async def measure_score(
    stack: Stack, user: str, rate: float, seconds: float
) -> tuple[list[float], LoadResult]:
    # One service token for the whole run (5 min lifetime, the run is shorter).
    token = mint_token(stack.secrets_dir, ["service"], subject="service:bench")
    channel = grpc.aio.insecure_channel(stack.grpc_targets["risk"])
    stub = risk_pb2_grpc.RiskServiceStub(channel)
    try:
        # Sequential calls first: they also warm the connection and caches.
        alone = await unloaded(stub, token, user)
        await open_loop(stub, token, user, rate, WARMUP_SECONDS)
        return alone, await open_loop(stub, token, user, rate, seconds)
    finally:
        await channel.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--keep-state",
        action="store_true",
        help="reuse .state/benchrisk (a warm start) instead of a cold one",
    )
    parser.add_argument(
        "--score-customer",
        choices=("heavy", "salaried"),
        default="heavy",
        help="whose Score to load: the heavy customer just imported, or the salaried one",
    )
    args = parser.parse_args()
    assert 0 < args.rate <= 2000 and 0 < args.seconds <= 600

    with bench_stack("benchrisk", BENCH_PORT_BASE, keep_state=args.keep_state) as bench:
        ready = bench.ready_seconds
        imported, user = run_import(bench.stack)
        if args.score_customer == "salaried":
            # A typical customer (2 accounts, ~400 transactions) instead of the heaviest.
            _, user = run_import(bench.stack, SALARIED_CPF)
        alone, load = asyncio.run(measure_score(bench.stack, user, args.rate, args.seconds))

    print(f"run_utc: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    print(f"stack_cold_start_ready_seconds: {ready:.1f}")
    print(f"import_accounts: {imported.accounts}")
    print(f"import_transactions: {imported.transactions}")
    print(f"import_pages_fetched: {imported.pages}")
    print(f"import_end_to_end_seconds: {imported.seconds_client:.2f}")
    print(f"import_server_seconds: {imported.seconds_server:.2f}")
    print(f"import_transactions_per_s: {imported.transactions / imported.seconds_client:.0f}")
    print(f"score_unloaded_calls: {len(alone)}")
    print(f"score_unloaded_p50_ms: {percentile(alone, 50):.2f}")
    print(f"score_unloaded_max_ms: {alone[-1]:.2f}")
    print(f"score_customer: {args.score_customer}")
    print(f"score_target_rps: {args.rate:.0f}")
    print(f"score_sent_rps: {load.sent_rps:.1f}")
    print(f"score_completed_rps: {load.completed_rps:.1f}")
    print(f"score_requests: {len(load.latencies_ms)}")
    print(f"score_errors: {load.errors}")
    for code, count in sorted(load.error_codes.items()):
        print(f"score_errors_{code.lower()}: {count}")
    print(f"score_p50_ms: {percentile(load.latencies_ms, 50):.2f}")
    print(f"score_p99_ms: {percentile(load.latencies_ms, 99):.2f}")
    print(f"score_max_ms: {load.latencies_ms[-1]:.2f}")
    print(f"score_p99_target_met: {percentile(load.latencies_ms, 99) < 20.0}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
