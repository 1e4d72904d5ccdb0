"""Oversight controls (OVS-*): approval before sending, by someone other than the author.

MultiMail's oversight modes (multimail-api.md §6) are the business's monitoring of the AI
agent acting on its behalf (CAN-SPAM note CS-09). These controls check that gated mail
was approved, in the right order, by a reviewer who is not the sender, that rejections
stuck, that no key can both send and approve, and that the queue does not go stale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from auditkit.controls import Outcome, control
from auditkit.controls.context import (
    GATED_MODES,
    PENDING_APPROVAL_STATUSES,
    CheckContext,
    mode_at_send_sql,
)

OVERSIGHT_REF = "multimail-api.md §6–8; 15 U.S.C. § 7705 / FTC guide (monitor those acting for you)"

# --- OVS-001 -------------------------------------------------------------------------------
# The mode reconstruction reads the temp table, not the `delivered` CTE (a CTE referenced
# twice is planned twice).
DELIVERED_KEYS = "SELECT id, mailbox_id, created_at FROM ak_scope WHERE is_delivered"
OVS_001_SQL = f"""
WITH delivered AS (
    -- Mail that was rejected or cancelled is OVS-003's concern, not "sent without a decision".
    SELECT s.* FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
    WHERE s.is_delivered AND a.stop_actions IS NULL AND s.decision IS NULL
      AND coalesce(s.status, '') NOT IN ('rejected', 'cancelled')
), moded AS (
    SELECT d.id, d.mailbox_id, d.mailbox_address, d.created_at, d.delivered_at, d.has_approval,
           m.mode AS mode_at_send,
           CASE WHEN m.source = 'audit_log' AND m.before_first_change
                    THEN 'from-mode of the first logged change'
                WHEN m.source = 'audit_log' THEN 'audit entry ' || m.entry_id
                ELSE 'current mailbox setting (no mode change logged)' END AS mode_source
    FROM delivered d
    JOIN ({mode_at_send_sql(DELIVERED_KEYS)}) m ON m.email_id = d.id
)
SELECT id, mailbox_id, mailbox_address, created_at, delivered_at, mode_at_send, mode_source
FROM moded
WHERE list_contains($gated_modes, mode_at_send) AND NOT has_approval
ORDER BY id
"""


@control(
    id="OVS-001",
    title="Gated mail delivered without approval",
    severity="high",
    rationale=(
        "A mailbox in gated_send or gated_all mode must hold outbound mail until a human "
        "approves it; flags delivered mail with neither an approval nor a decision "
        "(rejected/cancelled mail that went out anyway is OVS-003). The mode in force is "
        "reconstructed at the email's created_at (when the agent submitted it) from "
        "mailbox.oversight_mode_changed audit entries, not from today's setting; before the "
        "first logged change the mode is that change's 'from', and with no logged change the "
        "current mode applies. Scope: outbound email created in the period and delivered."
    ),
    reference=OVERSIGHT_REF,
    applies_to="outbound_email",
    sql=OVS_001_SQL,
)
def ovs_001(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar("SELECT count(*) FROM ak_scope WHERE is_delivered")
    if not checked:
        return Outcome(0, not_applicable="no outbound email created in the period was delivered")
    rows = ctx.rows(
        OVS_001_SQL, mode_changed=ctx.actions["mode_changed"], gated_modes=list(GATED_MODES)
    )
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
OVS_003_SQL = """
SELECT s.id, s.status, s.decision, s.delivered_at, s.is_delivered, a.stop_actions, a.stopped_at
FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
WHERE s.status IN ('rejected', 'cancelled')
   OR lower(coalesce(s.decision, '')) IN ('rejected', 'reject', 'cancelled', 'cancel')
   OR a.stop_actions IS NOT NULL
