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

# Each email's first send entry in the period, and whether the email was harvested. Days
# come back as counts (a million entries never become Python rows); only the entries whose
# email is missing are fetched one by one.
SENT_ENTRIES = """
WITH sent AS (
    SELECT a.resource_id AS email_id, arg_min(a.id, a.created_at) AS entry_id,
           min(a.created_at) AS sent_at
    FROM multimail_audit_log a
    WHERE {sent} AND a.created_at >= $start AND a.created_at < $end
    GROUP BY a.resource_id
)
SELECT s.*, e.id IS NOT NULL AS harvested
FROM sent s LEFT JOIN (SELECT id FROM multimail_emails) e ON e.id = s.email_id
"""
DAY_COUNTS_SQL = "SELECT sent_at::DATE AS day, count(*) AS entries FROM ({sent_entries}) GROUP BY 1"
MISSING_SQL = (
    "SELECT email_id, entry_id, sent_at FROM ({sent_entries}) WHERE NOT harvested ORDER BY email_id"
)
UNLOGGED_SQL = """
SELECT e.id, e.created_at FROM multimail_emails e
WHERE e.direction = 'outbound' AND e.created_at >= $start AND e.created_at < $end
  AND {left}
  AND e.id NOT IN (SELECT a.resource_id FROM multimail_audit_log a
                   WHERE {sent} AND a.resource_id IS NOT NULL)
ORDER BY e.id
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
    sent_entries = SENT_ENTRIES.format(sent=sent)
    by_day: dict[date, dict[str, Any]] = {
        day: {"entries": int(n), "missing": [], "unlogged": []}
        for day, n in con.execute(
            DAY_COUNTS_SQL.format(sent_entries=sent_entries), bounds
        ).fetchall()
    }
    empty = {"entries": 0, "missing": [], "unlogged": []}
    for email_id, entry_id, at in con.execute(
        MISSING_SQL.format(sent_entries=sent_entries), bounds
    ).fetchall():
        day = utc_day(at)
        was_quarantined = email_id in held
        by_day.setdefault(day, dict(empty, missing=[], unlogged=[]))["missing"].append(
            (email_id, was_quarantined)
        )
        rec.gaps.append(EmailGap(email_id, "not_harvested", day, entry_id, at, was_quarantined))
    unlogged_sql = UNLOGGED_SQL.format(sent=sent, left=LEFT_MULTIMAIL)
    unlogged = con.execute(unlogged_sql, {**bounds, "unsent": list(UNSENT_STATUSES)}).fetchall()
    for email_id, created in unlogged:
        day = utc_day(created)
        by_day.setdefault(day, dict(empty, missing=[], unlogged=[]))["unlogged"].append(email_id)
        rec.gaps.append(EmailGap(email_id, "no_send_entry", day, None, created, False))
    action = vocabulary["email_sent"].describe()
    for day, bucket in by_day.items():
        missing = [m for m, quarantined_too in bucket["missing"] if not quarantined_too]
        explained = len(bucket["missing"]) - len(missing)
        entries = bucket["entries"]
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
    rec.audit_checked = sum(b["entries"] for b in by_day.values()) + len(unlogged)
    rec.gaps.sort(key=lambda g: (g.day, g.kind, g.email_id))
