"""Benchmark: loan schedule compute time, and SimulateLoan through Envoy under load.

1. Compute (no servers): a 48-month Price schedule (`amortize`) and a whole
   48-month quote (two schedules, IOF, CET solve), timed per call over many
   calls; p50/p99 in microseconds. Target: schedule < 1 ms.
2. Edge: starts its own stack (profile `benchloans`, port base 15000, state
   wiped first unless --keep-state), prepares the simulators' salaried customer
   (Open Finance import, KYC approved), then sends POST /v1/loans:simulate over
   HTTPS/JSON (HTTP/2) through Envoy, open loop at --rate for --seconds, latency
   from each request's scheduled start (no coordinated omission). The requests
   come from Node (bench/edgeload.py): the Python generator could not send 200/s. The customer's
   risk band is cached by loans after the first call (as in production), so
   this measures the quote path: Envoy (TLS, JWT, rate limit, transcoding) →
   loans (band from Redis, quote, INSERT) → back. Target: p99 < 20 ms at 200/s.
3. Direct: the same open loop straight to loans over gRPC (no Envoy), to tell
   the service's own share from the edge's and the HTTP client's.
Prints `name: value` lines.

    python bench/loans_simulate.py [--rate 200] [--seconds 20] [--compute-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from bench.edgeload import run_edge_load  # noqa: E402
from bench.loadgen import bench_stack, open_loop, percentile  # noqa: E402
from fintech.loans.v1 import loans_pb2, loans_pb2_grpc  # noqa: E402
from fintech.type.v1 import money_pb2  # noqa: E402
from services.loans.domain.calendar import due_dates  # noqa: E402
from services.loans.domain.schedule import (  # noqa: E402
    FeePolicy,
    System,
    amortize,
    quote,
)
from tests.integration.loans.loans_it_support import prepare_borrower  # noqa: E402
from tests.support.tokens import mint_token  # noqa: E402

BENCH_PORT_BASE = 15000  # ledger 12000, edge 13000, risk 14000: below the ephemeral range
MAX_IN_FLIGHT = 400
WARMUP_SECONDS = 2.0
COMPUTE_CALLS = 3000
# Twenty round amounts (R$ 1.000 to R$ 4.800, inside every approving band): the
# loans service caches computed quotes by their inputs, and real customers
# repeat round amounts, so the run is mostly hits after the first twenty.
PRINCIPALS_MINOR = [1_000_00 + 200_00 * k for k in range(20)]
TERM = 48


def envoy_view(access_log: Path, skip: int) -> tuple[list[float], list[float]]:
    """Envoy's own latencies for the simulations after the first `skip` (warm-up),
    whole ms: total and upstream (loans), free of the Python client's overhead."""
    total: list[float] = []
    upstream: list[float] = []
    for line in access_log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("path") != "/v1/loans:simulate" or entry.get("status") != 200:
            continue
        total.append(float(entry["duration_ms"]))
        if entry.get("upstream_ms") not in (None, "-"):
            upstream.append(float(entry["upstream_ms"]))
    return sorted(total[skip:]), sorted(upstream[skip:])


def compute_bench() -> dict[str, float]:
    d0 = date(2026, 11, 27)
    dates = due_dates(date(2026, 12, 27), TERM)
    rate = Decimal("0.0349")
    schedule_us: list[float] = []
    quote_us: list[float] = []
    for i in range(COMPUTE_CALLS):
        principal = 5_000_00 + i  # never the same inputs twice: no caching helps
        began = time.perf_counter()
        amortize(principal, rate, TERM, System.PRICE, dates)
        schedule_us.append((time.perf_counter() - began) * 1e6)
        began = time.perf_counter()
        quote(
            principal=principal,
            term_months=TERM,
            system=System.PRICE,
            monthly_rate=rate,
            disbursement_date=d0,
            first_due_date=d0 + timedelta(days=30 + i % 7),  # regular and irregular periods
            fees=FeePolicy(),
        )
        quote_us.append((time.perf_counter() - began) * 1e6)
    schedule_us.sort()
    quote_us.sort()
    return {
        "schedule_48m_p50_us": percentile(schedule_us, 50),
        "schedule_48m_p99_us": percentile(schedule_us, 99),
        "quote_48m_p50_us": percentile(quote_us, 50),
        "quote_48m_p99_us": percentile(quote_us, 99),
    }


