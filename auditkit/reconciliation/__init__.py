"""Population completeness: MultiMail's own counts against what was harvested, per UTC day.

Shared by control PC-001 and the evidence pack (its reconciliation page and
`reconciliation.csv`), so the two can never disagree. Three sources, each read from the
store (`harvest.population` fetched the first two):

- **usage** (`GET /v1/usage?breakdown=daily`): a count per day and event type;
- **webhook deliveries**: deliveries per day and event type, to tenant-wide subscriptions;
- **audit log**: every entry meaning `email_sent` (`auditkit.vocabulary`) must name a
  harvested email, and every harvested outbound email that left MultiMail needs one.

MultiMail documents no event type names and accounts differ, so no name is assumed. Each
source event type is compared, day by day, with every harvested daily series it could be
(`SERIES`); it is reconciled against the series that matches it exactly on the most days,
if that is at least `MIN_AGREEMENT` of the days with activity (and `MIN_ACTIVE_DAYS` of
them). An event type no series matches is listed as not reconciled, never guessed. A day's
difference is explained, not a finding, when quarantined email records of that day (seen
but refused as bad input, and counted) account for it; it is for review, not an
accusation, when an equally good series would not show it, when quarantined records that
cannot be dated could account for it, or (webhooks) when the next or previous day has the
opposite difference (a delivery logged either side of midnight).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb

from auditkit.findings import Period
from auditkit.reconciliation.audit import reconcile_audit
from auditkit.reconciliation.counts import (
    harvested_series,
    quarantined_emails,
    reconcile_counts,
    source_counts,
    subscriptions,
)
from auditkit.reconciliation.model import (
    AUDIT,
    EMAIL_SERIES,
    MIN_ACTIVE_DAYS,
    MIN_AGREEMENT,
    SENT_SERIES,
    SERIES,
    USAGE,
    WEBHOOKS,
    DayRow,
    EmailGap,
    EventMapping,
    Reconciliation,
    SourceState,
    days_between,
    utc_day,
)
from auditkit.store.books import WATERMARK_SOURCE, watermark_key
from auditkit.vocabulary import Vocabulary

__all__ = [
    "AUDIT",
    "EMAIL_SERIES",
    "MIN_ACTIVE_DAYS",
    "MIN_AGREEMENT",
    "SENT_SERIES",
    "SERIES",
    "USAGE",
    "WEBHOOKS",
    "DayRow",
    "EmailGap",
    "EventMapping",
    "Reconciliation",
    "SourceState",
    "reconcile",
]


def reconcile(
    con: duckdb.DuckDBPyConnection, period: Period, vocabulary: Vocabulary
) -> Reconciliation:
    """The period's reconciliation of every source the store holds (module docstring)."""
    coverage = _coverage(con)
    rec = Reconciliation(
        period,
        {
            USAGE: _usage_state(coverage.get("usage_daily"), period),
            WEBHOOKS: _webhook_state(con, coverage.get("webhook_deliveries"), period),
        },
    )
    series = harvested_series(con, vocabulary, period)
    quarantined, undated = quarantined_emails(con)
    usage = rec.sources[USAGE]
    if usage.first_day is not None and usage.last_day is not None:
        counts = source_counts(
            con,
            "SELECT event_type, date, count FROM multimail_usage_daily "
            "WHERE date >= ? AND date <= ?",
            usage,
        )
        reconcile_counts(
            rec,
            USAGE,
            counts,
            days_between(usage.first_day, usage.last_day),
            series,
            {},
            {},
            quarantined,
            undated,
        )
    hooks = rec.sources[WEBHOOKS]
    if hooks.first_day is not None and hooks.last_day is not None:
        counts = source_counts(
            con,
            "SELECT event_type, created_at::DATE, count(*) FROM multimail_webhook_deliveries "
            "WHERE created_at::DATE >= ? AND created_at::DATE <= ? GROUP BY 1, 2",
            hooks,
        )
        multiplicity, excluded = subscriptions(con, set(counts))
        reconcile_counts(
            rec,
            WEBHOOKS,
            counts,
            days_between(hooks.first_day, hooks.last_day),
            series,
            multiplicity,
            excluded,
            quarantined,
            undated,
        )
    reconcile_audit(rec, con, vocabulary, quarantined)
    rec.partial_mailboxes = partial_mailboxes(con)
    rec.rows.sort(key=lambda r: (r.day, r.source, r.event_type))
    return rec


PARTIAL_MAILBOXES_SQL = """
SELECT coalesce(m.address, m.id) FROM multimail_mailboxes m
LEFT JOIN _auditkit_cursors c ON c.source = ? AND c.resource = ?
    || m.id || ':outbound'
WHERE c.value IS NULL ORDER BY 1
"""


def partial_mailboxes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Mailboxes with no complete, unfiltered listing of their outbound mail on record."""
    prefix = watermark_key("", "outbound").split(":", 1)[0] + ":"
    return [
        str(r[0]) for r in con.execute(PARTIAL_MAILBOXES_SQL, [WATERMARK_SOURCE, prefix]).fetchall()
    ]


def _coverage(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    result = con.execute("SELECT * FROM multimail_source_coverage")
    names = [d[0] for d in result.description or ()]
    return {row[0]: dict(zip(names, row, strict=True)) for row in result.fetchall()}


def _clip(period: Period, first: date, last: date) -> tuple[date | None, date | None]:
    first, last = max(first, period.start), min(last, period.end)
    return (first, last) if first <= last else (None, None)


def _usage_state(row: dict[str, Any] | None, period: Period) -> SourceState:
    if row is None:
        return SourceState(USAGE, False, "daily usage was not harvested (GET /v1/usage)")
    if not row["available"]:
        return SourceState(USAGE, False, row["reason"] or f"HTTP {row['http_status']}")
    start, end = row["covered_from"], row["covered_to"]
    if start is None or end is None:
        return SourceState(USAGE, False, "daily usage was harvested without a date range")
    first, last = _clip(period, utc_day(start), utc_day(end) - timedelta(days=1))
    reason = "" if first else f"usage covers {utc_day(start)}..{utc_day(end)}, not the period"
    return SourceState(USAGE, True, reason, first, last)


def _webhook_state(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any] | None, period: Period
) -> SourceState:
    if row is None:
        return SourceState(WEBHOOKS, False, "webhook deliveries were not harvested")
    if not row["available"]:
        return SourceState(WEBHOOKS, False, row["reason"] or f"HTTP {row['http_status']}")
    if row["covered_from"] is None:
        return SourceState(WEBHOOKS, True, "the delivery history is empty")
    # The oldest day held may be cut part-way by the provider's retention, and the day of
    # the harvest was still running: only the whole days between are compared.
    first, last = _clip(
        period,
        utc_day(row["covered_from"]) + timedelta(days=1),
        utc_day(row["harvested_at"]) - timedelta(days=1),
    )
    reason = "" if first else "the delivery history the provider keeps holds no whole day of it"
    return SourceState(WEBHOOKS, True, reason, first, last)