ORDER BY s.id
"""


@control(
    id="OVS-003",
    title="Rejected or cancelled mail delivered anyway",
    severity="high",
    rationale=(
        "A reviewer's rejection (status, guide-shape decision, or an oversight.rejected audit "
        "entry) or a cancellation must stop the message. Scope: outbound email created in the "
        "period that was rejected or cancelled by any of those signals."
    ),
    reference=OVERSIGHT_REF,
    applies_to="outbound_email",
    sql=OVS_003_SQL,
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
            f"status {r['status']}" if r["status"] in ("rejected", "cancelled") else None,
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


# --- OVS-004 -------------------------------------------------------------------------------
OVS_004_SQL = """
WITH operator AS (
    SELECT lower(min(oversight_email)) AS operator_email FROM multimail_account
), approved AS (
    SELECT s.id, s.approved_by, s.approved_at, s.agent, a.approver_key, a.sender_key,
           a.sent_entry_id, a.approval_entry_id
    FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
    WHERE s.has_approval
), logged_agent AS (      -- agent from the email.sent entry, only where the email has none
    SELECT ap.id, json_extract_string(l.metadata, '$.agent') AS agent
    FROM approved ap JOIN multimail_audit_log l ON l.id = ap.sent_entry_id
    WHERE ap.agent IS NULL
), logged_reviewer AS (   -- reviewer from the approval entry, only where approved_by is empty
    SELECT ap.id, json_extract_string(l.metadata, '$.reviewer') AS reviewer
    FROM approved ap JOIN multimail_audit_log l ON l.id = ap.approval_entry_id
    WHERE ap.approved_by IS NULL
), judged AS (
    SELECT ap.id, ap.approved_by, ap.approved_at, lr.reviewer AS logged_reviewer, ap.approver_key,
           ap.sender_key, coalesce(ap.agent, la.agent) AS agent, o.operator_email,
           lower(trim(coalesce(ap.approved_by, lr.reviewer))) AS approver
    FROM approved ap
    LEFT JOIN logged_agent la ON la.id = ap.id
    LEFT JOIN logged_reviewer lr ON lr.id = ap.id
    CROSS JOIN operator o
), flagged AS (
    SELECT *,
           coalesce(approver = lower(sender_key), false)
             OR coalesce(approver = lower(agent), false)
             OR coalesce(approver_key = sender_key, false)
             -- no key and no agent logged: the operator sent it by hand
             OR (sender_key IS NULL AND agent IS NULL AND coalesce(approver = operator_email,
                 false))
             AS self_approved,
           len($reviewers::VARCHAR[]) > 0
             AND (approver IS NULL OR NOT list_contains($reviewers::VARCHAR[],
                 approver)) AS not_a_reviewer
    FROM judged
)
SELECT * FROM flagged WHERE self_approved OR not_a_reviewer ORDER BY id
"""


@control(
    id="OVS-004",
    title="Self-approval or approval by someone who is not a reviewer",
    severity="high",
    rationale=(
        "Segregation of duties: the approver must not be the message's author — the sending key "
        "(actor_key_id of its email.sent audit entry), the agent, or, for mail sent without key "
        "or agent, the operator — and, when [controls] reviewers is configured, must be on that "
        "list. Scope: approved outbound email created in the period."
    ),
    reference=OVERSIGHT_REF + "; can-spam.md §5 (segregation of duties)",
    applies_to="outbound_email",
    sql=OVS_004_SQL,
)
def ovs_004(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar("SELECT count(*) FROM ak_scope WHERE has_approval")
    if not checked:
        return Outcome(0, not_applicable="no approved email was created in the period")
    rows = ctx.rows(OVS_004_SQL, reviewers=list(ctx.settings.reviewers))
    findings = []
    for r in rows:
        reasons = []
        approver = r["approved_by"] or r["logged_reviewer"] or r["approver_key"] or "(unknown)"
        if r["self_approved"]:
            reasons.append(f"approved by its own author ({approver})")
        if r["not_a_reviewer"]:
            reasons.append(f"approver {approver} is not in [controls] reviewers")
        findings.append(
            ctx.finding(
                "email",
                r["id"],
                "Approval breaks segregation of duties: " + "; ".join(reasons) + ".",
                {
                    k: r[k]
                    for k in (
                        "approved_by",
                        "approved_at",
                        "logged_reviewer",
                        "approver_key",
                        "sender_key",
                        "agent",
                        "self_approved",
                        "not_a_reviewer",
                    )
                },
            )
        )
    return Outcome(checked, findings)


# --- OVS-005 -------------------------------------------------------------------------------
OVS_005_SQL = """
SELECT k.id, k.name, k.prefix, k.scopes, k.created_at, k.is_active, k.last_used_at,
       list(struct_pack(at := a.created_at, action := a.action, entry_id := a.id,
                        scopes := a.metadata -> '$.scopes') ORDER BY a.created_at, a.id)
         FILTER (WHERE a.id IS NOT NULL) AS history
FROM multimail_api_keys k
LEFT JOIN multimail_audit_log a
       ON a.resource_id = k.id AND a.action IN ($key_created, $key_updated, $key_revoked)
