"""Population completeness (PC-*): the harvested population against MultiMail's own counts.

PC-001 reads `auditkit.reconciliation`, the same table the evidence pack prints, and turns
each unexplained difference into a finding: one per UTC day where usage or webhook counts
differ from the harvested mail, one per email the audit log and the harvest disagree on.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control
from auditkit.findings import Finding, FindingState
from auditkit.reconciliation import AUDIT, USAGE, WEBHOOKS, DayRow, Reconciliation, reconcile

PC_001_SQL = """
-- auditkit.reconciliation: per UTC day of the period, each source count against the
-- harvested daily series it matches best (reconciliation.SERIES), e.g. for usage:
SELECT u.date, u.event_type, u.count AS source_count, h.n AS harvested_count
FROM multimail_usage_daily u
LEFT JOIN (SELECT created_at::DATE AS day, count(*) AS n FROM multimail_emails
           WHERE direction = 'outbound' GROUP BY 1) h ON h.day = u.date
WHERE u.date >= $start::DATE AND u.date < $end::DATE
ORDER BY u.date, u.event_type;
-- and the audit log's send entries against harvested emails, both ways:
SELECT a.resource_id FROM multimail_audit_log a
WHERE meaning('email_sent') AND a.resource_id NOT IN (SELECT id FROM multimail_emails)
"""
SOURCE_LABELS = {USAGE: "usage", WEBHOOKS: "webhook", AUDIT: "audit log"}


@control(
    id="PC-001",
    title="Harvested population differs from MultiMail's own counts",
    severity="high",
    rationale=(
        "Evidence is only as good as its population: a message the harvest never saw is a "
        "message no control checked. Per UTC day, MultiMail's daily usage and its webhook "
        "deliveries (by event type) are compared with the harvested mail, and every email-send "
        "audit entry with a harvested email and back. Event type names are not assumed: each "
        "is matched to the harvested series it agrees with on most days (at least 80%). A "
        "difference that quarantined records explain is not a finding. Not applicable when "
        "neither count can be read (403 or 404)."
    ),
    reference="evidence-standards.md (completeness); multimail-api.md §4.13, §4.14, §4.8",
    applies_to="population",
    sql=PC_001_SQL,
    meanings=("email_sent", "approved", "rejected"),
)
def pc_001(ctx: CheckContext) -> Outcome:
    if ctx.message_ids is not None:
        return Outcome(
            0, not_applicable="a check of whole periods; this run selects chosen messages"
        )
    rec = reconcile(ctx.con, ctx.period, ctx.vocabulary)
    findings = day_findings(ctx, rec) + email_findings(ctx, rec)
    checked = sum(r.status != "not_reconciled" for r in rec.rows if r.source != AUDIT)
    checked += rec.audit_checked
    detail = describe(rec)
    unavailable = [s for s in rec.sources.values() if not s.available]
    if findings and rec.partial_mailboxes:  # differences, but no evidence of a gap
        return Outcome(
            checked,
            detail=detail,
            inconclusive=(
                "the outbound mail of "
                + ", ".join(rec.partial_mailboxes[:5])
                + (
                    f" and {len(rec.partial_mailboxes) - 5} more"
                    if len(rec.partial_mailboxes) > 5
                    else ""
                )
                + " has never been listed in full (a --mailbox harvest, or a detail read that "
                "failed), so the harvest cannot be held against account-wide counts; harvest "
                "every mailbox in full first"
            ),
        )
    if findings:
        return Outcome(checked, findings, detail=detail)
    if len(unavailable) == len(rec.sources):
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in unavailable)
        return Outcome(
            checked, not_applicable=f"MultiMail's own counts are unavailable ({reasons})"
        )
    usage = rec.sources[USAGE]
    if usage.available and usage.first_day is not None and not rec.sent_mapped():
        return Outcome(
            checked,
            detail=detail,
            inconclusive=(
                "no usage event type's daily counts match the harvested outbound mail on "
                "enough days to say which one counts sent email; see reconciliation.csv"
            ),
        )
    if not checked:
        return Outcome(0, not_applicable=f"nothing in the period to reconcile ({detail})")
    return Outcome(checked, detail=detail)


def day_findings(ctx: CheckContext, rec: Reconciliation) -> list[Finding]:
    """One finding per day whose usage or webhook counts differ from the harvest."""
    by_day: dict[Any, list[DayRow]] = defaultdict(list)
    for row in rec.differences:
        if row.source != AUDIT:
            by_day[row.day].append(row)
    findings = []
    for day, rows in sorted(by_day.items()):
        parts = [
            f"{SOURCE_LABELS[r.source]} {r.event_type} counts {r.source_count}, harvested "
            f"{r.harvested_count}{f' (+{r.explained} quarantined)' if r.explained else ''}"
            for r in rows
        ]
        # Webhook deliveries alone are for review: the history is counted against today's
        # subscriptions, and one deleted mid-period would change what a day should hold.
        usage_differs = any(r.status == "difference" and r.source == USAGE for r in rows)
        state: FindingState = "open" if usage_differs else "review"
        evidence = {"rows": [r.to_csv() for r in rows]}
        findings.append(
            ctx.finding(
                "day",
                day.isoformat(),
                f"On {day.isoformat()} MultiMail's own counts differ from the harvested mail: "
                + "; ".join(parts)
                + ".",
                evidence,
                state=state,
            )
        )
    return findings


def email_findings(ctx: CheckContext, rec: Reconciliation) -> list[Finding]:
    """One finding per email the audit log and the harvest disagree on (unless quarantined)."""
    findings = []
    for gap in rec.gaps:
        if gap.explained:
            continue
        evidence = {"entry_id": gap.entry_id, "at": gap.at, "day": gap.day}
        if gap.kind == "not_harvested":
            reason = (
                f"Audit entry {gap.entry_id} records sending this email on "
                f"{gap.day.isoformat()}, but no mailbox listing returned it: it is not in the "
                "harvested population."
            )
        else:
            reason = (
                "The email left MultiMail but the audit log has no send entry for it "
                f"({ctx.vocabulary['email_sent'].describe()})."
            )
        findings.append(ctx.finding("email", gap.email_id, reason, evidence))
    return findings


def describe(rec: Reconciliation) -> str:
    """One line per source: what was reconciled, or why not."""
    parts = []
    for name in (USAGE, WEBHOOKS):
        state = rec.sources[name]
        mapped = [m for m in rec.mappings if m.source == name and m.harvested_as]
        unmapped = [m.event_type for m in rec.mappings if m.source == name and not m.harvested_as]
        if not state.available:
            parts.append(f"{SOURCE_LABELS[name]}: unavailable ({state.reason})")
        elif state.first_day is None:
            parts.append(f"{SOURCE_LABELS[name]}: {state.reason or 'no day of the period'}")
        else:
            text = (
                f"{SOURCE_LABELS[name]} {state.first_day}..{state.last_day}: "
                + (", ".join(f"{m.event_type} as {m.harvested_as}" for m in mapped) or "none")
                + (f"; not reconciled: {', '.join(unmapped)}" if unmapped else "")
            )
            parts.append(text)
    if rec.audit_unchecked:
        parts.append(f"audit log: not reconciled ({rec.audit_unchecked})")
    else:
        parts.append(f"audit log: {rec.audit_checked} send entries and sent emails compared")
    return "; ".join(parts)
