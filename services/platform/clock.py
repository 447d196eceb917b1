"""A service's clock, with a test-only offset read from its own schema.

Tests of rules that depend on the time of day or on days passing (payments'
night limit, loans' due dates) need the service to see another time than the
machine's. A process started with its test-clock variable set to 1 adds the
seconds stored in `<schema>.test_clock.offset_seconds` (one row, written by
the test with the admin role). Without the variable the table is never read,
so a production process cannot be moved in time by a row.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from services.platform.db import Database

# Far enough for any test (years of a loan), small enough to catch a unit slip.
MAX_OFFSET_SECONDS = 20 * 366 * 86_400
SECONDS_OFFSET = "SELECT offset_seconds FROM test_clock WHERE id"


class OffsetClock:
    def __init__(
        self,
        db: Database | None,
        test_env_var: str,
        *,
        offset_sql: str = SECONDS_OFFSET,
        test_mode: bool | None = None,
    ) -> None:
        """`offset_sql` reads the offset in seconds (a schema may keep it in
        another unit: loans keeps days)."""
        self._test = os.environ.get(test_env_var, "") == "1" if test_mode is None else test_mode
        self._db = db
        self._offset_sql = text(offset_sql)
        assert not self._test or db is not None, "the test clock lives in the database"

    @property
    def is_test(self) -> bool:
        return self._test

    async def offset(self) -> timedelta:
        if not self._test or self._db is None:
            return timedelta(0)
        seconds = int(await self._db.scalar(self._offset_sql) or 0)
        assert abs(seconds) <= MAX_OFFSET_SECONDS, seconds
        return timedelta(seconds=seconds)

    async def now(self) -> datetime:
        return datetime.now(UTC) + await self.offset()
