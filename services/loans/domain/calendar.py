"""Dates of a loan: monthly due dates and Brazilian business days (pure).

Due dates keep the first due date's day of the month, clamped to the month's
last day (31 Jan → 28/29 Feb → 31 Mar): the customer's due day never drifts.
A due date that falls on a weekend or national holiday may be paid on the
next business day without late charges (Lei 7.089/1983 and BACEN practice);
days past due still count from the contractual due date.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from functools import lru_cache

# National holidays with a fixed date (Lei 662/1949, 6.802/1980, 10.607/2002,
# 14.759/2023 for 20 Nov). Carnival Monday/Tuesday, Good Friday and Corpus
# Christi move with Easter and are added below: banks close on all of them.
_FIXED_HOLIDAYS = ((1, 1), (4, 21), (5, 1), (9, 7), (10, 12), (11, 2), (11, 15), (11, 20), (12, 25))
MAX_BUSINESS_DAY_SKIP = 10  # no run of closed days in Brazil is longer than a week


def add_months(start: date, months: int, *, day: int | None = None) -> date:
    """`start` moved by `months`, on `day` (default start's day), clamped to the month's end."""
    assert months >= 0, months
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    wanted = start.day if day is None else day
    assert 1 <= wanted <= 31, wanted
    return date(year, month, min(wanted, calendar.monthrange(year, month)[1]))


def due_dates(first_due: date, count: int) -> list[date]:
    """`count` monthly due dates anchored on the first due date's day of month."""
    assert 1 <= count <= 600, count
    return [add_months(first_due, k, day=first_due.day) for k in range(count)]


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[date]:
    sunday = easter(year)
    moving = {
        sunday - timedelta(days=48),  # Carnival Monday
        sunday - timedelta(days=47),  # Carnival Tuesday
        sunday - timedelta(days=2),  # Good Friday
        sunday + timedelta(days=60),  # Corpus Christi
    }
    return frozenset({date(year, m, d) for m, d in _FIXED_HOLIDAYS} | moving)


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in holidays(day.year)


def next_business_day(day: date) -> date:
    """`day` itself when it is a business day, else the next one."""
    for _ in range(MAX_BUSINESS_DAY_SKIP):
        if is_business_day(day):
            return day
        day += timedelta(days=1)
    raise AssertionError("no business day within ten days")