def edge_bench(
    https_url: str, ca_file: str, token: str, rate: float, seconds: float
) -> tuple[list[float], int, float]:
    bodies = [
        json.dumps(
            {
                "principal": {"currency_code": "BRL", "minor_units": str(amount)},
                "term_months": TERM,
                "amortization_system": "AMORTIZATION_SYSTEM_PRICE",
            }
        )
        for amount in PRINCIPALS_MINOR
    ]
    # The first call also warms the band cache; the warm-up phase the connections.
    load = run_edge_load(
        f"{https_url}/v1/loans:simulate",
        Path(ca_file),
        rate=rate,
        seconds=seconds,
        warmup_seconds=WARMUP_SECONDS,
        headers_list=[{"authorization": f"Bearer {token}"}],
        bodies=bodies,
    )
    return load.latencies_ms, load.errors, load.elapsed_s


async def direct_bench(
    target: str, token: str, rate: float, seconds: float
) -> tuple[list[float], int, float]:
    """The same calls straight to loans over gRPC (no Envoy, no TLS, no JSON): what
    the service itself sustains, with a much cheaper client on the shared cores."""
    metadata = (("authorization", f"Bearer {token}"),)
    requests = [
        loans_pb2.SimulateLoanRequest(
            principal=money_pb2.Money(currency_code="BRL", minor_units=amount),
            term_months=TERM,
            amortization_system=loans_pb2.AMORTIZATION_SYSTEM_PRICE,
        )
        for amount in PRINCIPALS_MINOR
    ]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = loans_pb2_grpc.LoansServiceStub(channel)

        async def simulate(i: int) -> bool:
            try:
                await stub.SimulateLoan(
                    requests[i % len(requests)], metadata=metadata, timeout=10.0
                )
            except grpc.aio.AioRpcError:
                return False
            return True

        await open_loop(simulate, rate, WARMUP_SECONDS, MAX_IN_FLIGHT)
        began = time.perf_counter()
        latencies, errors = await open_loop(simulate, rate, seconds, MAX_IN_FLIGHT)
        elapsed = time.perf_counter() - began
    return latencies, errors, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep-state", action="store_true")
    parser.add_argument("--compute-only", action="store_true")
    args = parser.parse_args()
    assert 0 < args.rate <= 2000 and 0 < args.seconds <= 600
    print(f"run_utc: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    for name, value in compute_bench().items():
        print(f"{name}: {value:.1f}")
    if args.compute_only:
        return 0
    with bench_stack("benchloans", BENCH_PORT_BASE, keep_state=args.keep_state) as bench:
        stack = bench.stack
        print(f"stack_cold_start_ready_seconds: {bench.ready_seconds:.1f}")
        borrower = prepare_borrower(stack)
        token = mint_token(stack.secrets_dir, ["user"], subject=borrower.user_id, lifetime_s=900)
        latencies, errors, elapsed = edge_bench(
            stack.https_url, str(stack.ca_file), token, args.rate, args.seconds
        )
        # Everything before the measured run: the warm-up.
        warmup = int(args.rate * WARMUP_SECONDS)
        envoy_total, envoy_upstream = envoy_view(stack.logs_dir / "envoy-access.log", warmup)
        direct, direct_errors, direct_elapsed = asyncio.run(
            direct_bench(stack.grpc_targets["loans"], token, args.rate, args.seconds)
        )
    print(f"simulate_target_rps: {args.rate:.0f}")
    print(f"simulate_completed_rps: {len(latencies) / elapsed:.1f}")
    print(f"simulate_requests: {len(latencies)}")
    print(f"simulate_errors: {errors}")
    print(f"simulate_edge_p50_ms: {percentile(latencies, 50):.2f}")
    print(f"simulate_edge_p99_ms: {percentile(latencies, 99):.2f}")
    print(f"simulate_edge_max_ms: {latencies[-1]:.2f}")
    if envoy_total:
        print(f"simulate_envoy_observed_p50_ms: {percentile(envoy_total, 50):.0f}")
        print(f"simulate_envoy_observed_p99_ms: {percentile(envoy_total, 99):.0f}")
    print(f"simulate_direct_completed_rps: {len(direct) / direct_elapsed:.1f}")
    print(f"simulate_direct_errors: {direct_errors}")
    print(f"simulate_direct_p50_ms: {percentile(direct, 50):.2f}")
    print(f"simulate_direct_p99_ms: {percentile(direct, 99):.2f}")
    if envoy_upstream:
        print(f"simulate_envoy_upstream_loans_p50_ms: {percentile(envoy_upstream, 50):.0f}")
        print(f"simulate_envoy_upstream_loans_p99_ms: {percentile(envoy_upstream, 99):.0f}")
    return 0 if errors == 0 and direct_errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
