"""Calls to other services (risk, ledger, payments): deadline, retries, breaker.

Every call has a deadline; transient statuses (UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED, ABORTED) are retried with exponential backoff and full
jitter, but only for calls that are safe to repeat (reads, or writes carrying
an idempotency key / client-chosen ids). A circuit breaker per service fails
fast while the service is down; business errors (INVALID_ARGUMENT,
FAILED_PRECONDITION, ...) are answers, not failures, and never trip it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from aiobreaker import CircuitBreaker, CircuitBreakerError

T = TypeVar("T")

TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
MAX_ATTEMPTS = 5


class RemoteUnavailableError(Exception):
    """The service did not answer (retries exhausted or breaker open)."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


@dataclass(frozen=True, slots=True)
class CallPolicy:
    timeout_seconds: float = 3.0
    attempts: int = 3
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 1.0
    breaker_fail_max: int = 10
    breaker_reset_seconds: float = 15.0

    def __post_init__(self) -> None:
        assert 0 < self.timeout_seconds <= 60 and 1 <= self.attempts <= MAX_ATTEMPTS


class _Answer(Exception):
    """A non-transient status carried through the breaker without counting as a failure."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(str(error))
        self.error = error


class RemoteService:
    def __init__(
        self,
        name: str,
        policy: CallPolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.policy = policy or CallPolicy()
        self.breaker = CircuitBreaker(
            fail_max=self.policy.breaker_fail_max,
            timeout_duration=timedelta(seconds=self.policy.breaker_reset_seconds),
            name=name,
            exclude=[_Answer],
        )
        self._sleep = sleep

    async def call(
        self,
        method: Callable[..., Any],
        request: Any,
        *,
        metadata: tuple[tuple[str, str], ...] = (),
        retry: bool = True,
        timeout_seconds: float | None = None,
    ) -> Any:
        """`method(request)` with the policy; raises the service's AioRpcError for answers."""
        timeout = timeout_seconds or self.policy.timeout_seconds
        attempts = self.policy.attempts if retry else 1

        async def once() -> Any:
            try:
                return await method(request, timeout=timeout, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in TRANSIENT:
                    raise
                raise _Answer(exc) from exc

        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                return await self.breaker.call_async(once)
            except _Answer as answer:
                raise answer.error from None
            except CircuitBreakerError as exc:
                raise RemoteUnavailableError(self.name, "circuit breaker open") from exc
            except grpc.aio.AioRpcError as exc:
                last = exc
                if attempt < attempts:
                    ceiling = min(
                        self.policy.backoff_max_seconds,
                        self.policy.backoff_base_seconds * 2 ** (attempt - 1),
                    )
                    await self._sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter
        raise RemoteUnavailableError(self.name, f"no answer after {attempts} attempts: {last}")
