"""Segregation-of-duties controls (OVS-004, OVS-005): who approved, and which keys could.

The approver of a message must not be its author (sending key, agent or operator) nor an
agent's key, and must be a configured reviewer (OVS-004); no API key may hold both the
send and the oversight scope while active in the period (OVS-005). The approver's kind
(person, key, session) is `evidence_sql.approver_kind_sql`, shared with the evidence pack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from auditkit.controls.context import CheckContext
from auditkit.controls.oversight import OVERSIGHT_REF
from auditkit.controls.registry import Outcome, control
from auditkit.evidence_sql import REVIEWER_PATHS, approver_kind_sql
from auditkit.findings import FindingState
from auditkit.vocabulary import SYMBOLIC, Vocabulary, sql_literal

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
        state: FindingState = "open"
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
