"""The loans service's "today" (America/Sao_Paulo), with a test-only offset.

Installments fall due, charges accrue and quotes are dated by the Brazilian
calendar day. Tests of a loan's life need months to pass in seconds: when the
process runs with FINTECH_LOANS_TEST_CLOCK=1, `today()` adds the days stored in
`loans.test_clock.offset_days` (set by the test with the admin role; see
docs/LOANS.md). Without that variable the table is never read, so a production
process cannot be moved in time by a row.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from services.platform.db import Database

LOCAL_ZONE = ZoneInfo("America/Sao_Paulo")
TEST_CLOCK_ENV = "FINTECH_LOANS_TEST_CLOCK"
_OFFSET = text("SELECT offset_days FROM test_clock WHERE id")


def local_day(moment: datetime) -> date:
    """The Brazilian calendar day of an instant."""
    return moment.astimezone(LOCAL_ZONE).date()


def test_clock_enabled() -> bool:
    return os.environ.get(TEST_CLOCK_ENV, "") == "1"


class Clock:
    def __init__(self, db: Database | None, *, test_mode: bool | None = None) -> None:
        self._db = db
        self._test = test_clock_enabled() if test_mode is None else test_mode
        assert not self._test or db is not None, "the test clock lives in the database"

    @property
    def is_test(self) -> bool:
        return self._test

    async def offset(self) -> timedelta:
        if not self._test or self._db is None:
            return timedelta(0)
        days = await self._db.scalar(_OFFSET)
        return timedelta(days=int(days or 0))

    async def now(self) -> datetime:
        return datetime.now(UTC) + await self.offset()

    async def today(self) -> date:
        return local_day(await self.now())
