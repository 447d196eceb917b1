"""Deterministic fault injection (docs/RISK.md, "Simulators: process contract").

Every faultable request draws the same number of values from one seeded RNG,
in arrival order, so a given seed and request sequence always yields the same
faults (a test can assert "with seed 7, requests 3 and 9 fail").
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

MAX_LATENCY_MS = 60_000  # a simulator that sleeps longer is indistinguishable from a hang
DEFAULT_SEED = 0


@dataclass(frozen=True)
class FaultSettings:
    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    rate_limit_rate: float = 0.0
    outage: bool = False
    seed: int = DEFAULT_SEED

    @classmethod
    def from_json(cls, body: Any) -> FaultSettings:
        """Validate an admin request body; raise ValueError with a readable message."""
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        latency = body.get("latency_ms", 0)
        if isinstance(latency, bool) or not isinstance(latency, int):
            raise ValueError("latency_ms must be an integer")
        if not 0 <= latency <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be within 0..{MAX_LATENCY_MS}")
        rates: dict[str, float] = {}
        for name in ("error_rate", "timeout_rate", "rate_limit_rate"):
            value = body.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
            rates[name] = float(value)
        outage = body.get("outage", False)
        if not isinstance(outage, bool):
            raise ValueError("outage must be a boolean")
        seed = body.get("seed", DEFAULT_SEED)
        if isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) > 2**63:
            raise ValueError("seed must be an integer")
        return cls(latency_ms=latency, outage=outage, seed=seed, **rates)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request. `kind` is None (serve), "outage", "timeout",
    "rate_limit" or "error"; `status` is the HTTP status for error kinds."""

    latency_ms: int
    kind: str | None
    status: int = 200


class FaultInjector:
    def __init__(self) -> None:
        self.settings = FaultSettings()
        self._rng = random.Random(DEFAULT_SEED)  # noqa: S311 - simulation, not security

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        # Re-seeding on every configuration makes a sequence reproducible from the
        # moment the test sets it, whatever ran before.
        self._rng = random.Random(settings.seed)  # noqa: S311 - simulation, not security

    def decide(self) -> FaultDecision:
        s = self.settings
        if s.outage:
            return FaultDecision(latency_ms=0, kind="outage", status=503)
        # Always draw four values so a request's fate does not depend on which
        # branch the previous one took.
        timeout_draw, limit_draw, error_draw, status_draw = (self._rng.random() for _ in range(4))
        if timeout_draw < s.timeout_rate:
            return FaultDecision(latency_ms=s.latency_ms, kind="timeout", status=504)
        if limit_draw < s.rate_limit_rate:
            return FaultDecision(latency_ms=s.latency_ms, kind="rate_limit", status=429)
        if error_draw < s.error_rate:
            status = 500 if status_draw < 0.5 else 503
            return FaultDecision(latency_ms=s.latency_ms, kind="error", status=status)
        return FaultDecision(latency_ms=s.latency_ms, kind=None)
