"""Period parsing: every accepted form, boundaries and clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from auditkit.errors import ConfigError
from auditkit.findings import parse_period


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026Q3", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2026-07-01..2026-09-30", date(2026, 7, 1), date(2026, 9, 30)),
    ],
)
def test_explicit_periods(text: str, start: date, end: date) -> None:
    p = parse_period(text)
    assert (p.start, p.end) == (start, end)


def test_relative_periods_and_year_wrap() -> None:
    assert parse_period("last-quarter", today=date(2026, 11, 26)).label == "2026Q3"
    assert parse_period("last-quarter", today=date(2026, 2, 1)).label == "2025Q4"
    assert parse_period("last-month", today=date(2026, 1, 5)).label == "2025-12"


def test_contains_is_half_open() -> None:
    p = parse_period("2026Q3")
    assert p.contains(datetime(2026, 7, 1, tzinfo=UTC))
    assert p.contains(datetime(2026, 9, 30, 23, 59, 59, tzinfo=UTC))
    assert not p.contains(datetime(2026, 10, 1, tzinfo=UTC))
    assert not p.contains(None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026Q5", "not understood"),
        ("2026-13", "month must be 01..12"),
        ("2026-09-30..2026-07-01", "end is before start"),
        ("2026-02-30..2026-03-01", "day is out of range"),
    ],
)
def test_bad_periods(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_period(text)
