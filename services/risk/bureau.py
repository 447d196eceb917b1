"""Risk's view of the credit bureau: the shared client (services.providers.bureau)
with risk's cache policy and error.

Cache: the last good answer per CPF is kept in Redis for CACHE_TTL_SECONDS
(6 hours: bureau scores are recomputed daily, and a few hours of staleness
is what the scoring policy accepts). The key is the CPF's keyed HMAC, never
the CPF, and the value holds no CPF. `fetch(cpf, fresh=False)` answers from
the cache while it lives (keeps Score fast and the bureau unhammered) and
falls back to it when the bureau is down; `fresh=True` always asks the
bureau and never uses the cache (a caller that must decide on today's data).
Any failure to get a usable answer is a BureauError: Score cannot decide
without the bureau, whether it is down or answered nonsense.
"""

from __future__ import annotations

from services.platform.http_client import ResilienceConfig
from services.providers import bureau as shared
from services.providers.bureau import MAX_NEGATIVE_RECORDS, BureauReport, report_from

__all__ = [
    "CACHE_TTL_SECONDS",
    "MAX_NEGATIVE_RECORDS",
    "BureauClient",
    "BureauError",
    "BureauReport",
    "report_from",
]

CACHE_TTL_SECONDS = 6 * 3600

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


class BureauClient(shared.BureauClient):
    CACHE_PREFIX = "risk:bureau:"
    KEY_CONTEXT = "bureau:"
    CACHE_TTL_SECONDS = CACHE_TTL_SECONDS
    RESILIENCE = DEFAULT_RESILIENCE

    async def fetch(self, cpf: str, *, fresh: bool = False) -> BureauReport:
        if not fresh:
            cached = await self.cached(cpf)
            if cached is not None:
                return cached
        try:
            return await self.ask(cpf)
        except (shared.BureauUnavailable, shared.BureauRejected) as exc:
            raise BureauError(str(exc)) from exc
