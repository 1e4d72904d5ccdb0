"""Oversight controls (OVS-001..003, 006, 007): gated mail approved before it left, and stopped
mail that stayed stopped.

MultiMail's oversight modes (multimail-api.md §6) are the business's monitoring of the AI
agent acting on its behalf (CAN-SPAM note CS-09). These controls check that gated mail
was approved, in the right order, that rejections stuck, that the queue does not go stale,
and list every mode change. Who may approve (OVS-004) and which keys can both send and
approve (OVS-005) are `controls.segregation`.
"""

from __future__ import annotations

from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control
from auditkit.evidence_sql import mode_at_send_sql, mode_changes_sql
from auditkit.multimail_terms import GATED_MODES, PENDING_APPROVAL_STATUSES, STOPPED_STATUSES
from auditkit.vocabulary import SYMBOLIC, Vocabulary

OVERSIGHT_REF = "multimail-api.md §6–8; 15 U.S.C. § 7705 / FTC guide (monitor those acting for you)"

# --- OVS-001 -------------------------------------------------------------------------------
# The mode reconstruction reads the temp table, not the `delivered` CTE (a CTE referenced
# twice is planned twice).
DELIVERED_KEYS = "SELECT id, mailbox_id, created_at FROM ak_scope WHERE is_delivered"


def ovs_001_sql(vocabulary: Vocabulary) -> str:
    return f"""
WITH delivered AS (
    -- Mail that was rejected or cancelled is OVS-003's concern, not "sent without a decision".
    SELECT s.* FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
    WHERE s.is_delivered AND a.stop_actions IS NULL AND s.decision IS NULL
      AND coalesce(s.status, '') NOT IN {STOPPED_STATUSES!r}
), moded AS (
    SELECT d.id, d.mailbox_id, d.mailbox_address, d.created_at, d.delivered_at, d.has_approval,
           m.mode AS mode_at_send,
           CASE WHEN m.source = 'audit_log' AND m.before_first_change
                    THEN 'from-mode of the first logged change'
                WHEN m.source = 'audit_log' THEN 'audit entry ' || m.entry_id
                ELSE 'current mailbox setting (no mode change logged)' END AS mode_source
    FROM delivered d
    JOIN ({mode_at_send_sql(DELIVERED_KEYS, vocabulary)}) m ON m.email_id = d.id
)
SELECT id, mailbox_id, mailbox_address, created_at, delivered_at, mode_at_send, mode_source
FROM moded
WHERE list_contains($gated_modes, mode_at_send) AND NOT has_approval
ORDER BY id
"""


OVS_001_SQL = ovs_001_sql(SYMBOLIC)


