"""The customer's risk band, from risk's internal Score RPC.

Simulations use a band cached in Redis per customer (BAND_CACHE_SECONDS):
a customer comparing terms simulates many times a minute, and each Score
records a decision (bureau call, statement features). The loan decision
itself always asks risk afresh (`decide`), with an idempotency key derived
from the loan so a retried activity gets the same recorded decision.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Protocol

import grpc
from redis.asyncio import Redis

from fintech.risk.v1 import risk_pb2, risk_pb2_grpc
from fintech.type.v1 import money_pb2
from services.loans.remote import CallPolicy, RemoteService, RemoteUnavailableError
from services.platform.errors import AppError, unavailable

log = logging.getLogger(__name__)

BAND_CACHE_SECONDS = 600
BAND_CACHE_PREFIX = "loans:band:"
LOCAL_CACHE_SECONDS = 5.0
LOCAL_CACHE_ENTRIES = 10_000
SCORE_TIMEOUT_SECONDS = 10.0  # Score waits on the bureau and identity
MAX_REASONS = 10
# Answers about this request or customer; anything else is risk failing.
REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)


@dataclass(frozen=True, slots=True)
class RiskBand:
    outcome: str  # APPROVED | APPROVED_REDUCED | DECLINED
    band: str
    monthly_rate: str  # decimal fraction; "0" when declined
    max_amount_minor: int
    decision: str  # decisions/{id}
    reasons: tuple[str, ...] = ()  # customer-readable

    @property
    def declined(self) -> bool:
        return self.outcome == "DECLINED" or Decimal(self.monthly_rate) <= 0

    @property
    def rate(self) -> Decimal:
        return Decimal(self.monthly_rate)


class RiskGateway(Protocol):
    async def score(
        self, user_id: str, amount_minor: int, term_months: int, *, key: str, reference: str
    ) -> RiskBand: ...


def band_from_decision(d: risk_pb2.Decision) -> RiskBand:
    outcome = risk_pb2.Outcome.Name(d.outcome).removeprefix("OUTCOME_")
    return RiskBand(
        outcome=outcome,
        band=d.band,
        monthly_rate=d.monthly_rate or "0",
        max_amount_minor=d.max_amount.minor_units,
        decision=d.name,
        reasons=tuple(
            f"{r.code}: {r.description}" if r.description else r.code
            for r in d.reason_codes[:MAX_REASONS]
        ),
    )


class GrpcRiskGateway:
    def __init__(self, channel: grpc.aio.Channel, remote: RemoteService | None = None) -> None:
        self._stub = risk_pb2_grpc.RiskServiceStub(channel)
        self._remote = remote or RemoteService(
            "risk", CallPolicy(timeout_seconds=SCORE_TIMEOUT_SECONDS)
        )

    async def score(
        self, user_id: str, amount_minor: int, term_months: int, *, key: str, reference: str
    ) -> RiskBand:
        request = risk_pb2.ScoreRequest(
            user=f"users/{user_id}",
            requested_amount=money_pb2.Money(currency_code="BRL", minor_units=amount_minor),
            term_months=term_months,
            reference=reference,
        )
        try:
            # Score is mutating: the key makes a retry return the same decision.
            decision = await self._remote.call(
                self._stub.Score, request, metadata=(("idempotency-key", key),)
            )
        except RemoteUnavailableError as exc:
            raise unavailable("RISK_UNAVAILABLE", "the credit decision is unavailable") from exc
        except grpc.aio.AioRpcError as exc:
            log.warning("risk refused a score: %s", exc.code())
            if exc.code() not in REFUSALS:
                # INTERNAL, UNKNOWN...: risk failed, not the customer.
                raise unavailable("RISK_UNAVAILABLE", "the credit decision is unavailable") from exc
            raise AppError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "RISK_REFUSED",
                "the credit decision could not be made for this customer",
            ) from exc
        return band_from_decision(decision)


class CachedBands:
    """Bands per customer for simulations: in Redis for BAND_CACHE_SECONDS (shared by
    every loans process), and for LOCAL_CACHE_SECONDS in this process as well, which
    saves the Redis round trip when a customer simulates several times in a row."""

    def __init__(
        self,
        inner: RiskGateway,
        redis: Redis,
        ttl_seconds: int = BAND_CACHE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert 1 <= ttl_seconds <= 24 * 3600
        self._inner = inner
        self._redis = redis
        self._ttl = ttl_seconds
        self._clock = clock
        self._local: OrderedDict[str, tuple[float, RiskBand]] = OrderedDict()

    async def band(self, user_id: str, amount_minor: int, term_months: int, key: str) -> RiskBand:
        now = self._clock()
        local = self._local.get(user_id)
        if local is not None and local[0] > now:
            return local[1]
        cache_key = BAND_CACHE_PREFIX + user_id
        cached = await self._redis.get(cache_key)
        if cached:
            data = json.loads(cached)
            data["reasons"] = tuple(data.get("reasons", ()))
            band = RiskBand(**data)
        else:
            band = await self._inner.score(
                user_id, amount_minor, term_months, key=key, reference="loans:simulation"
            )
            await self._redis.set(cache_key, json.dumps(asdict(band)), ex=self._ttl)
        self._local[user_id] = (now + LOCAL_CACHE_SECONDS, band)
        self._local.move_to_end(user_id)
        while len(self._local) > LOCAL_CACHE_ENTRIES:
            self._local.popitem(last=False)
        return band

    async def forget(self, user_id: str) -> None:
        self._local.pop(user_id, None)
        await self._redis.delete(BAND_CACHE_PREFIX + user_id)
