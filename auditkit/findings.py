"""Result model shared by controls, reports and the CLI: periods, findings and control results.

Plain frozen dataclasses with no I/O. Controls produce `ControlResult`s; the report and
`--json` output serialise them with `to_dict()`, whose key order is part of the contract.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from auditkit.errors import EXIT_CONTROLS_FAILED, EXIT_INCONCLUSIVE, UsageError

Status = Literal["pass", "fail", "not_applicable", "inconclusive", "error"]
FindingState = Literal["open", "waived", "review"]
Severity = Literal["low", "medium", "high"]
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class Period:
    """A closed range of calendar days in UTC: `start` 00:00 up to (not including) `end`+1 day."""

    label: str
    start: date
    end: date  # inclusive

    @property
    def start_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def end_before(self) -> datetime:
        """Exclusive upper bound: midnight after the last day."""
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC) + timedelta(days=1)

    def contains(self, ts: datetime | None) -> bool:
        return ts is not None and self.start_at <= ts < self.end_before


_QUARTER = re.compile(r"^(\d{4})Q([1-4])$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


def parse_period(text: str, today: date | None = None) -> Period:
    """`2026Q3`, `2026-07`, `2026-07-01..2026-09-30`, `last-quarter` or `last-month`."""
    text = text.strip()
    today = today or datetime.now(UTC).date()
    if text == "last-quarter":
        q = (today.month - 1) // 3  # current quarter index 0..3
        year, q = (today.year - 1, 4) if q == 0 else (today.year, q)
        text = f"{year}Q{q}"
    elif text == "last-month":
        year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
        text = f"{year}-{month:02d}"
    if m := _QUARTER.match(text):
        year, q = int(m.group(1)), int(m.group(2))
        first = date(year, 3 * q - 2, 1)
        last_month = 3 * q
        last = date(year, last_month, calendar.monthrange(year, last_month)[1])
        return Period(f"{year}Q{q}", first, last)
    if m := _MONTH.match(text):
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise UsageError(f"period {text!r}: month must be 01..12")
        return Period(
            text, date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        )
    if m := _RANGE.match(text):
        try:
            start, end = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
        except ValueError as exc:
            raise UsageError(f"period {text!r}: {exc}") from exc
        if end < start:
            raise UsageError(f"period {text!r}: end is before start")
        return Period(text, start, end)
    raise UsageError(
        f"period {text!r} not understood; use 2026Q3, 2026-07, 2026-07-01..2026-09-30, "
        "last-quarter or last-month"
    )


@dataclass(frozen=True)
class Finding:
    """One thing a control found wrong (or needing review) about one target."""

    control_id: str
    target_type: str  # email | api_key | mailbox | audit_entry | account | conversation
    target_id: str
    reason: str  # plain English, one sentence
    evidence: dict[str, Any] = field(default_factory=dict)
    state: FindingState = "open"
    waiver: dict[str, Any] | None = None  # control, target, justification, approver, expires

    @property
    def message_id(self) -> str | None:
        return self.target_id if self.target_type == "email" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "control_id": self.control_id,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "message_id": self.message_id,
            "state": self.state,
            "reason": self.reason,
            "evidence": self.evidence,
            "waiver": self.waiver,
        }


@dataclass(frozen=True)
class ControlResult:
    """The outcome of one control over one period."""

    id: str
    title: str
    severity: Severity
    status: Status
    findings: tuple[Finding, ...] = ()
    checked: int = 0  # how many targets the control examined
    detail: str = ""  # why not_applicable / the error text
    rationale: str = ""
    reference: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "status": self.status,
            "checked": self.checked,
            "detail": self.detail,
            "rationale": self.rationale,
            "reference": self.reference,
            "findings": [f.to_dict() for f in self.findings],
        }


def failing_controls(results: Sequence[ControlResult], fail_on: str) -> list[ControlResult]:
    """Controls at or above `fail_on` with an open finding, or that could not be evaluated.

    Waived and review findings do not fail a check: they are shown, not counted.
    """
    floor = SEVERITY_RANK[fail_on]
    return [
        r
        for r in results
        if SEVERITY_RANK[r.severity] >= floor
        and (r.status == "error" or any(f.state == "open" for f in r.findings))
    ]


def inconclusive_controls(results: Sequence[ControlResult], fail_on: str) -> list[ControlResult]:
    """Controls at or above `fail_on` that could not establish a verdict."""
    floor = SEVERITY_RANK[fail_on]
    return [r for r in results if SEVERITY_RANK[r.severity] >= floor and r.status == "inconclusive"]


def verdict_exit_code(results: Sequence[ControlResult], fail_on: str) -> int:
    """10 when a control fails at or above `fail_on`; else 11 when one there is inconclusive
    (compliance not established, so never 0); else 0."""
    if failing_controls(results, fail_on):
        return EXIT_CONTROLS_FAILED
    if inconclusive_controls(results, fail_on):
        return EXIT_INCONCLUSIVE
    return 0
