"""Traceability controls (TR-*): agent email linked to the Intercom conversation it came from.

An agent's email outside the support thread is only auditable if it can be traced back to
the conversation that prompted it; a link to a conversation that does not exist is worse
than none, because it looks like evidence.
"""

from __future__ import annotations

from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control

TR_001_AGENT_MAIL = """
WITH required AS (
    SELECT s.id, s.mailbox_id, s.mailbox_address, s.agent, a.sent_entry_id,
           nullif(trim(coalesce(s.conversation_id, '')), '') AS conversation_id
    FROM ak_scope s LEFT JOIN ak_email_audit a ON a.email_id = s.id
    WHERE s.require_conversation_link
), logged_agent AS (      -- agent from the email.sent entry, only where the email has none
    SELECT r.id, json_extract_string(l.metadata, '$.agent') AS agent
    FROM required r JOIN multimail_audit_log l ON l.id = r.sent_entry_id
    WHERE r.agent IS NULL
), agent_mail AS (
    SELECT r.id, r.mailbox_id, r.mailbox_address, coalesce(r.agent, la.agent) AS agent,
        r.conversation_id
    FROM required r LEFT JOIN logged_agent la ON la.id = r.id
    WHERE coalesce(r.agent, la.agent) IS NOT NULL
)
"""
TR_001_SQL = (
    TR_001_AGENT_MAIL
    + """
SELECT * FROM agent_mail WHERE conversation_id IS NULL ORDER BY id
"""
)


@control(
    id="TR-001",
    title="Agent email without a conversation link",
    severity="medium",
    rationale=(
        "Where a mailbox policy sets require_conversation_link = true, every email written by an "
        "agent (agent tag/metadata, or the agent named in its email.sent audit entry) must carry "
        "the Intercom conversation it answers. Scope: outbound email created in the period in "
        "such mailboxes."
    ),
    reference="auditkit mailbox policy; can-spam.md §4 (keep the linked conversation per email)",
    applies_to="conversation_link",
    sql=TR_001_SQL,
)
def tr_001(ctx: CheckContext) -> Outcome:
    if not any(p.require_conversation_link for p in ctx.settings.mailboxes.values()):
        return Outcome(0, not_applicable="no mailbox policy sets require_conversation_link = true")
    checked = ctx.scalar(TR_001_AGENT_MAIL + "SELECT count(*) FROM agent_mail")
    if not checked:
        return Outcome(
            0,
            not_applicable="no agent email in the period from a mailbox that requires links",
        )
    findings = [
        ctx.finding(
            "email",
            r["id"],
            f"Agent {r['agent']} sent this from {r['mailbox_address']} without a conversation "
            "link, "
            "which the mailbox policy requires.",
            {
                "mailbox_id": r["mailbox_id"],
                "mailbox_address": r["mailbox_address"],
                "agent": r["agent"],
            },
        )
        for r in ctx.rows(TR_001_SQL)
    ]
    return Outcome(checked, findings)


TR_002_LINKED = """
WITH linked AS (
    SELECT s.id, s.conversation_id, c.id IS NOT NULL AS harvested, c.found, c.http_status,
        c.fetched_at
    FROM ak_scope s LEFT JOIN intercom_conversations c ON c.id = s.conversation_id
    WHERE nullif(trim(coalesce(s.conversation_id, '')), '') IS NOT NULL
)
"""
TR_002_SQL = (
    TR_002_LINKED
    + """
SELECT * FROM linked WHERE NOT harvested OR NOT found ORDER BY id
"""
)


@control(
    id="TR-002",
    title="Linked Intercom conversation does not exist",
    severity="medium",
    rationale=(
        "A conversation link is evidence only if the conversation exists: flags email whose "
        "linked conversation Intercom answered 404 for (found = false); a link the harvest did "
        "not look up is flagged for review. Not applicable when Intercom was not harvested at "
        "all. Scope: outbound email created in the period with a conversation link."
    ),
    reference="intercom-api.md (GET /conversations/{id}); multimail-intercom-guide.txt",
    applies_to="conversation_link",
    sql=TR_002_SQL,
)
def tr_002(ctx: CheckContext) -> Outcome:
    if not ctx.scalar("SELECT count(*) FROM intercom_conversations"):
        return Outcome(0, not_applicable="links unverified: Intercom was not harvested")
    checked = ctx.scalar(TR_002_LINKED + "SELECT count(*) FROM linked")
    if not checked:
        return Outcome(0, not_applicable="no email in the period links an Intercom conversation")
    findings = []
    for r in ctx.rows(TR_002_SQL):
        if not r["harvested"]:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    f"Linked conversation {r['conversation_id']} was not looked up by the harvest.",
                    {"conversation_id": r["conversation_id"]},
                    "review",
                )
            )
        elif not r["found"]:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    f"Linked Intercom conversation {r['conversation_id']} does not exist (HTTP "
                    f"{r['http_status']}).",
                    {
                        "conversation_id": r["conversation_id"],
                        "http_status": r["http_status"],
                        "fetched_at": r["fetched_at"],
                    },
                )
            )
    return Outcome(checked, findings)