WHERE k.created_at IS NULL OR k.created_at < $end
GROUP BY ALL
ORDER BY k.id
"""
DUTY_CONFLICT = frozenset({"send", "oversight"})


def _scopes(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, list | tuple):
        return frozenset(str(s) for s in value)
    return None


def _scope_intervals(
    key: dict[str, Any], key_created: str, key_revoked: str
) -> tuple[list[tuple[datetime | None, datetime | None, frozenset[str], str]], datetime | None]:
    """(from, until, scopes, source) intervals from the key's audit history, and revocation time.

    With no usable history the key's current scopes hold for its whole life.
    """
    history: Sequence[dict[str, Any]] = key["history"] or []
    revoked_at = min((h["at"] for h in history if h["action"] == key_revoked), default=None)
    changes = [
        (h["at"], s, f"audit entry {h['entry_id']} ({h['action']})")
        for h in history
        if h["action"] != key_revoked and (s := _scopes(h["scopes"])) is not None
    ]
    current = frozenset(key["scopes"] or [])
    if not changes:
        return [(key["created_at"], None, current, "current key scopes")], revoked_at
    intervals = []
    first_at = changes[0][0]
    if history[0]["action"] != key_created:
        # Scopes before the first logged update are unknown; the current ones are the best guess.
        intervals.append(
            (
                key["created_at"],
                first_at,
                current,
                "current key scopes (before first logged change)",
            )
        )
    for i, (at, scopes, source) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else None
        intervals.append((at, until, scopes, source))
    return intervals, revoked_at


@control(
    id="OVS-005",
    title="API key can both send and approve",
    severity="high",
    rationale=(
        "A key holding both send and oversight scopes lets an agent approve its own mail. Flags "
        "keys created before the period ended that held both scopes at some time during the "
        "period while active (scope history from api_key.created/updated audit entries, else the "
        "current scopes; revocation time from api_key.revoked entries). An inactive key with no "
        "revocation record and no use in the period is flagged for review."
    ),
    reference="multimail-api.md §1, §4.11 (separation of duties)",
    applies_to="api_key",
    sql=OVS_005_SQL,
)
def ovs_005(ctx: CheckContext) -> Outcome:
    keys = ctx.rows(
        OVS_005_SQL,
        key_created=ctx.actions["key_created"],
        key_updated=ctx.actions["key_updated"],
        key_revoked=ctx.actions["key_revoked"],
    )
    start, end = ctx.period.start_at, ctx.period.end_before
    findings, checked = [], 0
    for key in keys:
        intervals, revoked_at = _scope_intervals(
            key, ctx.actions["key_created"], ctx.actions["key_revoked"]
        )
        active_until = revoked_at
        state = "open"
        if not key["is_active"] and revoked_at is None:
            used_in_period = key["last_used_at"] is not None and key["last_used_at"] >= start
            if not used_in_period:
                state = "review"
        elif revoked_at is not None and revoked_at < start:
            continue  # gone before the period began
        checked += 1
        for since, until, scopes, source in intervals:
            overlaps = (since is None or since < end) and (until is None or until > start)
            if active_until is not None:
                overlaps = overlaps and (since is None or since < active_until)
            if overlaps and DUTY_CONFLICT <= scopes:
                why = "Key holds both send and oversight scopes, so it can approve its own mail"
                if state == "review":
                    why += " (key is inactive now and when it was revoked is unknown)"
                findings.append(
                    ctx.finding(
                        "api_key",
                        key["id"],
                        why + ".",
                        {
                            "name": key["name"],
                            "prefix": key["prefix"],
                            "scopes": sorted(scopes),
                            "scopes_source": source,
                            "in_force_from": since,
                            "in_force_until": until,
                            "created_at": key["created_at"],
                            "is_active": key["is_active"],
                            "revoked_at": revoked_at,
                        },
                        state=state,
                    )
                )
                break
    if not checked:
        return Outcome(0, not_applicable="no API key was active during the period")
    return Outcome(checked, findings)


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
        "(or now, for a period not yet over) and had been waiting longer than [controls] "
        "pending_limit_hours (default 72) since its created_at. Decision time is the earliest of "
        "approved_at, delivered_at and a decision audit entry."
    ),
    reference=OVERSIGHT_REF,
    applies_to="outbound_email",
    sql=OVS_006_SQL,
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
OVS_007_SQL = """
SELECT a.id AS entry_id, a.resource_id AS mailbox_id, m.address, a.actor_key_id, a.created_at,
       json_extract_string(a.metadata, '$.from') AS from_mode,
       json_extract_string(a.metadata, '$.to') AS to_mode,
       json_extract_string(a.metadata, '$.changed_by') AS changed_by
FROM multimail_audit_log a LEFT JOIN multimail_mailboxes m ON m.id = a.resource_id
WHERE a.action = $mode_changed AND a.created_at >= $start AND a.created_at < $end
ORDER BY a.created_at, a.id
"""


@control(
    id="OVS-007",
    title="Oversight mode changed (informational)",
    severity="low",
    rationale=(
        "Informational: every mailbox.oversight_mode_changed audit entry whose created_at falls "
        "in the period becomes a finding with who, when, from and to, so reviewers can confirm "
        "each change was authorised. Findings make the status 'fail', which only affects the "
        "exit code with --fail-on low (the default); use --fail-on medium to ignore them."
    ),
    reference=OVERSIGHT_REF,
    applies_to="audit_log",
    sql=OVS_007_SQL,
)
def ovs_007(ctx: CheckContext) -> Outcome:
    mailboxes = ctx.scalar("SELECT count(*) FROM multimail_mailboxes")
    if not mailboxes:
        return Outcome(0, not_applicable="no mailboxes were harvested")
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
        for r in ctx.rows(OVS_007_SQL, mode_changed=ctx.actions["mode_changed"])
    ]
    return Outcome(mailboxes, findings)
