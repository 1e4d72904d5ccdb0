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
from auditkit.controls.context import CheckContext
from auditkit.evidence_sql import (
    REVIEWER_PATHS,
    approver_kind_sql,
    mode_at_send_sql,
    mode_changes_sql,
)
from auditkit.multimail_terms import GATED_MODES, PENDING_APPROVAL_STATUSES, STOPPED_STATUSES
from auditkit.vocabulary import SYMBOLIC, Vocabulary, sql_literal

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


# --- OVS-004 -------------------------------------------------------------------------------
OVS_004_SQL = f"""
WITH operator AS (
    SELECT lower(min(oversight_email)) AS operator_email FROM multimail_account
), keys AS (
    SELECT lower(id) AS key_id, list_contains(scopes, 'send') AS can_send FROM multimail_api_keys
), approved AS (
    SELECT s.id, s.approved_by, s.approved_at, s.agent, a.approver_key, a.sender_key,
           a.sent_entry_id, a.approval_entry_id
    FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
    WHERE s.has_approval
), logged_agent AS (      -- agent from the send entry, only where the email has none
    SELECT ap.id, json_extract_string(l.metadata, '$.agent') AS agent
    FROM approved ap JOIN multimail_audit_log l ON l.id = ap.sent_entry_id
    WHERE ap.agent IS NULL
), logged_reviewer AS (   -- who decided, from the approval entry, where approved_by is empty
    SELECT ap.id, list_filter(json_extract_string(l.metadata, {list(REVIEWER_PATHS)!r}),
                              lambda v: v IS NOT NULL)[1] AS reviewer
    FROM approved ap JOIN multimail_audit_log l ON l.id = ap.approval_entry_id
    WHERE ap.approved_by IS NULL
), judged AS (
    SELECT ap.id, ap.approved_by, ap.approved_at, lr.reviewer AS logged_reviewer, ap.approver_key,
           ap.sender_key, coalesce(ap.agent, la.agent) AS agent, o.operator_email,
           ap.approval_entry_id,
           lower(trim(coalesce(ap.approved_by, lr.reviewer, ap.approver_key))) AS approver
    FROM approved ap
    LEFT JOIN logged_agent la ON la.id = ap.id
    LEFT JOIN logged_reviewer lr ON lr.id = ap.id
    CROSS JOIN operator o
), kinded AS (
    SELECT j.*, {approver_kind_sql("j.approver", "j.approver_key", "j.approval_entry_id")}
               AS approver_kind
    FROM judged j
), keyed AS (
    -- The key that approved: the approver itself when it is a key, else the approval
    -- entry's actor (a person approving through a reviewers' console key).
    SELECT k.*, CASE WHEN approver_kind = 'key' THEN approver ELSE lower(approver_key) END
                    AS approving_key
    FROM kinded k
), flagged AS (
    SELECT ky.*, coalesce(kk.can_send, false) AS approving_key_can_send,
           coalesce(ky.approver = lower(ky.sender_key), false)
             OR coalesce(ky.approver = lower(ky.agent), false)
             OR coalesce(ky.approving_key = lower(ky.sender_key), false)
             -- no key and no agent logged: the operator sent it by hand
             OR (ky.sender_key IS NULL AND ky.agent IS NULL
                 AND coalesce(ky.approver = ky.operator_email, false)) AS self_approved,
           len($reviewers::VARCHAR[]) > 0
             AND (ky.approver IS NULL OR NOT list_contains($reviewers::VARCHAR[], ky.approver))
             -- a reviewers list of people says nothing about a key or a session
             AND (ky.approver_kind NOT IN ('key', 'session') OR $reviewers_name_ids)
             AS not_a_reviewer,
           len($reviewers::VARCHAR[]) > 0 AND NOT $reviewers_name_ids
             AND ky.approver_kind IN ('key', 'session') AS not_checkable
    FROM keyed ky LEFT JOIN keys kk ON kk.key_id = ky.approving_key
)
SELECT * FROM flagged
WHERE self_approved OR not_a_reviewer OR approving_key_can_send OR not_checkable
ORDER BY id
"""


