"""KYC's bureau adapter over the shared client: bureau first, cache only while
it is down, ProviderDown vs ProviderRejected, a key space of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.kyc.providers import (
    BUREAU_CACHE_TTL_SECONDS,
    BureauClient,
    ProviderDown,
    ProviderRejected,
)
from services.risk.bureau import BureauClient as RiskBureauClient

# The same cipher, fast retry policy and in-memory Redis as risk's bureau tests.
from tests.unit.risk_service.test_risk_svc_bureau import CIPHER, FAST, FakeRedis

CPF = "52998224725"
Handler = Callable[[httpx.Request], httpx.Response]


class Switch:
    """A bureau that answers until it is switched off; counts the calls."""

    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.body, self.status, self.down, self.calls = body, status, False, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert request.url.path == f"/v1/scores/{CPF}"
        if self.down:
            return httpx.Response(503, json={"error": {"code": "OUTAGE"}})
        return httpx.Response(self.status, json=self.body)


GOOD = {"cpf": CPF, "score": 610, "negative_records": [{"type": "PEFIN"}], "updated_at": "x"}


def _client(handler: Handler, redis: Any) -> BureauClient:
    return BureauClient(
        "http://bureau", redis, CIPHER, config=FAST, transport=httpx.MockTransport(handler)
    )


async def test_bureau_is_asked_first_and_its_cache_serves_only_while_it_is_down() -> None:
    redis, bureau = FakeRedis(), Switch(GOOD)
    client = _client(bureau, redis)
    try:
        first = await client.report(CPF)
        again = await client.report(CPF)  # cached, but KYC asks the bureau anyway
        bureau.down = True
        fallback = await client.report(CPF)
    finally:
        await client.aclose()
    assert not first.from_cache and not again.from_cache and fallback.from_cache
    assert first.answer == fallback.answer
    assert (first.answer.score, first.answer.negative_records) == (610, 1)
    assert bureau.calls == 2 + FAST.max_attempts
    [(key, (value, ttl))] = redis.data.items()
    assert ttl == BUREAU_CACHE_TTL_SECONDS
    assert CPF not in key and CPF not in value  # no PII in Redis
    # Risk caches the same bureau for a shorter time: the two never share a key.
    risk = RiskBureauClient("http://bureau", None, CIPHER)
    try:
        assert key == client.cache_key(CPF) != risk.cache_key(CPF)
    finally:
        await risk.aclose()


async def test_bureau_down_without_a_cached_answer_is_provider_down() -> None:
    bureau = Switch(GOOD)
    bureau.down = True
    for redis in (FakeRedis(), None):
        client = _client(bureau, redis)
        try:
            with pytest.raises(ProviderDown):
                await client.report(CPF)
        finally:
            await client.aclose()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": {"code": "INVALID_CPF"}}),
        (200, {"score": 1001, "negative_records": []}),
        (200, {"score": 500, "negative_records": "many"}),
    ],
)
async def test_unusable_answers_are_rejected_not_waited_for(status: int, body: Any) -> None:
    redis = FakeRedis()
    client = _client(Switch(body, status), redis)
    try:
        with pytest.raises(ProviderRejected):
            await client.report(CPF)
    finally:
        await client.aclose()
    assert redis.data == {}  # nothing unusable is cached
