"""Credit bureau client (`GET /v1/scores/{cpf}`) with a Redis cache of good answers.

Cache: the last good answer per CPF is kept in Redis for CACHE_TTL_SECONDS
(6 hours: bureau scores are recomputed daily, and a few hours of staleness
is what the scoring policy accepts). The key is the CPF's keyed HMAC, never
the CPF, and the value holds no CPF. `fetch(cpf, fresh=False)` answers from
the cache while it lives (keeps Score fast and the bureau unhammered) and
falls back to it when the bureau is down; `fresh=True` always asks the
bureau and never uses the cache (a caller that must decide on today's data).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.platform.crypto import FieldCipher
from services.platform.http_client import (
    CallLog,
    ProviderError,
    ResilienceConfig,
    ResilientHttpClient,
)

log = logging.getLogger(__name__)

PROVIDER = "bureau"
CACHE_TTL_SECONDS = 6 * 3600
CACHE_PREFIX = "risk:bureau:"
MAX_NEGATIVE_RECORDS = 1000

# Score sits on the loan request's path: few quick attempts, then the cache.
DEFAULT_RESILIENCE = ResilienceConfig(
    timeout_seconds=2.0,
    max_attempts=3,
    backoff_base_seconds=0.05,
    backoff_max_seconds=0.5,
    max_retry_after_seconds=2.0,
    breaker_fail_max=10,
    breaker_reset_seconds=15.0,
    max_concurrency=32,
    bulkhead_wait_seconds=1.0,
)


class BureauError(Exception):
    """No usable bureau answer (bureau failing and nothing cached, or malformed)."""


@dataclass(frozen=True, slots=True)
class BureauReport:
    score: int | None  # None: the bureau has no score for this CPF
    negative_records: int
    cpf_status: str  # Receita Federal situation as the bureau reports it
    updated_at: str
    from_cache: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "score": self.score,
                "negative_records": self.negative_records,
                "cpf_status": self.cpf_status,
                "updated_at": self.updated_at,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> BureauReport:
        data = json.loads(raw)
        return cls(
            score=data["score"],
            negative_records=int(data["negative_records"]),
            cpf_status=str(data["cpf_status"]),
            updated_at=str(data["updated_at"]),
            from_cache=True,
        )


def report_from(body: Any) -> BureauReport:
    if not isinstance(body, dict):
        raise BureauError("bureau answer is not an object")
    score = body.get("score")
    if score is not None and (not isinstance(score, int) or not 0 <= score <= 1000):
        raise BureauError(f"bureau score out of range: {score!r}")
    records = body.get("negative_records") or []
    if not isinstance(records, list) or len(records) > MAX_NEGATIVE_RECORDS:
        raise BureauError("bureau negative_records is not a bounded list")
    return BureauReport(
        score=score,
        negative_records=len(records),
        # A bureau that does not report the situation has found nothing irregular.
        cpf_status=str(body.get("cpf_status") or "REGULAR"),
        updated_at=str(body.get("updated_at", "")),
    )


class BureauClient:
    def __init__(
        self,
        base_url: str,
        redis: Redis | None,
        cipher: FieldCipher,
        *,
        call_log: CallLog | None = None,
        config: ResilienceConfig = DEFAULT_RESILIENCE,
        transport: httpx.AsyncBaseTransport | None = None,
        cache_ttl_seconds: int = CACHE_TTL_SECONDS,
    ) -> None:
        assert 1 <= cache_ttl_seconds <= 7 * 24 * 3600
        self._http = ResilientHttpClient(
            PROVIDER, base_url.rstrip("/"), config=config, call_log=call_log, transport=transport
        )
        self._redis = redis
        self._cipher = cipher
        self._ttl = cache_ttl_seconds

    async def aclose(self) -> None:
        await self._http.aclose()

    def cache_key(self, cpf: str) -> str:
        return CACHE_PREFIX + self._cipher.lookup_hash("bureau:" + cpf).hex()

    async def _cached(self, cpf: str) -> BureauReport | None:
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(self.cache_key(cpf))
        except RedisError as exc:
            # The cache is an optimisation: a Redis hiccup means asking the bureau.
            log.warning("bureau cache read failed: %s", exc)
            return None
        if raw is None:
            return None
        try:
            return BureauReport.from_json(raw)
        except (ValueError, KeyError, TypeError):
            return None

    async def _store(self, cpf: str, report: BureauReport) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.set(self.cache_key(cpf), report.to_json(), ex=self._ttl)
        except RedisError as exc:
            log.warning("bureau cache write failed: %s", exc)

    async def fetch(self, cpf: str, *, fresh: bool = False) -> BureauReport:
        if not fresh:
            cached = await self._cached(cpf)
            if cached is not None:
                return cached
        try:
            response = await self._http.request(
                "GET", f"/v1/scores/{quote(cpf, safe='')}", endpoint="/v1/scores/{cpf}"
            )
        except ProviderError as exc:
            raise BureauError(str(exc)) from exc
        if response.status_code == 404:
            # Unknown to the bureau: no score and no records, nothing irregular.
            report = BureauReport(
                score=None, negative_records=0, cpf_status="REGULAR", updated_at=""
            )
        elif response.status_code != 200:
            raise BureauError(f"bureau answered HTTP {response.status_code}")
        else:
            try:
                report = report_from(response.json())
            except ValueError as exc:
                raise BureauError("bureau answer is not JSON") from exc
        await self._store(cpf, report)
        return report
