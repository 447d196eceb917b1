"""Benchmark: stack start-up time and GET /v1/users/me latency, edge vs direct.

Starts its own stack (profile `bench`, its own ports and state), registers and
logs in a user, then drives GET /v1/users/me at a steady open-loop rate:
1. through Envoy (HTTPS, JWT check, rate limit, JSON transcoding), and
2. straight to identity over gRPC (the same RPC, same token),
interleaved in rounds so both see the same machine noise. Latency is measured
from each request's *scheduled* start, so a stall is not hidden by the
generator waiting (no coordinated omission). Prints `name: value` lines.

    python bench/edge_latency.py [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import uuid
from pathlib import Path

import grpc
import httpx

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from bench.loadgen import bench_stack, open_loop, percentile  # noqa: E402
from fintech.identity.v1 import identity_pb2, identity_pb2_grpc  # noqa: E402
from tests.integration.edge import EdgeClient  # noqa: E402

BENCH_PORT_BASE = 13000  # below 32768 (ephemeral ports start there); the ledger bench uses 12000
MAX_IN_FLIGHT = 400  # bounds the generator if the target stalls
ROUNDS = 4
WARMUP_SECONDS = 2


def envoy_observed(access_log: Path, skip: int) -> tuple[list[float], list[float]]:
    """Envoy's own view of GET /v1/users/me from its JSON access log (whole ms).

    Server-side numbers, free of the Python load generator's own overhead,
    which shares the two cores with the stack. `skip` drops the warm-up.
    """
    total: list[float] = []
    upstream: list[float] = []
    for line in access_log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("path") != "/v1/users/me" or entry.get("status") != 200:
            continue
        total.append(float(entry["duration_ms"]))
        if entry.get("upstream_ms") not in (None, "-"):
            upstream.append(float(entry["upstream_ms"]))
    return sorted(total[skip:]), sorted(upstream[skip:])


async def measure(
    https_url: str, ca_file: str, identity_target: str, token: str, rate: float, seconds: float
) -> dict[str, list[float] | int]:
    headers = {"authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    edge_latencies: list[float] = []
    direct_latencies: list[float] = []
    errors = 0
    tls = ssl.create_default_context(cafile=ca_file)
    async with httpx.AsyncClient(
        base_url=https_url, verify=tls, limits=limits, timeout=10.0
    ) as http:
        channel = grpc.aio.insecure_channel(identity_target)
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)

        async def via_edge(_: int) -> bool:
            response = await http.get("/v1/users/me", headers=headers)
            return response.status_code == 200

        async def direct(_: int) -> bool:
            try:
                await stub.GetUser(
                    identity_pb2.GetUserRequest(name="users/me"), metadata=metadata, timeout=10
                )
            except grpc.aio.AioRpcError:
                return False
            return True

        # Warm-up: connections, TLS sessions, JIT-free but cache-warm paths.
        await open_loop(via_edge, rate, WARMUP_SECONDS, MAX_IN_FLIGHT)
        await open_loop(direct, rate, WARMUP_SECONDS, MAX_IN_FLIGHT)
        for _ in range(ROUNDS):
            lat, err = await open_loop(via_edge, rate, seconds / ROUNDS, MAX_IN_FLIGHT)
            edge_latencies += lat
            errors += err
            lat, err = await open_loop(direct, rate, seconds / ROUNDS, MAX_IN_FLIGHT)
            direct_latencies += lat
            errors += err
        await channel.close()
    return {"edge": sorted(edge_latencies), "direct": sorted(direct_latencies), "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--keep-state",
        action="store_true",
        help="reuse .state/bench (a warm start) instead of a cold one",
    )
    args = parser.parse_args()
    assert 0 < args.rate <= 2000 and 0 < args.seconds <= 600

    with bench_stack("benchedge", BENCH_PORT_BASE, keep_state=args.keep_state) as bench:
        stack = bench.stack
        ready = bench.ready_seconds
        client = EdgeClient(stack.https_url, str(stack.ca_file))
        session, _ = client.signed_up(email=f"bench-{uuid.uuid4().hex[:8]}@example.com")
        client.close()
        logs_dir = stack.logs_dir
        result = asyncio.run(
            measure(
                stack.https_url,
                str(stack.ca_file),
                stack.grpc_targets["identity"],
                session.access_token,
                args.rate,
                args.seconds,
            )
        )

    edge = result["edge"]
    direct = result["direct"]
    assert isinstance(edge, list) and isinstance(direct, list)
    edge_p50, edge_p99 = percentile(edge, 50), percentile(edge, 99)
    direct_p50, direct_p99 = percentile(direct, 50), percentile(direct, 99)
    print(f"stack_cold_start_ready_seconds: {ready:.1f}")
    print(f"rate_rps: {args.rate:.0f}")
    print(f"requests_per_path: {len(edge)}")
    print(f"errors: {result['errors']}")
    print(f"users_me_edge_p50_ms: {edge_p50:.2f}")
    print(f"users_me_edge_p99_ms: {edge_p99:.2f}")
    print(f"users_me_direct_grpc_p50_ms: {direct_p50:.2f}")
    print(f"users_me_direct_grpc_p99_ms: {direct_p99:.2f}")
    print(f"edge_added_p50_ms: {edge_p50 - direct_p50:.2f}")
    print(f"edge_added_p99_ms: {edge_p99 - direct_p99:.2f}")
    print(f"edge_over_direct_p50_ratio: {edge_p50 / direct_p50:.2f}")
    print(f"edge_mean_ms: {statistics.fmean(edge):.2f}")
    warmup = int(args.rate * WARMUP_SECONDS)
    envoy_total, envoy_upstream = envoy_observed(logs_dir / "envoy-access.log", warmup)
    if envoy_total and envoy_upstream:
        print(f"envoy_observed_p50_ms: {percentile(envoy_total, 50):.0f}")
        print(f"envoy_observed_p99_ms: {percentile(envoy_total, 99):.0f}")
        print(f"envoy_upstream_identity_p50_ms: {percentile(envoy_upstream, 50):.0f}")
        print(f"envoy_upstream_identity_p99_ms: {percentile(envoy_upstream, 99):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
