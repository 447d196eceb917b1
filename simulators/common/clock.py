"""An adjustable clock: real UTC time plus an offset that tests advance.

Time-dependent rules (the 60-minute consent authorisation window, consent
expiry, bureau `updated_at`) read this clock, never `datetime.now()`, so a test
can move time forward with `POST /__admin/clock` instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

# Bounded so that an accidental huge value cannot push datetimes out of range.
MAX_ADVANCE_SECONDS = 10 * 366 * 24 * 3600


class Clock:
    def __init__(self, source: Callable[[], datetime] | None = None) -> None:
        self._source = source or (lambda: datetime.now(UTC))
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return self._source() + self._offset

    @property
    def offset_seconds(self) -> float:
        return self._offset.total_seconds()

    def advance(self, seconds: float) -> None:
        if not 0 <= seconds <= MAX_ADVANCE_SECONDS:
            raise ValueError(f"advance_seconds must be within 0..{MAX_ADVANCE_SECONDS}")
        self._offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        self._offset = timedelta(0)
