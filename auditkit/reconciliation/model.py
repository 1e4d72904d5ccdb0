"""The reconciliation's model: the candidate series, thresholds and result records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from auditkit.findings import Period

MIN_AGREEMENT = 0.8
MIN_ACTIVE_DAYS = 3
USAGE, WEBHOOKS, AUDIT = "usage", "webhook_deliveries", "audit_log"
# The harvested daily series a source event type may count, and the SQL counting each per
# UTC day. `$unsent` is multimail_terms.UNSENT_STATUSES; `{approved}`/`{rejected}` are the
# vocabulary's predicates.
LEFT_MULTIMAIL = (
    "(delivered_at IS NOT NULL OR bounced_at IS NOT NULL "
    "OR NOT list_contains($unsent, coalesce(status, '')))"
)
SERIES: dict[str, str] = {
    "outbound email that left MultiMail, by day created": (
        "SELECT created_at::DATE AS day, count(*) AS n FROM multimail_emails "
        f"WHERE direction = 'outbound' AND {LEFT_MULTIMAIL} GROUP BY 1"
    ),
    "outbound email, by day created": (
        "SELECT created_at::DATE AS day, count(*) AS n FROM multimail_emails "
        "WHERE direction = 'outbound' GROUP BY 1"
    ),
    "outbound email delivered, by day delivered": (
        "SELECT delivered_at::DATE AS day, count(*) AS n FROM multimail_emails "
        "WHERE direction = 'outbound' AND delivered_at IS NOT NULL GROUP BY 1"
    ),
    "outbound email bounced, by day bounced": (
        "SELECT bounced_at::DATE AS day, count(*) AS n FROM multimail_emails "
        "WHERE direction = 'outbound' AND bounced_at IS NOT NULL GROUP BY 1"
    ),
    "inbound email, by day received": (
        "SELECT created_at::DATE AS day, count(*) AS n FROM multimail_emails "
        "WHERE direction = 'inbound' GROUP BY 1"
    ),
    "approval and rejection audit entries, by day": (
        "SELECT created_at::DATE AS day, count(*) AS n FROM multimail_audit_log "
        "WHERE {approved} OR {rejected} GROUP BY 1"
    ),
}
# The series quarantined email records can explain (records of outbound mail, by day created).
EMAIL_SERIES = {
    "outbound email that left MultiMail, by day created",
    "outbound email, by day created",
}
SENT_SERIES = EMAIL_SERIES
# Quarantined MultiMail email records not stored since, with the day their record names.
QUARANTINED_EMAILS_SQL = """
SELECT DISTINCT q.record_id,
       try_cast(coalesce(json_extract_string(q.raw_text, '$.received_at'),
                         json_extract_string(q.raw_text, '$.created_at')) AS TIMESTAMPTZ)::DATE
           AS day
FROM quarantine q
WHERE q.source = 'multimail' AND q.endpoint LIKE '%/emails%' AND q.record_id IS NOT NULL
  AND coalesce(json_extract_string(q.raw_text, '$.direction'), 'outbound') <> 'inbound'
  AND q.record_id NOT IN (SELECT id FROM multimail_emails)
"""


@dataclass(frozen=True)
class SourceState:
    """Whether a source could be read, and which days it covers."""

    name: str
    available: bool
    reason: str = ""
    first_day: date | None = None  # first and last day reconciled (inclusive)
    last_day: date | None = None


@dataclass(frozen=True)
class EventMapping:
    """What one source event type was reconciled against, and how well it matched."""

    source: str
    event_type: str
    harvested_as: str | None
    agreeing_days: int
    active_days: int
    note: str = ""
    tied: tuple[str, ...] = ()


@dataclass(frozen=True)
class DayRow:
    """One row of the daily table (and of reconciliation.csv)."""

    day: date
    source: str
    event_type: str
    harvested_as: str
    source_count: int
    harvested_count: int | None
    explained: int
    status: str  # match | explained | difference | review | not_reconciled
    detail: str = ""
    email_ids: tuple[str, ...] = ()

    @property
    def difference(self) -> int | None:
        if self.harvested_count is None:
            return None
        return self.source_count - self.harvested_count - self.explained

    def to_csv(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "source": self.source,
            "event_type": self.event_type,
            "harvested_as": self.harvested_as,
            "source_count": self.source_count,
            "harvested_count": self.harvested_count,
            "explained_count": self.explained,
            "difference": self.difference,
            "status": self.status,
            "email_ids": "; ".join(self.email_ids),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class EmailGap:
    """An email one record has and the other lacks (audit log vs harvested mail)."""

    email_id: str
    kind: str  # not_harvested | no_send_entry
    day: date
    entry_id: str | None
    at: datetime | None
    explained: bool  # a quarantined record of it exists


@dataclass
class Reconciliation:
    period: Period
    sources: dict[str, SourceState]
    mappings: list[EventMapping] = field(default_factory=list)
    rows: list[DayRow] = field(default_factory=list)
    gaps: list[EmailGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    audit_checked: int = 0
    audit_unchecked: str | None = None  # why the audit log could not be reconciled
    # Mailboxes whose outbound mail was never listed in full (a --mailbox harvest, a failed
    # detail read): the harvest is partial by design, so account-wide counts cannot judge it.
    partial_mailboxes: list[str] = field(default_factory=list)

    @property
    def differences(self) -> list[DayRow]:
        return [r for r in self.rows if r.status in ("difference", "review")]

    def sent_mapped(self) -> bool:
        """Whether some usage event type was reconciled against harvested outbound mail."""
        return any(m.source == USAGE and m.harvested_as in SENT_SERIES for m in self.mappings)


def utc_day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
