"""Resilient outbound HTTP client for third-party providers.

Per call: a bulkhead slot (bounded wait), the provider's circuit breaker, a
timeout, and retries with exponential backoff + full jitter on retryable
failures (connect errors, timeouts, 5xx, 429 with Retry-After) — only for
idempotent methods or requests carrying an Idempotency-Key. Every attempt is
recorded through the call log with PII redacted.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import httpx
from aiobreaker import CircuitBreaker, CircuitBreakerError
from sqlalchemy import text

from services.platform.db import Database
from services.platform.redaction import is_sensitive_key, redact_text, redact_value
from services.platform.tracing import current_trace_id

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_ATTEMPTS = 10
MAX_CONCURRENCY = 256
MAX_LOGGED_BODY_CHARS = 4096


class ProviderError(Exception):
    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class CircuitOpenError(ProviderError):
    """The provider's breaker is open: failing fast without calling it."""


class BulkheadFullError(ProviderError):
    """No concurrency slot became free within the bulkhead wait."""


class ProviderUnavailableError(ProviderError):
    """Retries exhausted on transport errors or retryable statuses."""

    def __init__(self, provider: str, message: str, response: httpx.Response | None = None):
        super().__init__(provider, message)
        self.response = response


class _RetryableStatus(Exception):
    """Raised inside the breaker so 5xx/429 count as provider failures."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


@dataclass(frozen=True, slots=True)
class CallRecord:
    provider: str
    endpoint: str
    method: str
    request: str | None
    response: str | None
    status: int | None
    error: str | None
    duration_ms: int
    attempt: int


class CallLog(Protocol):
    async def record(self, call: CallRecord) -> None: ...


class DbCallLog:
    """Writes each attempt into the schema's `third_party_calls` (own transaction:
    the record must survive the caller's rollback)."""

    _INSERT = text(
        "INSERT INTO third_party_calls"
        " (provider, endpoint, method, request, response, status, error, duration_ms, attempt,"
        "  trace_id)"
        " VALUES (:provider, :endpoint, :method, :request, :response, :status, :error,"
        "  :duration_ms, :attempt, :trace_id)"
    )

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, call: CallRecord) -> None:
        async with self.db.separate_transaction() as conn:
            await conn.execute(
                self._INSERT,
                {
                    "provider": call.provider,
                    "endpoint": call.endpoint,
                    "method": call.method,
                    "request": call.request,
                    "response": call.response,
                    "status": call.status,
                    "error": call.error,
                    "duration_ms": call.duration_ms,
                    "attempt": call.attempt,
                    "trace_id": current_trace_id(),
                },
            )


