"""The pack's population reconciliation: the page's data and `reconciliation.csv`'s rows.

Both come from `auditkit.reconciliation`, the table PC-001 decided on, so the pack shows
exactly what the control saw. The CSV holds every row; the page is bounded like the
others: the daily table shows every day of a period up to `MAX_DAILY_ROWS` days (longer
periods show only the days with a difference), and the list of differences stops at
`MAX_DIFFERENCES`, naming how many more reconciliation.csv holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from auditkit.reconciliation import AUDIT, USAGE, WEBHOOKS, DayRow, Reconciliation

# reconciliation.csv, one row per (day, source, event type), sorted by those three:
#   date, source, event_type, harvested_as, source_count, harvested_count,
#   explained_count, difference, status, email_ids, detail
RECONCILIATION_FIELDS: tuple[str, ...] = (
    "date",
    "source",
    "event_type",
    "harvested_as",
    "source_count",
    "harvested_count",
    "explained_count",
    "difference",
    "status",
    "email_ids",
    "detail",
)
"""Columns of reconciliation.csv, in order.

- date: the UTC day. source: usage | webhook_deliveries | audit_log.
- event_type: the source's own name (usage and webhook event types as the account spells
  them; for the audit log, the action(s) meaning "email sent").
- harvested_as: the harvested daily series it was compared with (empty: not reconciled).
- source_count, harvested_count: the two counts (harvested_count is empty when the event
  type was not reconciled; webhook counts are multiplied by the subscriptions receiving it).
- explained_count: the part of the difference quarantined records account for.
- difference: source_count - harvested_count - explained_count.
- status: match | explained | difference | review | not_reconciled.
- email_ids: the audit log's emails never harvested, and harvested emails with no send
  entry, joined with "; ". detail: why a row is explained or for review.
"""
MAX_DAILY_ROWS = 100
MAX_DIFFERENCES = 200
SOURCE_NAMES = {USAGE: "Usage", WEBHOOKS: "Webhook deliveries", AUDIT: "Audit log"}


def csv_rows(rec: Reconciliation | None) -> list[dict[str, Any]]:
    """Every row, sorted (date, source, event type); none for a pack of chosen messages."""
    return [] if rec is None else [r.to_csv() for r in rec.rows]


def page(rec: Reconciliation | None) -> dict[str, Any]:
    """The reconciliation page's template data (plain values only)."""
    if rec is None:
        return {"shown": False}
    columns = _columns(rec.rows)
    days = sorted({r.day for r in rec.rows if r.status != "not_reconciled"})
    by_cell = {(r.day, r.source, r.event_type): r for r in rec.rows}
    differing = {r.day for r in rec.differences}
    shown_days = days if len(days) <= MAX_DAILY_ROWS else [d for d in days if d in differing]
    daily = [
        {
            "date": day.isoformat(),
            "differs": day in differing,
            "cells": [
                _cell(by_cell.get((day, source, event_type))) for source, event_type in columns
            ],
        }
        for day in shown_days
    ]
    # Explained differences are listed too: a reader sees what explained them.
    differences = [r for r in rec.rows if r.status in ("difference", "review", "explained")]
    return {
        "shown": True,
        "partial_mailboxes": rec.partial_mailboxes,
        "sources": [
            {
                "name": SOURCE_NAMES[s.name],
                "available": s.available,
                "days": f"{s.first_day} to {s.last_day}" if s.first_day else "",
                "reason": s.reason,
            }
            for s in rec.sources.values()
        ]
        + [
            {
                "name": SOURCE_NAMES[AUDIT],
                "available": rec.audit_unchecked is None,
                "days": "the period" if rec.audit_unchecked is None else "",
                "reason": rec.audit_unchecked or "",
            }
        ],
        "mappings": [
            {
                "source": SOURCE_NAMES[m.source],
                "event_type": m.event_type,
                "harvested_as": m.harvested_as or "",
                "agreement": f"{m.agreeing_days} of {m.active_days} days" if m.harvested_as else "",
                "note": m.note or (f"as good: {', '.join(m.tied)}" if m.tied else ""),
            }
            for m in rec.mappings
        ],
        "columns": [
            {"source": SOURCE_NAMES[source], "event_type": event_type}
            for source, event_type in columns
        ],
        "daily": daily,
        "days_total": len(days),
        "days_cut": len(days) - len(shown_days),
        "differences": [_difference(r) for r in differences[:MAX_DIFFERENCES]],
        "differences_total": len(differences),
        "limits": {"daily_rows": MAX_DAILY_ROWS, "differences": MAX_DIFFERENCES},
    }


def _columns(rows: Iterable[DayRow]) -> list[tuple[str, str]]:
    """One column per reconciled (source, event type), usage first, then webhooks, audit."""
    order = {USAGE: 0, WEBHOOKS: 1, AUDIT: 2}
    pairs = {(r.source, r.event_type) for r in rows if r.status != "not_reconciled"}
    return sorted(pairs, key=lambda p: (order[p[0]], p[1]))


def _cell(row: DayRow | None) -> dict[str, Any]:
    if row is None:
        return {"text": "–", "status": "none"}
    return {"text": f"{row.source_count} / {row.harvested_count}", "status": row.status}


def _difference(row: DayRow) -> dict[str, Any]:
    return {
        "date": row.day.isoformat(),
        "source": SOURCE_NAMES[row.source],
        "event_type": row.event_type,
        "source_count": row.source_count,
        "harvested_count": row.harvested_count,
        "explained": row.explained,
        "difference": row.difference,
        "status": row.status,
        "email_ids": ", ".join(row.email_ids),
        "detail": row.detail,
    }
