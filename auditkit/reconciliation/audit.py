"""The audit log against harvested mail: every send entry names a harvested email, and
every harvested outbound email that left MultiMail has a send entry."""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb

from auditkit.multimail_terms import UNSENT_STATUSES
from auditkit.reconciliation.model import (
    AUDIT,
    LEFT_MULTIMAIL,
    DayRow,
    EmailGap,
    Reconciliation,
    utc_day,
)
from auditkit.vocabulary import Vocabulary

AUDIT_SENT_SQL = """
SELECT a.resource_id, arg_min(a.id, a.created_at) AS entry_id, min(a.created_at) AS at,
       bool_or(e.id IS NOT NULL) AS harvested
FROM multimail_audit_log a LEFT JOIN multimail_emails e ON e.id = a.resource_id
WHERE {sent} AND a.created_at >= $start AND a.created_at < $end
GROUP BY a.resource_id
"""
UNLOGGED_SQL = """
SELECT e.id, e.created_at FROM multimail_emails e
WHERE e.direction = 'outbound' AND e.created_at >= $start AND e.created_at < $end
  AND {left}
  AND NOT EXISTS (SELECT 1 FROM multimail_audit_log a WHERE a.resource_id = e.id AND {sent})
"""


def reconcile_audit(
    rec: Reconciliation,
    con: duckdb.DuckDBPyConnection,
    vocabulary: Vocabulary,
    quarantined: dict[date, set[str]],
) -> None:
    """Send entries against harvested mail, both ways, by day (module docstring)."""
    if not con.execute("SELECT count(*) FROM multimail_audit_log").fetchall()[0][0]:
        rec.audit_unchecked = "the audit log was not harvested"
        return
    if reason := vocabulary.missing("email_sent"):
        rec.audit_unchecked = reason
        return
    sent = vocabulary.predicate("email_sent", "a.")
    bounds = {"start": rec.period.start_at, "end": rec.period.end_before}
    held = set().union(*quarantined.values()) if quarantined else set()
    by_day: dict[date, dict[str, list[Any]]] = {}
    for email_id, entry_id, at, harvested in con.execute(
        AUDIT_SENT_SQL.format(sent=sent), bounds
    ).fetchall():
        day = utc_day(at)
        bucket = by_day.setdefault(day, {"entries": [], "missing": [], "unlogged": []})
        bucket["entries"].append(email_id)
        if not harvested:
            was_quarantined = email_id in held
            bucket["missing"].append((email_id, was_quarantined))
            rec.gaps.append(EmailGap(email_id, "not_harvested", day, entry_id, at, was_quarantined))
    unlogged_sql = UNLOGGED_SQL.format(sent=sent, left=LEFT_MULTIMAIL)
    unlogged = con.execute(unlogged_sql, {**bounds, "unsent": list(UNSENT_STATUSES)}).fetchall()
    for email_id, created in unlogged:
        day = utc_day(created)
        by_day.setdefault(day, {"entries": [], "missing": [], "unlogged": []})
        by_day[day]["unlogged"].append(email_id)
        rec.gaps.append(EmailGap(email_id, "no_send_entry", day, None, created, False))
    action = vocabulary["email_sent"].describe()
    for day, bucket in by_day.items():
        missing = [m for m, quarantined_too in bucket["missing"] if not quarantined_too]
        explained = len(bucket["missing"]) - len(missing)
        entries = len(bucket["entries"])
        status = (
            "difference"
            if missing or bucket["unlogged"]
            else ("explained" if explained else "match")
        )
        notes = []
        if missing:
            notes.append(f"send entries for emails never harvested: {len(missing)}")
        if bucket["unlogged"]:
            notes.append(f"harvested emails with no send entry: {len(bucket['unlogged'])}")
        rec.rows.append(
            DayRow(
                day,
                AUDIT,
                action,
                "harvested email with that id",
                entries,
                entries - len(bucket["missing"]),
                explained,
                status,
                "; ".join(notes),
                tuple(sorted(missing + bucket["unlogged"])),
            )
        )
    rec.audit_checked = sum(len(b["entries"]) for b in by_day.values()) + len(unlogged)
    rec.gaps.sort(key=lambda g: (g.day, g.kind, g.email_id))