@control(
    id="OVS-004",
    title="Self-approval or approval by someone who is not a reviewer",
    severity="high",
    rationale=(
        "Segregation of duties: the approver must not be the message's author — the sending "
        "key (actor of its send audit entry), the agent, or, for mail sent without key or "
        "agent, the operator — nor any API key holding the send scope (an agent's key), and, "
        "when [controls] reviewers is configured, must be on that list. The approver is "
        "approved_by, else the person the approval entry names, else the approval entry's key; "
        "its kind (person, key, session) is shown. A reviewers list of people is not applied "
        "to approvals by a key or an approval-page session unless it also names ids; those "
        "are counted in the detail. Without a recognisable send entry, self-approval by the "
        "sending key cannot be checked and the control is inconclusive unless something else "
        "fails. Scope: approved outbound email created in the period."
    ),
    reference=OVERSIGHT_REF + "; can-spam.md §5 (segregation of duties)",
    applies_to="outbound_email",
    sql=OVS_004_SQL,
    meanings=("email_sent", "approved"),
)
def ovs_004(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar("SELECT count(*) FROM ak_scope WHERE has_approval")
    if not checked:
        return Outcome(0, not_applicable="no approved email was created in the period")
    reviewers = list(ctx.settings.reviewers)
    rows = ctx.rows(
        OVS_004_SQL,
        reviewers=reviewers,
        reviewers_name_ids=any("@" not in r for r in reviewers),
    )
    findings = []
    unchecked = 0
    for r in rows:
        reasons = []
        approver = r["approver"] or "(unknown)"
        kind = r["approver_kind"] or "unknown"
        if r["self_approved"]:
            reasons.append(f"approved by its own author ({kind} {approver})")
        elif r["approving_key_can_send"]:
            reasons.append(
                f"approved by API key {r['approving_key']}, which holds the send scope "
                "(an agent's key)"
            )
        if r["not_a_reviewer"]:
            reasons.append(f"approver {approver} is not in [controls] reviewers")
        if not reasons:
            unchecked += r["not_checkable"]
            continue
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
                        "approver",
                        "approver_kind",
                        "logged_reviewer",
                        "approver_key",
                        "sender_key",
                        "agent",
                        "self_approved",
                        "approving_key_can_send",
                        "not_a_reviewer",
                    )
                },
            )
        )
    detail = (
        f"{unchecked} approval(s) by an API key or approval-page session were not checked "
        "against [controls] reviewers, which names people only"
        if unchecked
        else ""
    )
    return Outcome(checked, findings, detail=detail, inconclusive=ctx.missing("email_sent"))


# --- OVS-005 -------------------------------------------------------------------------------
def ovs_005_sql(vocabulary: Vocabulary) -> str:
    key_meaning = " ".join(
        f"WHEN {vocabulary.predicate(m, 'a.')} THEN {sql_literal(m)}"
        for m in ("key_created", "key_updated", "key_revoked")
    )
    return f"""
WITH history AS (
    SELECT a.resource_id, a.id, a.created_at, CASE {key_meaning} END AS meaning,
           coalesce(a.metadata -> '$.scopes', a.metadata -> '$.changes.scopes[1]',
                    a.metadata -> '$.changes.scopes.to') AS scopes
    FROM multimail_audit_log a
    WHERE a.resource_id IN (SELECT id FROM multimail_api_keys)
)
SELECT k.id, k.name, k.prefix, k.scopes, k.created_at, k.is_active, k.last_used_at,
       list(struct_pack(at := h.created_at, action := h.meaning, entry_id := h.id,
                        scopes := h.scopes) ORDER BY h.created_at, h.id)
         FILTER (WHERE h.meaning IS NOT NULL) AS history
FROM multimail_api_keys k
LEFT JOIN history h ON h.resource_id = k.id
WHERE k.created_at IS NULL OR k.created_at < $end
GROUP BY ALL
ORDER BY k.id
"""


OVS_005_SQL = ovs_005_sql(SYMBOLIC)
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
        "period while active (scope history from the key creation and scope-change audit "
        "entries, else the current scopes; revocation time from key revocation entries). An "
        "inactive key with no revocation record and no use in the period is flagged for "
        "review."
    ),
    reference="multimail-api.md §1, §4.11 (separation of duties)",
    applies_to="api_key",
    sql=OVS_005_SQL,
    meanings=("key_created", "key_updated", "key_revoked"),
)
def ovs_005(ctx: CheckContext) -> Outcome:
    if reason := ctx.missing("key_created", "key_updated", "key_revoked"):
        return Outcome(0, inconclusive=reason)
    keys = ctx.rows(ovs_005_sql(ctx.vocabulary))
    start, end = ctx.period.start_at, ctx.period.end_before
    findings, checked = [], 0
    for key in keys:
        intervals, revoked_at = _scope_intervals(key, "key_created", "key_revoked")
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
