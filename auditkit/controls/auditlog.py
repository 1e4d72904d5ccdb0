"""Audit-log controls (AL-*): the evidence itself was not altered, and approvals reconcile.

AL-001 reports the integrity events the harvester records when a source record no longer
matches what was first harvested. AL-002 cross-checks the two independent records of an
approval: the email's own approval fields and the approval audit entry (as the vocabulary,
`auditkit.vocabulary`, recognises it).
"""

from __future__ import annotations

from typing import Any

from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control
from auditkit.store.audit_chain import INCONSISTENT

AL_001_SQL = """
SELECT i.id AS event_id, i.record_type, i.record_id, i.change, i.detected_at, i.run_id,
       i.stored_sha256, i.source_sha256,
       coalesce(a.created_at, e.created_at) AS record_created_at
FROM integrity_events i
LEFT JOIN multimail_audit_log a ON i.record_type = 'audit_entry' AND a.id = i.record_id
LEFT JOIN multimail_emails e ON i.record_type = 'email' AND e.id = i.record_id
WHERE coalesce(a.created_at, e.created_at) IS NULL
   OR (coalesce(a.created_at, e.created_at) >= $start AND coalesce(a.created_at,
       e.created_at) < $end)
ORDER BY i.record_type, i.record_id, i.detected_at, i.id
"""


@control(
    id="AL-001",
    title="Audit-log entry or email changed or removed at the source",
    severity="high",
    rationale=(
        "Evidence must not change after the fact. Every integrity event (a record whose source "
        "copy changed or disappeared since auditkit first harvested it, or an audit entry the "
        "source gave in two different versions within one harvest) is a finding. Scope: "
        "audit entries and emails whose stored created_at falls in the period (or that cannot be "
        "dated)."
    ),
    reference="can-spam.md §5 (integrity, chain of custody)",
    applies_to="audit_log",
    sql=AL_001_SQL,
)
def al_001(ctx: CheckContext) -> Outcome:
    counts = ctx.rows(
        "SELECT (SELECT count(*) FROM multimail_audit_log WHERE created_at >= $start AND "
        "created_at < $end) AS entries, "
        "(SELECT count(*) FROM ak_scope) AS emails"
    )[0]
    checked = counts["entries"] + counts["emails"]
    if not checked:
        return Outcome(
            0, not_applicable="no audit-log entries or emails from the period were harvested"
        )
    findings = [
        ctx.finding(r["record_type"], r["record_id"], _al_001_reason(r), r)
        for r in ctx.rows(AL_001_SQL)
    ]
    return Outcome(checked, findings)


def _al_001_reason(event: dict[str, Any]) -> str:
    record = event["record_type"].replace("_", " ")
    detected = f"{event['detected_at']:%Y-%m-%d %H:%M} UTC"
    if event["change"] == INCONSISTENT:
        return (
            f"The source gave the {record} in two different versions within one harvest "
            f"(detected {detected}): SHA-256 {event['stored_sha256']} is kept, and "
            f"{event['source_sha256']} is the other (both are in the store's integrity events)."
        )
    return (
        f"The {record} was {event['change']} at the source after it was first harvested "
        f"(detected {detected})."
    )


AL_002_RECORDS = """
WITH records AS (
    SELECT s.id, s.has_approval, s.approved_at, s.approved_by, s.decision, s.status,
           a.approval_entry_id AS entry_id, a.approval_logged_at AS logged_at
    FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
    WHERE s.has_approval OR a.approval_entry_id IS NOT NULL
)
"""
AL_002_SQL = (
    AL_002_RECORDS
    + """, disagreeing AS (
    SELECT * FROM records WHERE has_approval = (entry_id IS NULL)
)
SELECT d.*, list_filter(json_extract_string(l.metadata, ['$.reviewer', '$.approver',
           '$.approved_by', '$.decided_by', '$.user']), lambda v: v IS NOT NULL)[1]
           AS logged_reviewer
FROM disagreeing d LEFT JOIN multimail_audit_log l ON l.id = d.entry_id
ORDER BY d.id
"""
)


@control(
    id="AL-002",
    title="Approval and audit log disagree",
    severity="high",
    rationale=(
        "An approval must appear both on the email (approved_at/approved_by or decision) and as "
        "an approval audit entry. One without the other means a record is missing or was "
        "fabricated. Inconclusive when no audit action can be recognised as an approval "
        "(`auditkit vocabulary`). Scope: outbound email created in the period with either "
        "record."
    ),
    reference="multimail-api.md §8; can-spam.md §5",
    applies_to="audit_log",
    sql=AL_002_SQL,
    meanings=("approved",),
)
def al_002(ctx: CheckContext) -> Outcome:
    if not ctx.scalar("SELECT count(*) FROM multimail_audit_log"):
        return Outcome(
            0, not_applicable="audit log not harvested: approvals cannot be cross-checked"
        )
    checked = ctx.scalar(AL_002_RECORDS + "SELECT count(*) FROM records")
    if not checked:
        return Outcome(
            0, not_applicable="no email in the period was approved or has an approval audit entry"
        )
    if reason := ctx.missing("approved"):
        return Outcome(checked, inconclusive=reason)
    approval_entry = ctx.vocabulary["approved"].describe()
    findings = []
    for r in ctx.rows(AL_002_SQL):
        evidence = {
            k: r[k]
            for k in (
                "approved_at",
                "approved_by",
                "decision",
                "status",
                "entry_id",
                "logged_at",
                "logged_reviewer",
            )
        }
        if r["has_approval"] and r["entry_id"] is None:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    f"The email shows an approval (by {r['approved_by'] or 'unknown'}) but the "
                    f"audit log has no approval entry ({approval_entry}) for it.",
                    evidence,
                )
            )
        elif not r["has_approval"] and r["entry_id"] is not None:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    f"Audit entry {r['entry_id']} records an approval, but the email shows none.",
                    evidence,
                )
            )
    return Outcome(checked, findings)
