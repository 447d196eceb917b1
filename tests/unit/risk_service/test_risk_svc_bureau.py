"""Bureau client: answers, Redis cache of good answers, fresh reads, fallbacks."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.platform.crypto import FieldCipher
from services.platform.http_client import ResilienceConfig
from services.risk.bureau import CACHE_TTL_SECONDS, BureauClient, BureauError

CPF = "12345678909"
FAST = ResilienceConfig(
    timeout_seconds=1.0, max_attempts=2, backoff_base_seconds=0.001, backoff_max_seconds=0.002
)
CIPHER = FieldCipher.from_json(
    {
        "keys": {"k1": base64.b64encode(b"k" * 32).decode()},
        "active": "k1",
        "hash_key": base64.b64encode(b"h" * 32).decode(),
    }
)


class FakeRedis:
    def __init__(self, *, broken: bool = False) -> None:
        self.data: dict[str, tuple[str, int | None]] = {}
        self.broken = broken

    async def get(self, key: str) -> Any:
        if self.broken:
            raise RedisConnectionError("down")
        value = self.data.get(key)
        return value[0].encode() if value else None

    async def set(self, key: str, value: str, ex: int | None = None) -> None:
        if self.broken:
            raise RedisConnectionError("down")
        self.data[key] = (value, ex)


def _bureau(handler: Any, redis: Any) -> BureauClient:
    return BureauClient(
        "http://bureau", redis, CIPHER, config=FAST, transport=httpx.MockTransport(handler)
    )


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "cpf": CPF,
            "score": 720,
            "negative_records": [{"type": "PROTESTO"}, {"type": "CHEQUE"}],
            "updated_at": "2026-11-01T00:00:00Z",
        },
    )


async def test_answer_is_mapped_and_cached_under_a_keyed_hash_with_ttl() -> None:
    redis = FakeRedis()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        assert request.url.path == f"/v1/scores/{CPF}"
        return _ok(request)

    client = _bureau(handler, redis)
    try:
        report = await client.fetch(CPF)
        cached = await client.fetch(CPF)
    finally:
        await client.aclose()
    assert (report.score, report.negative_records, report.cpf_status) == (720, 2, "REGULAR")
    assert not report.from_cache and cached.from_cache
    assert (cached.score, cached.negative_records) == (720, 2)
    assert calls == 1
    [(key, (value, ttl))] = redis.data.items()
    assert CPF not in key and CPF not in value  # no CPF in Redis
    assert ttl == CACHE_TTL_SECONDS


async def test_fresh_reads_skip_the_cache() -> None:
    redis = FakeRedis()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _ok(request)

    client = _bureau(handler, redis)
    try:
        await client.fetch(CPF)
        again = await client.fetch(CPF, fresh=True)
    finally:
        await client.aclose()
    assert calls == 2 and not again.from_cache


async def test_failing_bureau_without_cache_is_an_error_and_redis_outage_is_tolerated() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"code": "X"}})

    client = _bureau(down, FakeRedis())
    try:
        with pytest.raises(BureauError):
            await client.fetch(CPF)
    finally:
        await client.aclose()

    client = _bureau(_ok, FakeRedis(broken=True))
    try:
        report = await client.fetch(CPF)
    finally:
        await client.aclose()
    assert report.score == 720


async def test_out_of_range_scores_are_refused() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"score": 1500, "negative_records": []})

    client = _bureau(bad, None)
    try:
        with pytest.raises(BureauError):
            await client.fetch(CPF)
    finally:
        await client.aclose()
