"""The credit bureau (`GET /v1/scores/{cpf}`), shared by KYC and risk.

One client does what both services need alike: the call through the
platform's ResilientHttpClient (timeout, retries, breaker, bulkhead, call
log), the parsing and bounds of the report, and a Redis cache of the last good
answer per CPF with a TTL the caller sets. What differs stays with each
service's subclass: when the cache is read (risk answers from it first, KYC
only when the bureau is down), how long it lives, the retry budget, and which
errors the service raises. Each service sets its own cache prefix and HMAC
context so their caches never share keys.

The cache key is the CPF's keyed HMAC (FieldCipher.lookup_hash), never the
CPF, and the cached value holds no PII (score, record count, situation, date).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar
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
MAX_NEGATIVE_RECORDS = 1000
MAX_CACHE_TTL_SECONDS = 7 * 24 * 3600
MAX_SCORE = 1000


class BureauUnavailable(Exception):
    """The bureau could not answer (transport error, 5xx/429 after retries, breaker
    open, bulkhead full): a later try may succeed."""


class BureauRejected(Exception):
    """The bureau answered something no retry will change (4xx, not JSON, out of bounds)."""


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
        score = data["score"]
        if score is not None and (type(score) is not int or not 0 <= score <= MAX_SCORE):
            raise ValueError("cached score out of range")
        return cls(
            score=score,
            negative_records=int(data["negative_records"]),
            cpf_status=str(data["cpf_status"]),
            updated_at=str(data["updated_at"]),
            from_cache=True,
        )


# Unknown to the bureau (404): no score and no records, nothing irregular.
UNKNOWN_CPF = BureauReport(score=None, negative_records=0, cpf_status="REGULAR", updated_at="")


def report_from(body: Any) -> BureauReport:
    if not isinstance(body, dict):
        raise BureauRejected("bureau answer is not an object")
    score = body.get("score")
    if score is not None and (not isinstance(score, int) or not 0 <= score <= MAX_SCORE):
        raise BureauRejected(f"bureau score out of range: {score!r}")
    records = body.get("negative_records") or []
    if not isinstance(records, list) or len(records) > MAX_NEGATIVE_RECORDS:
        raise BureauRejected("bureau negative_records is not a bounded list")
    return BureauReport(
        score=score,
        negative_records=len(records),
        # A bureau that does not report the situation has found nothing irregular.
        cpf_status=str(body.get("cpf_status") or "REGULAR"),
        updated_at=str(body.get("updated_at", "")),
    )


class BureauClient:
    """The call, parsing and cache; a service subclasses it to set its policy
    (the class attributes below) and adds its own read method and errors."""

    CACHE_PREFIX: ClassVar[str]  # Redis key prefix, one per service
    KEY_CONTEXT: ClassVar[str]  # HMAC context, so two services' keys differ
    CACHE_TTL_SECONDS: ClassVar[int]
    RESILIENCE: ClassVar[ResilienceConfig]

    def __init__(
        self,
        base_url: str,
        redis: Redis | None,
        cipher: FieldCipher,
        *,
        call_log: CallLog | None = None,
        config: ResilienceConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        cache_ttl_seconds: int | None = None,
    ) -> None:
        ttl = self.CACHE_TTL_SECONDS if cache_ttl_seconds is None else cache_ttl_seconds
        assert 1 <= ttl <= MAX_CACHE_TTL_SECONDS
        assert self.CACHE_PREFIX and self.KEY_CONTEXT
        self._http = ResilientHttpClient(
            PROVIDER,
            base_url.rstrip("/"),
            config=config or self.RESILIENCE,
            call_log=call_log,
            transport=transport,
        )
        self._redis = redis
        self._cipher = cipher
        self.cache_ttl_seconds = ttl

    async def aclose(self) -> None:
        await self._http.aclose()

    def cache_key(self, cpf: str) -> str:
        return self.CACHE_PREFIX + self._cipher.lookup_hash(self.KEY_CONTEXT + cpf).hex()

    async def cached(self, cpf: str) -> BureauReport | None:
        """The last good answer while its TTL lives; None when absent or unusable."""
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(self.cache_key(cpf))
        except RedisError as exc:
            # The cache is an optimisation: a Redis hiccup means no cached answer.
            log.warning("bureau cache read failed: %s", type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return BureauReport.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("bureau cache entry unusable: %s", type(exc).__name__)
            return None

    async def _store(self, cpf: str, report: BureauReport) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.set(self.cache_key(cpf), report.to_json(), ex=self.cache_ttl_seconds)
        except RedisError as exc:
            log.warning("bureau cache write failed: %s", type(exc).__name__)

    async def ask(self, cpf: str) -> BureauReport:
        """Ask the bureau (never the cache) and cache a good answer.

        Raises BureauUnavailable when it cannot answer, BureauRejected when its
        answer is unusable."""
        try:
            response = await self._http.request(
                "GET", f"/v1/scores/{quote(cpf, safe='')}", endpoint="/v1/scores/{cpf}"
            )
        except ProviderError as exc:
            raise BureauUnavailable(str(exc)) from exc
        if response.status_code == 404:
            report = UNKNOWN_CPF
        elif response.status_code != 200:
            raise BureauRejected(f"bureau answered HTTP {response.status_code}")
        else:
            try:
                body = response.json()
            except ValueError as exc:
                raise BureauRejected("bureau answer is not JSON") from exc
            report = report_from(body)
        await self._store(cpf, report)
        return report
