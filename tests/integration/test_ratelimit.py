"""The rate limiter against a real Redis (the `infra` fixture's)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from redis.asyncio import Redis

from services.ratelimit import domain
from services.ratelimit.server import RunningServer, start_server

pytestmark = pytest.mark.integration

R = rls_pb2.RateLimitResponse
ROOT = Path(__file__).parents[2]
CALL_TIMEOUT_S = 5.0


def limits(domain_name: str) -> domain.Config:
    """Hourly limits for counting tests (a window edge during a test is then
    unlikely); the per-second one exercises window resets."""
    return domain.parse_config(
        {
            "domain": domain_name,
            "descriptors": [
                {"key": "user", "rate_limit": {"unit": "hour", "requests_per_unit": 5}},
                {"key": "remote_address", "rate_limit": {"unit": "hour", "requests_per_unit": 8}},
                {
                    "key": "auth",
                    "descriptors": [
                        {
                            "key": "remote_address",
                            "rate_limit": {"unit": "hour", "requests_per_unit": 3},
                        }
                    ],
                },
                {"key": "burst", "rate_limit": {"unit": "hour", "requests_per_unit": 20}},
                {"key": "tick", "rate_limit": {"unit": "second", "requests_per_unit": 2}},
            ],
        }
    )


def rl_request(domain_name: str, *entries: tuple[str, str]) -> rls_pb2.RateLimitRequest:
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
    )
    return rls_pb2.RateLimitRequest(domain=domain_name, descriptors=[descriptor])


class Limiter:
    def __init__(self, running: RunningServer, domain_name: str) -> None:
        self.running = running
        self.domain = domain_name
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        self.stub = rls_pb2_grpc.RateLimitServiceStub(self.channel)

    async def check(self, *entries: tuple[str, str]) -> Any:
        request = rl_request(self.domain, *entries)
        return await self.stub.ShouldRateLimit(request, timeout=CALL_TIMEOUT_S)

    async def close(self) -> None:
        await self.channel.close()
        await self.running.stop(grace=1)


@pytest.fixture
def domain_name() -> str:
    # A fresh domain per test: its counters cannot collide with earlier runs'.
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
async def limiter(infra: Any, domain_name: str) -> AsyncIterator[Limiter]:
    running = await start_server(limits(domain_name), infra.redis_url)
    client = Limiter(running, domain_name)
    yield client
    await client.close()


async def test_allows_the_limit_then_answers_over_limit(limiter: Limiter) -> None:
    codes = [(await limiter.check(("user", "u1"))).overall_code for _ in range(7)]
    assert codes == [R.OK] * 5 + [R.OVER_LIMIT] * 2

    over = await limiter.check(("user", "u1"))
    status = over.statuses[0]
    assert status.code == R.OVER_LIMIT
    assert status.current_limit.requests_per_unit == 5
    assert status.current_limit.unit == R.RateLimit.HOUR
    assert status.limit_remaining == 0
    assert 0 < status.duration_until_reset.seconds <= 3600
    headers = {h.key: h.value for h in over.response_headers_to_add}
    assert headers["x-ratelimit-limit"] == "5"
    assert headers["x-ratelimit-remaining"] == "0"
    assert headers["retry-after"] == headers["x-ratelimit-reset"]


async def test_counter_expires_with_its_window(limiter: Limiter, infra: Any) -> None:
    await limiter.check(("user", "ttl-user"))
    limit = limits(limiter.domain).limit_for(limiter.domain, [("user", "ttl-user")])
    assert limit is not None
    key = domain.window_for(limiter.domain, [("user", "ttl-user")], limit, time.time()).key
    redis = Redis.from_url(infra.redis_url)
    try:
        assert int(await redis.get(key) or 0) == 1
        assert 0 < await redis.ttl(key) <= 3600 + 1
    finally:
        await redis.aclose()


async def test_each_user_and_address_has_its_own_counter(limiter: Limiter) -> None:
    for _ in range(5):
        await limiter.check(("user", "u1"))
    assert (await limiter.check(("user", "u1"))).overall_code == R.OVER_LIMIT
    assert (await limiter.check(("user", "u2"))).overall_code == R.OK

    for _ in range(8):
        await limiter.check(("remote_address", "203.0.113.1"))
    assert (await limiter.check(("remote_address", "203.0.113.1"))).overall_code == R.OVER_LIMIT
    assert (await limiter.check(("remote_address", "203.0.113.2"))).overall_code == R.OK
    # Over on the address, but the same value under another key is unaffected.
    assert (await limiter.check(("user", "203.0.113.1"))).overall_code == R.OK


async def test_auth_limit_is_tighter_and_per_address(limiter: Limiter) -> None:
    login = ("auth", "login")
    codes = [(await limiter.check(login, ("remote_address", "a1"))).overall_code for _ in range(4)]
    assert codes == [R.OK] * 3 + [R.OVER_LIMIT]
    assert (await limiter.check(login, ("remote_address", "a2"))).overall_code == R.OK
    # The address's general budget (8/h) is separate and still open.
    assert (await limiter.check(("remote_address", "a1"))).overall_code == R.OK


async def test_unknown_descriptors_and_domains_are_not_limited(limiter: Limiter) -> None:
    for _ in range(30):
        response = await limiter.check(("unknown", "x"))
        assert response.overall_code == R.OK
    other = rl_request("another-domain", ("user", "u1"))
    for _ in range(10):
        response = await limiter.stub.ShouldRateLimit(other, timeout=CALL_TIMEOUT_S)
        assert response.overall_code == R.OK


async def test_window_resets(limiter: Limiter) -> None:
    # Start the burst early in a second so that it fits in one window; under
    # heavy load it may still straddle an edge, which the retry tolerates.
    for _attempt in range(5):
        await asyncio.sleep(1 - time.time() % 1 + 0.01)
        started = int(time.time())
        codes = [(await limiter.check(("tick", "t"))).overall_code for _ in range(3)]
        if int(time.time()) != started:
            continue
        assert codes == [R.OK, R.OK, R.OVER_LIMIT]
        break
    else:
        pytest.fail("could not fit three calls into one second")
    await asyncio.sleep(1 - time.time() % 1 + 0.01)
    assert (await limiter.check(("tick", "t"))).overall_code == R.OK


async def test_parallel_calls_across_replicas_never_exceed_the_limit(
    limiter: Limiter, infra: Any
) -> None:
    second = Limiter(await start_server(limits(limiter.domain), infra.redis_url), limiter.domain)
    try:
        calls = [(limiter if i % 2 else second).check(("burst", "b")) for i in range(200)]
        responses = await asyncio.gather(*calls)
    finally:
        await second.close()
    allowed = sum(r.overall_code == R.OK for r in responses)
    assert allowed == 20
    remaining = sorted(r.statuses[0].limit_remaining for r in responses if r.overall_code == R.OK)
    assert remaining == list(range(20))


async def test_redis_down_fails_open(domain_name: str) -> None:
    running = await start_server(limits(domain_name), f"redis://127.0.0.1:{free_port()}/0")
    client = Limiter(running, domain_name)
    try:
        for _ in range(8):
            response = await client.check(("user", "u1"))
            assert response.overall_code == R.OK
        assert running.servicer.fail_open_count == 8
    finally:
        await client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_entrypoint_serves_health_reflection_and_limits(
    infra: Any, domain_name: str, tmp_path: Path
) -> None:
    config = tmp_path / "limits.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "domain": domain_name,
                "descriptors": [
                    {"key": "user", "rate_limit": {"unit": "hour", "requests_per_unit": 1}}
                ],
            }
        )
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}",
        "FINTECH_GRPC_PORT": str(port),
        "FINTECH_METRICS_PORT": "0",
        "FINTECH_REDIS_URL": infra.redis_url,
        "FINTECH_RATELIMIT_CONFIG": str(config),
    }
    log_path = tmp_path / "ratelimit.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.ratelimit",
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(
                health_pb2.HealthCheckRequest(
                    service="envoy.service.ratelimit.v3.RateLimitService"
                ),
                timeout=CALL_TIMEOUT_S,
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            listing = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            names = {s.name async for r in listing for s in r.list_services_response.service}
            assert "envoy.service.ratelimit.v3.RateLimitService" in names

            stub = rls_pb2_grpc.RateLimitServiceStub(channel)
            request = rl_request(domain_name, ("user", "u1"))
            first = await stub.ShouldRateLimit(request, timeout=CALL_TIMEOUT_S)
            second = await stub.ShouldRateLimit(request, timeout=CALL_TIMEOUT_S)
            assert (first.overall_code, second.overall_code) == (R.OK, R.OVER_LIMIT)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0, log_path.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