@control(
    id="OVS-001",
    title="Gated mail delivered without approval",
    severity="high",
    rationale=(
        "A mailbox in gated_send or gated_all mode must hold outbound mail until a human "
        "approves it; flags delivered mail with neither an approval nor a decision "
        "(rejected/cancelled mail that went out anyway is OVS-003). The mode in force is "
        "reconstructed at the email's created_at (when the agent submitted it) from the audit "
        "log's mode-change entries (as `auditkit vocabulary` recognises them), not from "
        "today's setting; before the first logged change the mode is that change's old mode, "
        "and with no logged change the current mode applies. Inconclusive when the log has "
        "mailbox entries none of which can be recognised as a mode change. Scope: outbound "
        "email created in the period and delivered."
    ),
    reference=OVERSIGHT_REF,
    applies_to="outbound_email",
    sql=OVS_001_SQL,
    meanings=("mode_changed", "rejected", "cancelled"),
)
def ovs_001(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar("SELECT count(*) FROM ak_scope WHERE is_delivered")
    if not checked:
        return Outcome(0, not_applicable="no outbound email created in the period was delivered")
    if reason := ctx.missing("mode_changed"):
        return Outcome(checked, inconclusive=reason)
    rows = ctx.rows(ovs_001_sql(ctx.vocabulary), gated_modes=list(GATED_MODES))
    findings = [
        ctx.finding(
            "email",
            r["id"],
            "Delivered without an approval while mailbox "
            f"{r['mailbox_address'] or r['mailbox_id']} "
            f"was in {r['mode_at_send']} mode.",
            {
                k: r[k]
                for k in ("mailbox_id", "created_at", "delivered_at", "mode_at_send", "mode_source")
            },
        )
        for r in rows
    ]
    return Outcome(checked, findings)


# --- OVS-002 -------------------------------------------------------------------------------
OVS_002_SQL = """
SELECT id, approved_at, approved_by, delivered_at
FROM ak_scope
WHERE approved_at IS NOT NULL AND delivered_at IS NOT NULL AND approved_at > delivered_at
ORDER BY id
"""


@control(
    id="OVS-002",
    title="Approval recorded after delivery",
    severity="high",
    rationale=(
        "An approval must come before the message leaves; approved_at later than delivered_at "
        "means the approval did not gate the send. Scope: outbound email created in the period "
        "with both timestamps."
    ),
    reference=OVERSIGHT_REF,
    applies_to="outbound_email",
    sql=OVS_002_SQL,
)
def ovs_002(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar(
        "SELECT count(*) FROM ak_scope WHERE approved_at IS NOT NULL AND delivered_at IS NOT NULL"
    )
    if not checked:
        return Outcome(
            0, not_applicable="no email in the period has both an approval time and a delivery time"
        )
    findings = [
        ctx.finding(
            "email",
            r["id"],
            f"Approved at {r['approved_at']:%Y-%m-%d %H:%M:%S} UTC, after it was delivered at "
            f"{r['delivered_at']:%Y-%m-%d %H:%M:%S} UTC.",
            {**r, "lag_seconds": (r["approved_at"] - r["delivered_at"]).total_seconds()},
        )
        for r in ctx.rows(OVS_002_SQL)
    ]
    return Outcome(checked, findings)


# --- OVS-003 -------------------------------------------------------------------------------
OVS_003_SQL = f"""
SELECT s.id, s.status, s.decision, s.delivered_at, s.is_delivered, a.stop_actions, a.stopped_at
FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
WHERE s.status IN {STOPPED_STATUSES!r}
   OR lower(coalesce(s.decision, '')) IN ('rejected', 'reject', 'cancelled', 'cancel')
   OR a.stop_actions IS NOT NULL
ORDER BY s.id
"""


@control(
    id="OVS-003",
    title="Rejected or cancelled mail delivered anyway",
    severity="high",
    rationale=(
        "A reviewer's rejection (status, guide-shape decision, or a rejection audit entry) or "
        "a cancellation must stop the message. Scope: outbound email created in the "
        "period that was rejected or cancelled by any of those signals."
    ),
    reference=OVERSIGHT_REF,
    applies_to="outbound_email",
    sql=OVS_003_SQL,
    meanings=("rejected", "cancelled"),
)
def ovs_003(ctx: CheckContext) -> Outcome:
    rows = ctx.rows(OVS_003_SQL)
    if not rows:
        return Outcome(0, not_applicable="no email created in the period was rejected or cancelled")
    findings = []
    for r in rows:
        if not r["is_delivered"]:
            continue
        signals = [
            f"status {r['status']}" if r["status"] in STOPPED_STATUSES else None,
            f"decision {r['decision']}" if r["decision"] else None,
            f"audit log {r['stop_actions']}" if r["stop_actions"] else None,
        ]
        why = ", ".join(s for s in signals if s)
        findings.append(
            ctx.finding(
                "email",
                r["id"],
                f"Delivered although it was stopped ({why}).",
                {
                    k: r[k]
                    for k in ("status", "decision", "delivered_at", "stop_actions", "stopped_at")
                },
            )
        )
    return Outcome(len(rows), findings)


# --- OVS-006 -------------------------------------------------------------------------------
OVS_006_HELD = """
WITH held AS (
    SELECT s.id, s.mailbox_id, s.status, s.created_at, s.approved_at, s.delivered_at, a.decided_at,
           least(s.approved_at, s.delivered_at, a.decided_at) AS resolved_at
    FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
    WHERE s.has_approval OR a.decided_at IS NOT NULL OR s.decision IS NOT NULL
       OR list_contains($pending_statuses, s.status) OR s.status = 'rejected'
)
"""
OVS_006_SQL = (
    OVS_006_HELD
    + """
SELECT *, date_diff('second', created_at, $at) / 3600.0 AS hours_pending
FROM held
WHERE ((resolved_at IS NULL AND list_contains($pending_statuses, status)) OR resolved_at >= $at)
  AND date_diff('second', created_at, $at) > $limit_hours * 3600
ORDER BY id
"""
)


@control(
    id="OVS-006",
    title="Message left pending approval too long",
    severity="medium",
    rationale=(
        "A stale approval queue means agents' mail is neither reviewed nor stopped. Flags "
        "outbound email created in the period that was still awaiting a decision at period end "
        "(or when the store was last harvested, for a period not over by then) and had been "
        "waiting longer than [controls] pending_limit_hours (default 72) since its created_at. "
        "Decision time is the earliest of approved_at, delivered_at and a decision audit entry."
    ),
    reference=OVERSIGHT_REF,
    applies_to="outbound_email",
    sql=OVS_006_SQL,
    meanings=("approved", "rejected", "cancelled"),
)
def ovs_006(ctx: CheckContext) -> Outcome:
    at = ctx.evaluated_at
    limit = ctx.settings.pending_limit_hours
    params = {"pending_statuses": list(PENDING_APPROVAL_STATUSES)}
    checked = ctx.scalar(OVS_006_HELD + "SELECT count(*) FROM held", **params)
    if not checked:
        return Outcome(
            0, not_applicable="no email created in the period went through the approval queue"
        )
    findings = [
        ctx.finding(
            "email",
            r["id"],
            f"Pending approval for {r['hours_pending']:.0f} hours at {at:%Y-%m-%d %H:%M} UTC "
            f"(limit {limit:g} hours).",
            {
                "status": r["status"],
                "created_at": r["created_at"],
                "resolved_at": r["resolved_at"],
                "evaluated_at": at,
                "hours_pending": round(r["hours_pending"], 1),
                "limit_hours": limit,
            },
        )
        for r in ctx.rows(OVS_006_SQL, at=at, limit_hours=limit, **params)
    ]
    return Outcome(checked, findings)


# --- OVS-007 -------------------------------------------------------------------------------
def ovs_007_sql(vocabulary: Vocabulary) -> str:
    return f"""
SELECT c.entry_id, c.mailbox_id, m.address, c.actor_key_id, c.changed_at AS created_at,
       c.mode_from AS from_mode, c.mode_to AS to_mode, c.changed_by
FROM ({mode_changes_sql(vocabulary)}) c LEFT JOIN multimail_mailboxes m ON m.id = c.mailbox_id
WHERE c.changed_at >= $start AND c.changed_at < $end
ORDER BY c.changed_at, c.entry_id
"""


OVS_007_SQL = ovs_007_sql(SYMBOLIC)


@control(
    id="OVS-007",
    title="Oversight mode changed (informational)",
    severity="low",
    rationale=(
        "Informational: every oversight-mode change in the audit log (as `auditkit vocabulary` "
        "recognises them) whose created_at falls in the period becomes a finding with who, "
        "when, from and to, so reviewers can confirm each change was authorised. Findings "
        "make the status 'fail', which only affects the exit code with --fail-on low (the "
        "default); use --fail-on medium to ignore them."
    ),
    reference=OVERSIGHT_REF,
    applies_to="audit_log",
    sql=OVS_007_SQL,
    meanings=("mode_changed",),
)
def ovs_007(ctx: CheckContext) -> Outcome:
    mailboxes = ctx.scalar("SELECT count(*) FROM multimail_mailboxes")
    if not mailboxes:
        return Outcome(0, not_applicable="no mailboxes were harvested")
    if reason := ctx.missing("mode_changed"):
        return Outcome(mailboxes, inconclusive=reason)
    findings = [
        ctx.finding(
            "audit_entry",
            r["entry_id"],
            f"Oversight mode of {r['address'] or r['mailbox_id']} changed from {r['from_mode']} to "
            f"{r['to_mode']} by "
            f"{r['changed_by'] or r['actor_key_id'] or 'unknown'} at "
            f"{r['created_at']:%Y-%m-%d %H:%M} UTC.",
            r,
        )
        for r in ctx.rows(ovs_007_sql(ctx.vocabulary))
    ]
    return Outcome(mailboxes, findings)