@dataclass(frozen=True, slots=True)
class ResilienceConfig:
    timeout_seconds: float = 5.0
    max_attempts: int = 3
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 2.0
    max_retry_after_seconds: float = 10.0
    breaker_fail_max: int = 5
    breaker_reset_seconds: float = 30.0
    max_concurrency: int = 10
    bulkhead_wait_seconds: float = 1.0

    def __post_init__(self) -> None:
        assert 0 < self.timeout_seconds <= 120
        assert 1 <= self.max_attempts <= MAX_ATTEMPTS
        assert 0 < self.backoff_base_seconds <= self.backoff_max_seconds <= 60
        assert 0 <= self.max_retry_after_seconds <= 300
        assert 1 <= self.breaker_fail_max <= 100
        assert 0 < self.breaker_reset_seconds <= 3600
        assert 1 <= self.max_concurrency <= MAX_CONCURRENCY
        assert 0 <= self.bulkhead_wait_seconds <= 60


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    assert attempt >= 1
    return rand() * min(cap, base * 2 ** (attempt - 1))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After (delta seconds or HTTP date); None when absent or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ResilientHttpClient:
    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        config: ResilienceConfig | None = None,
        call_log: CallLog | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.provider = provider
        self.config = config or ResilienceConfig()
        self.call_log = call_log
        self.breaker = CircuitBreaker(
            fail_max=self.config.breaker_fail_max,
            timeout_duration=timedelta(seconds=self.config.breaker_reset_seconds),
            name=provider,
        )
        self._bulkhead = asyncio.Semaphore(self.config.max_concurrency)
        self._sleep = sleep
        self._rand = rand
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers or {}),
            timeout=self.config.timeout_seconds,
            transport=transport,
            limits=httpx.Limits(max_connections=self.config.max_concurrency),
        )

    async def __aenter__(self) -> ResilientHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
        timeout_seconds: float | None = None,
    ) -> httpx.Response:
        """Send with retries; returns the final response for non-retryable statuses."""
        method = method.upper()
        header_map = dict(headers or {})
        retry_allowed = method in IDEMPOTENT_METHODS or any(
            k.lower() == IDEMPOTENCY_HEADER for k in header_map
        )
        attempts = self.config.max_attempts if retry_allowed else 1
        endpoint = endpoint or path
        request = self._client.build_request(
            method,
            path,
            json=json_body,
            content=content,
            params=params,
            headers=header_map,
            timeout=timeout_seconds or self.config.timeout_seconds,
        )
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(request, endpoint, attempt)
            except CircuitBreakerError as exc:
                cause = exc.__cause__
                if isinstance(cause, _RetryableStatus | httpx.TransportError):
                    last_error = cause  # this failure just opened the breaker
                raise CircuitOpenError(self.provider, "circuit breaker open") from exc
            except _RetryableStatus as exc:
                last_error = exc
                if attempt == attempts:
                    break
                delay = self._delay(attempt, exc.response)
                if delay is None:
                    break  # Retry-After beyond what we are willing to wait
            except httpx.TransportError as exc:
                last_error = exc
                if attempt == attempts:
                    break
                delay = backoff_delay(
                    attempt,
                    self.config.backoff_base_seconds,
                    self.config.backoff_max_seconds,
                    self._rand,
                )
            log.info(
                "%s %s attempt %d failed (%s); retrying in %.3fs",
                self.provider,
                endpoint,
                attempt,
                type(last_error).__name__,
                delay,
            )
            await self._sleep(delay)
        if isinstance(last_error, _RetryableStatus):
            raise ProviderUnavailableError(
                self.provider, f"HTTP {last_error.response.status_code}", last_error.response
            ) from last_error
        raise ProviderUnavailableError(
            self.provider, f"{type(last_error).__name__}"
        ) from last_error

    def _delay(self, attempt: int, response: httpx.Response) -> float | None:
        if response.status_code == 429 or response.headers.get("retry-after"):
            after = retry_after_seconds(response.headers.get("retry-after"))
            if after is not None:
                return after if after <= self.config.max_retry_after_seconds else None
        return backoff_delay(
            attempt, self.config.backoff_base_seconds, self.config.backoff_max_seconds, self._rand
        )

    async def _attempt(self, request: httpx.Request, endpoint: str, attempt: int) -> httpx.Response:
        try:
            await asyncio.wait_for(self._bulkhead.acquire(), self.config.bulkhead_wait_seconds)
        except TimeoutError as exc:
            raise BulkheadFullError(self.provider, "too many concurrent calls") from exc
        try:
            return await self.breaker.call_async(self._send, request, endpoint, attempt)
        finally:
            self._bulkhead.release()

    async def _send(self, request: httpx.Request, endpoint: str, attempt: int) -> httpx.Response:
        started = time.perf_counter()
        response: httpx.Response | None = None
        error: str | None = None
        try:
            response = await self._client.send(request)
            await response.aread()
        except httpx.TransportError as exc:
            error = type(exc).__name__
            raise
        finally:
            await self._record(request, endpoint, attempt, started, response, error)
        if response.status_code in RETRYABLE_STATUS:
            raise _RetryableStatus(response)
        return response

    async def _record(
        self,
        request: httpx.Request,
        endpoint: str,
        attempt: int,
        started: float,
        response: httpx.Response | None,
        error: str | None,
    ) -> None:
        if self.call_log is None:
            return
        record = CallRecord(
            provider=self.provider,
            endpoint=endpoint,
            method=request.method,
            request=redact_body(request.content),
            response=redact_body(response.content) if response is not None else None,
            status=response.status_code if response is not None else None,
            error=error,
            duration_ms=int((time.perf_counter() - started) * 1000),
            attempt=attempt,
        )
        try:
            await self.call_log.record(record)
        except Exception as exc:
            # The call log is evidence, not a dependency: never fail the call for it.
            log.error("cannot record third-party call to %s: %s", self.provider, exc)


def redact_body(body: bytes | None) -> str | None:
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text_body = body[:MAX_LOGGED_BODY_CHARS].decode("utf-8", "replace")
        return redact_text(text_body)
    if isinstance(parsed, dict):
        parsed = {k: ("[REDACTED]" if is_sensitive_key(k) else v) for k, v in parsed.items()}
    return json.dumps(redact_value(parsed), ensure_ascii=False)[:MAX_LOGGED_BODY_CHARS]
