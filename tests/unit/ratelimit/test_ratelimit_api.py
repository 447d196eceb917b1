"""The servicer's proto mapping and its fail-open path, with in-memory counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from redis.exceptions import ConnectionError as RedisConnectionError

from services.ratelimit import domain
from services.ratelimit.api import RateLimitServicer
from services.ratelimit.store import Counters

R = rls_pb2.RateLimitResponse
CONFIG = domain.parse_config(
    {
        "domain": "fintech",
        "descriptors": [
            {"key": "user", "rate_limit": {"unit": "minute", "requests_per_unit": 2}},
            {"key": "remote_address", "rate_limit": {"unit": "minute", "requests_per_unit": 5}},
        ],
    }
)


class MemoryCounters(Counters):
    def __init__(self, fail: bool = False) -> None:  # no Redis behind it
        self.counts: Counter[str] = Counter()
        self.fail = fail

    async def increment(self, windows: Sequence[domain.Window], hits: int) -> list[int]:
        if self.fail:
            raise RedisConnectionError("connection refused")
        for w in windows:
            self.counts[w.key] += hits
        return [self.counts[w.key] for w in windows]


class AbortCalled(Exception):
    pass


class FakeContext:
    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortCalled(code, details)


def request(*descriptors: list[tuple[str, str]], hits: int = 0) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(
        domain="fintech",
        hits_addend=hits,
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in d]
            )
            for d in descriptors
        ],
    )


async def call(servicer: RateLimitServicer, req: rls_pb2.RateLimitRequest) -> Any:
    return await servicer.ShouldRateLimit(req, cast(grpc.aio.ServicerContext, FakeContext()))


async def test_statuses_follow_request_order_and_unknown_descriptors_pass() -> None:
    servicer = RateLimitServicer(CONFIG, MemoryCounters(), clock=lambda: 90.0)
    req = request([("unknown", "x")], [("user", "u1")], [("remote_address", "1.2.3.4")])
    first = await call(servicer, req)
    assert first.overall_code == R.OK
    unknown, user, address = first.statuses
    assert unknown.code == R.OK and not unknown.HasField("current_limit")
    assert user.code == R.OK and user.limit_remaining == 1
    assert user.current_limit.requests_per_unit == 2
    assert user.current_limit.unit == R.RateLimit.MINUTE
    assert user.current_limit.name == "user"
    assert user.duration_until_reset.seconds == 30
    assert address.limit_remaining == 4
    headers = {h.key: h.value for h in first.response_headers_to_add}
    assert headers == {
        "x-ratelimit-limit": "2",
        "x-ratelimit-remaining": "1",
        "x-ratelimit-reset": "30",
    }

    await call(servicer, req)
    third = await call(servicer, req)
    assert third.overall_code == R.OVER_LIMIT
    assert [s.code for s in third.statuses] == [R.OK, R.OVER_LIMIT, R.OK]
    headers = {h.key: h.value for h in third.response_headers_to_add}
    assert headers["retry-after"] == "30" and headers["x-ratelimit-remaining"] == "0"


async def test_hits_addend_counts_several_hits() -> None:
    servicer = RateLimitServicer(CONFIG, MemoryCounters(), clock=lambda: 0.0)
    response = await call(servicer, request([("remote_address", "a")], hits=5))
    assert response.overall_code == R.OK and response.statuses[0].limit_remaining == 0
    response = await call(servicer, request([("remote_address", "a")]))
    assert response.overall_code == R.OVER_LIMIT


async def test_no_limited_descriptor_answers_ok_without_headers() -> None:
    servicer = RateLimitServicer(CONFIG, MemoryCounters(fail=True))
    response = await call(servicer, request([("unknown", "x")]))
    assert response.overall_code == R.OK
    assert list(response.response_headers_to_add) == []
    assert servicer.fail_open_count == 0


async def test_redis_failure_fails_open() -> None:
    servicer = RateLimitServicer(CONFIG, MemoryCounters(fail=True))
    for _ in range(3):
        response = await call(servicer, request([("user", "u1")]))
        assert response.overall_code == R.OK
    assert servicer.fail_open_count == 3


async def test_oversized_request_is_rejected_as_invalid() -> None:
    servicer = RateLimitServicer(CONFIG, MemoryCounters())
    too_many = [[("user", "u")]] * (domain.MAX_DESCRIPTORS + 1)
    with pytest.raises(AbortCalled) as raised:
        await call(servicer, request(*too_many))
    assert raised.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT
