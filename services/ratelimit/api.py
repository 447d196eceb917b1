"""Envoy's `RateLimitService/ShouldRateLimit`: proto <-> domain, counters in Redis.

Redis unavailable → the answer is OK (fail-open), logged. Why: the edge must
keep serving when the limiter's store is down, exactly as Envoy itself does when
the limiter is unreachable (`failure_mode_deny: false`); answering OK ourselves
is the same outcome without making Envoy wait for its timeout. The credential
endpoints keep identity's own per-account and per-address lockout meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import duration_pb2
from prometheus_client import Counter
from redis.exceptions import RedisError

from services.ratelimit import domain
from services.ratelimit.store import Counters

log = logging.getLogger(__name__)

SERVICE_NAME = "envoy.service.ratelimit.v3.RateLimitService"

# While Redis stays down every call fails open; one log line per interval says
# so without flooding the log at the request rate.
FAIL_OPEN_LOG_INTERVAL_S = 10.0

# Label values are limit names from the config (bounded), never descriptor values.
DECISIONS = Counter(
    "ratelimit_decisions_total",
    "Descriptors judged against a configured limit, by limit name and outcome.",
    ["limit", "code"],
)
FAIL_OPEN = Counter(
    "ratelimit_fail_open_total", "Calls answered OK unchecked because Redis was unavailable."
)

_Response = rls_pb2.RateLimitResponse
_UNITS = {unit: _Response.RateLimit.Unit.Value(unit.name) for unit in domain.Unit}


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(
        self,
        config: domain.Config,
        counters: Counters,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._counters = counters
        self._clock = clock
        self._last_fail_open_log = -FAIL_OPEN_LOG_INTERVAL_S
        self.fail_open_count = 0  # read by tests and by the log line

    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> rls_pb2.RateLimitResponse:
        descriptors = [[(e.key, e.value) for e in d.entries] for d in request.descriptors]
        # Envoy leaves hits_addend at 0 to mean one hit.
        hits = request.hits_addend or 1
        try:
            domain.validate_request(descriptors, hits)
        except domain.InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        now = self._clock()
        limits = [self._config.limit_for(request.domain, entries) for entries in descriptors]
        limited = [
            (i, domain.window_for(request.domain, descriptors[i], limit, now), limit)
            for i, limit in enumerate(limits)
            if limit is not None
        ]
        decisions: dict[int, domain.Decision] = {}
        if limited:
            try:
                counts = await self._counters.increment([w for _, w, _ in limited], hits)
            except (RedisError, OSError, TimeoutError):
                self._note_fail_open()
                return _Response(overall_code=_Response.OK)
            for (i, window, limit), count in zip(limited, counts, strict=True):
                decisions[i] = decision = domain.decide(limit, count, window.reset_after)
                DECISIONS.labels(limit.name, "OVER_LIMIT" if decision.over_limit else "OK").inc()
        return _response(len(descriptors), decisions)

    def _note_fail_open(self) -> None:
        self.fail_open_count += 1
        FAIL_OPEN.inc()
        now = time.monotonic()
        if now - self._last_fail_open_log >= FAIL_OPEN_LOG_INTERVAL_S:
            self._last_fail_open_log = now
            log.warning(
                "redis unavailable: rate limits not enforced (fail-open), %d calls so far",
                self.fail_open_count,
                exc_info=True,
            )


def _response(count: int, decisions: dict[int, domain.Decision]) -> rls_pb2.RateLimitResponse:
    """One status per request descriptor, in order, as Envoy expects."""
    statuses = []
    for i in range(count):
        decision = decisions.get(i)
        if decision is None:
            statuses.append(_Response.DescriptorStatus(code=_Response.OK))
            continue
        limit = decision.limit
        statuses.append(
            _Response.DescriptorStatus(
                code=_Response.OVER_LIMIT if decision.over_limit else _Response.OK,
                current_limit=_Response.RateLimit(
                    name=limit.name,
                    requests_per_unit=limit.requests_per_unit,
                    unit=_UNITS[limit.unit],
                ),
                limit_remaining=decision.remaining,
                duration_until_reset=duration_pb2.Duration(seconds=decision.reset_after),
            )
        )
    over = any(d.over_limit for d in decisions.values())
    headers = domain.response_headers(list(decisions.values()))
    return _Response(
        overall_code=_Response.OVER_LIMIT if over else _Response.OK,
        statuses=statuses,
        response_headers_to_add=[base_pb2.HeaderValue(key=k, value=v) for k, v in headers],
    )
