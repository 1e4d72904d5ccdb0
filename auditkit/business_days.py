"""US business-day arithmetic: Monday–Friday minus US federal holidays as observed.

CAN-SPAM gives senders 10 business days to honour an opt-out (15 U.S.C. § 7704(a)(4)) but
does not define "business day"; auditkit uses the conservative federal calendar of
5 U.S.C. § 6103. Holidays are computed from their rules for any year, never listed per
year: a holiday on a Saturday is observed the Friday before, one on a Sunday the Monday
after (Executive Order 11582), which can move New Year's Day into the previous December.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from functools import lru_cache

CALENDAR_VERSION = "us-federal-5usc6103-v1"

_MONDAY, _THURSDAY = 0, 3


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday of a month (n=1 first); n=-1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        offset = (weekday - first.weekday()) % 7
        return first + timedelta(days=offset + 7 * (n - 1))
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    if day.weekday() == 5:  # Saturday → Friday before
        return day - timedelta(days=1)
    if day.weekday() == 6:  # Sunday → Monday after
        return day + timedelta(days=1)
    return day


def _actual_holidays(year: int) -> dict[date, str]:
    """Holidays of `year` on their legal dates, before moving weekend ones."""
    days = {
        date(year, 1, 1): "New Year's Day",
        _nth_weekday(year, 1, _MONDAY, 3): "Birthday of Martin Luther King, Jr.",
        _nth_weekday(year, 2, _MONDAY, 3): "Washington's Birthday",
        _nth_weekday(year, 5, _MONDAY, -1): "Memorial Day",
        date(year, 7, 4): "Independence Day",
        _nth_weekday(year, 9, _MONDAY, 1): "Labor Day",
        _nth_weekday(year, 10, _MONDAY, 2): "Columbus Day",
        date(year, 11, 11): "Veterans Day",
        _nth_weekday(year, 11, _THURSDAY, 4): "Thanksgiving Day",
        date(year, 12, 25): "Christmas Day",
    }
    if year >= 2021:  # Juneteenth National Independence Day Act, 17 June 2021
        days[date(year, 6, 19)] = "Juneteenth National Independence Day"
    return days


@lru_cache(maxsize=64)
def federal_holidays(year: int) -> dict[date, str]:
    """Observed federal holidays falling in calendar `year` (date → name)."""
    observed: dict[date, str] = {}
    # A Saturday 1 January of year+1 is observed on 31 December of this year.
    for source_year in (year, year + 1):
        for day, name in _actual_holidays(source_year).items():
            moved = _observed(day)
            if moved.year == year:
                observed[moved] = name if moved == day else f"{name} (observed)"
    return dict(sorted(observed.items()))


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in federal_holidays(day.year)


def add_business_days(start: date, count: int) -> date:
    """The date `count` business days after `start` (start itself is day 0, whatever it is)."""
    if count < 0:
        raise ValueError("count must not be negative")
    day = start
    remaining = count
    while remaining:
        day += timedelta(days=1)
        if is_business_day(day):
            remaining -= 1
    return day


def business_days_between(start: date, end: date) -> int:
    """How many business days lie after `start` up to and including `end` (0 if end <= start)."""
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        if is_business_day(day):
            count += 1
    return count
