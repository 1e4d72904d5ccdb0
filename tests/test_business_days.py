"""Business days: weekends and US federal holidays with observed dates, computed per year."""

from __future__ import annotations

from datetime import date

import pytest

from auditkit.business_days import (
    add_business_days,
    business_days_between,
    federal_holidays,
    is_business_day,
)


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2026, 11, 26), "Thanksgiving Day"),  # fourth Thursday
        (date(2025, 11, 27), "Thanksgiving Day"),
        (date(2026, 7, 3), "Independence Day (observed)"),  # 4 July 2026 is a Saturday
        (date(2027, 7, 5), "Independence Day (observed)"),  # 4 July 2027 is a Sunday
        (date(2026, 9, 7), "Labor Day"),
        (date(2026, 5, 25), "Memorial Day"),  # last Monday of May
        (date(2026, 1, 19), "Birthday of Martin Luther King, Jr."),
        (date(2026, 10, 12), "Columbus Day"),
        (date(2026, 6, 19), "Juneteenth National Independence Day"),
        (date(2027, 12, 24), "Christmas Day (observed)"),  # 25 Dec 2027 is a Saturday
        (date(2027, 12, 31), "New Year's Day (observed)"),  # 1 Jan 2028 is a Saturday
        (date(2023, 11, 10), "Veterans Day (observed)"),  # 11 Nov 2023 was a Saturday
    ],
)
def test_federal_holidays_include_observed_dates(day: date, name: str) -> None:
    assert federal_holidays(day.year)[day] == name
    assert not is_business_day(day)


def test_weekend_holiday_itself_is_not_listed_and_juneteenth_starts_2021() -> None:
    assert date(2026, 7, 4) not in federal_holidays(2026)
    assert date(2028, 1, 1) not in federal_holidays(2028)  # observed in 2027 instead
    assert date(2020, 6, 19) not in federal_holidays(2020)
    assert date(2021, 6, 18) in federal_holidays(2021)  # 19 June 2021 was a Saturday
    assert len(federal_holidays(2026)) == 11


def test_weekends_are_not_business_days() -> None:
    assert not is_business_day(date(2026, 8, 1))  # Saturday
    assert not is_business_day(date(2026, 8, 2))  # Sunday
    assert is_business_day(date(2026, 8, 3))


def test_ten_business_days_skip_weekends_and_observed_independence_day() -> None:
    # Wed 1 July 2026: Fri 3 July is the observed holiday, so day 10 is Thu 16 July.
    assert add_business_days(date(2026, 7, 1), 10) == date(2026, 7, 16)
    assert business_days_between(date(2026, 7, 1), date(2026, 7, 16)) == 10
    assert business_days_between(date(2026, 7, 1), date(2026, 7, 15)) == 9


def test_ten_business_days_across_thanksgiving() -> None:
    # Mon 23 Nov 2026; Thu 26 Nov is Thanksgiving → 10th business day is Tue 8 Dec.
    assert add_business_days(date(2026, 11, 23), 10) == date(2026, 12, 8)


def test_counting_from_a_weekend_and_zero() -> None:
    assert add_business_days(date(2026, 8, 1), 1) == date(2026, 8, 3)
    assert add_business_days(date(2026, 8, 1), 0) == date(2026, 8, 1)
    assert business_days_between(date(2026, 8, 5), date(2026, 8, 1)) == 0
    with pytest.raises(ValueError):
        add_business_days(date(2026, 8, 1), -1)
