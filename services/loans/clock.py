"""The loans service's "today" (America/Sao_Paulo), with a test-only offset.

Installments fall due, charges accrue and quotes are dated by the Brazilian
calendar day. Tests of a loan's life need months to pass in seconds: when the
process runs with FINTECH_LOANS_TEST_CLOCK=1, `today()` adds the days stored in
`loans.test_clock.offset_days` (set by the test with the admin role; see
docs/LOANS.md). Without that variable the table is never read, so a production
process cannot be moved in time by a row.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.platform.clock import OffsetClock
from services.platform.db import Database

LOCAL_ZONE = ZoneInfo("America/Sao_Paulo")
TEST_CLOCK_ENV = "FINTECH_LOANS_TEST_CLOCK"


def local_day(moment: datetime) -> date:
    """The Brazilian calendar day of an instant."""
    return moment.astimezone(LOCAL_ZONE).date()


class Clock(OffsetClock):
    """The platform's offset clock, with loans' offset kept in whole days."""

    def __init__(self, db: Database | None, *, test_mode: bool | None = None) -> None:
        super().__init__(
            db,
            TEST_CLOCK_ENV,
            offset_sql="SELECT offset_days * 86400 FROM test_clock WHERE id",
            test_mode=test_mode,
        )

    async def today(self) -> date:
        return local_day(await self.now())
