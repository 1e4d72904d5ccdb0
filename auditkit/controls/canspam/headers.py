"""CS-004 and CS-005: what a message's headers claim — a reply subject, the sender's domain.

CS-004 flags a Re:/Fwd: subject on commercial mail with no prior exchange with a
recipient; CS-005 flags sent mail whose From domain the account has not verified.
"""

from __future__ import annotations

from auditkit.controls.canspam.common import (
    commercial_scope,
    mixed_note,
    not_applicable_reason,
    state_for,
)
from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control
from auditkit.evidence_sql import DEFAULT_DOMAIN_SQL, from_email_sql, recipient_address_sql

# --- CS-004 --------------------------------------------------------------------------------
# A reply/forward prefix is genuine when the addressee had a prior exchange with the sender:
# an earlier message in the same thread; an earlier inbound email from a To recipient to any
# of the account's mailboxes (the sender under CAN-SPAM is the business, not one mailbox:
# "Re: your question" from sales@ after the customer wrote to support@ claims a real
# exchange); or the linked Intercom conversation, when its contact (source author, or a
# user/lead part author) is a To recipient and it began no later than the message. A reply
# that adds colleagues stays a reply, so one To recipient with a prior exchange is enough.
# A link whose conversation was not harvested, answered 404 or names no contact proves
# nothing either way: not a prior exchange, and the finding is `review`, not `open`.
CS_004_SQL = f"""
WITH candidates AS (
    SELECT c.id, c.subject, c.thread_id, c.created_at, c.classification, c.reasons,
           c.conversation_id,
           list_distinct(list_filter(list_transform(coalesce(c.to_addresses, []::VARCHAR[]),
               lambda a: {recipient_address_sql("a")}), lambda a: a <> '')) AS recipients
    FROM ak_classified c
    WHERE c.is_sent AND c.classification IN ('commercial', 'mixed')
      AND regexp_matches(coalesce(c.subject, ''), '^\\s*(re|fwd?|fw)\\s*:', 'i')
), earlier_in_thread AS (
    SELECT c.id, arg_min(p.id, p.created_at) AS thread_message_id
    FROM candidates c JOIN multimail_emails p
      ON c.thread_id IS NOT NULL AND p.thread_id = c.thread_id
     AND p.created_at < c.created_at AND p.id <> c.id
    GROUP BY c.id
), recipients AS (
    SELECT id, created_at, unnest(recipients) AS address FROM candidates
), earlier_inbound AS (
    SELECT r.id, arg_min(i.id, i.created_at) AS inbound_id,
           arg_min(r.address, i.created_at) AS inbound_from
    FROM recipients r
    JOIN (SELECT id, created_at, {from_email_sql("from_address")} AS sender
          FROM multimail_emails WHERE direction = 'inbound') i
      ON i.sender = r.address AND i.created_at < r.created_at
    GROUP BY r.id
), conversations AS (
    SELECT id, found, created_at,
           list_distinct(list_filter(list_concat(
               [lower(trim(contact_email))],
               list_transform(
                   coalesce(json_extract(raw, '$.conversation_parts.conversation_parts[*].author'),
                            []::JSON[]),
                   lambda a: CASE WHEN json_extract_string(a, '$.type') IN ('user', 'lead',
                       'contact') THEN lower(trim(json_extract_string(a, '$.email'))) END)),
               lambda x: x IS NOT NULL AND x <> '')) AS contact_emails
    FROM intercom_conversations
    WHERE id IN (SELECT conversation_id FROM candidates)
), judged AS (
    SELECT c.*, t.thread_message_id, i.inbound_id, i.inbound_from,
           k.contact_emails AS conversation_contacts,
           CASE WHEN c.conversation_id IS NULL THEN NULL
                WHEN k.id IS NULL THEN 'not_harvested'
                WHEN NOT k.found THEN 'not_found'
                WHEN len(k.contact_emails) = 0 THEN 'no_contact'
                WHEN NOT list_has_any(k.contact_emails, c.recipients) THEN 'other_contact'
                WHEN k.created_at > c.created_at THEN 'began_later'
                ELSE 'recipient'
           END AS conversation_check
    FROM candidates c
    LEFT JOIN earlier_in_thread t ON t.id = c.id
    LEFT JOIN earlier_inbound i ON i.id = c.id
    LEFT JOIN conversations k ON k.id = c.conversation_id
)
SELECT id, subject, thread_id, created_at, classification, reasons, recipients,
       conversation_id, conversation_check, conversation_contacts
FROM judged
WHERE thread_message_id IS NULL AND inbound_id IS NULL
  AND coalesce(conversation_check, '') <> 'recipient'
ORDER BY id
"""
_CONVERSATION_UNVERIFIED = {
    "not_harvested": "was not harvested",
    "not_found": "answered 404 at Intercom",
    "no_contact": "names no contact email",
}


@control(
    id="CS-004",
    title="Deceptive reply/forward subject",
    severity="medium",
    rationale=(
        "A Re:/Fwd:/Fw: subject claims a conversation; on commercial mail without one it is "
        "a deceptive subject line. The prefix is genuine when a To recipient had a prior "
        "exchange with the sender: an earlier message (inbound or outbound, by created_at) in "
        "the same thread_id; an earlier inbound email from that address to any of the "
        "account's mailboxes; or the linked Intercom conversation (conversation_id), begun no "
        "later than the message, whose contact (source author or a user/lead part author) is "
        "that address. Without any: fail; on mixed mail, or when the linked conversation was "
        "not harvested, answered 404 or names no contact, review. Transactional mail is out "
        "of scope (the subject rule of § 7704(a)(2) covers commercial mail). Scope: sent "
        "commercial or mixed outbound email created in the period (created_at)."
    ),
    reference="15 U.S.C. § 7704(a)(2); can-spam.md CS-02",
    applies_to="commercial_email",
    sql=CS_004_SQL,
)
def cs_004(ctx: CheckContext) -> Outcome:
    commercial, total = commercial_scope(ctx)
    if not commercial:
        return Outcome(0, not_applicable=not_applicable_reason(total))
    findings = []
    for r in ctx.rows(CS_004_SQL):
        unverified = _CONVERSATION_UNVERIFIED.get(r["conversation_check"] or "")
        reason = (
            f"Subject {r['subject']!r} claims a reply or forward, but no recipient "
            f"({', '.join(r['recipients']) or 'none'}) had a prior exchange: thread "
            f"{r['thread_id'] or '(none)'} has no earlier message and no earlier inbound email "
            "came from them."
        )
        if r["conversation_check"] == "other_contact":
            reason += f" Linked Intercom conversation {r['conversation_id']} is with someone else."
        elif r["conversation_check"] == "began_later":
            reason += (
                f" Linked Intercom conversation {r['conversation_id']} began after the message."
            )
        elif unverified:
            reason += (
                f" Linked Intercom conversation {r['conversation_id']} {unverified}, so a prior "
                "exchange there cannot be confirmed."
            )
        findings.append(
            ctx.finding(
                "email",
                r["id"],
                reason + mixed_note(r["classification"]),
                {
                    "subject": r["subject"],
                    "thread_id": r["thread_id"],
                    "created_at": r["created_at"],
                    "recipients": r["recipients"],
                    "conversation_id": r["conversation_id"],
                    "conversation_check": r["conversation_check"],
                    "conversation_contacts": r["conversation_contacts"],
                    "classification": r["classification"],
                    "classification_reasons": r["reasons"],
                },
                "review" if unverified else state_for(r["classification"]),
            )
        )
    return Outcome(commercial, findings)


# --- CS-005 --------------------------------------------------------------------------------
CS_005_SQL = f"""
WITH account AS (
    {DEFAULT_DOMAIN_SQL}
), domains AS (
    SELECT lower(domain) AS domain, any_value(status) AS status,
        bool_or(dkim_verified) AS dkim_verified
    FROM multimail_domains GROUP BY 1
), sent AS (
    SELECT id, from_address, from_email, split_part(from_email, '@', 2) AS from_domain
    FROM ak_scope WHERE is_sent
)
SELECT s.id, s.from_address, s.from_domain, d.status AS domain_status, d.dkim_verified,
       a.default_domain
FROM sent s
LEFT JOIN domains d ON d.domain = s.from_domain
CROSS JOIN account a
WHERE NOT coalesce(
        s.from_domain = a.default_domain
        -- no account harvested: any MultiMail default subdomain is taken as the account's own
        OR (a.default_domain IS NULL AND s.from_domain LIKE '%.multimail.dev')
        OR (d.status = 'active' AND d.dkim_verified), false)
ORDER BY s.id
"""


@control(
    id="CS-005",
    title="From address not on a verified sending domain",
    severity="high",
    rationale=(
        "Header information must identify the sender accurately; mail from a domain the account "
        "has not verified (status active and dkim_verified) cannot be shown to be the sender's. "
        "The account's default <slug>.multimail.dev domain counts as verified. Applies to every "
        "sent message, commercial or not, because § 7704(a)(1) covers transactional mail too. "
        "Scope: sent outbound email created in the period."
    ),
    reference="15 U.S.C. § 7704(a)(1); can-spam.md CS-01; multimail-api.md §4.12",
    applies_to="outbound_email",
    sql=CS_005_SQL,
)
def cs_005(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar("SELECT count(*) FROM ak_scope WHERE is_sent")
    if not checked:
        return Outcome(0, not_applicable="no outbound email created in the period was sent")
    findings = []
    for r in ctx.rows(CS_005_SQL):
        if not r["from_domain"]:
            why = f"From address {r['from_address']!r} has no domain."
        elif r["domain_status"] is None:
            why = f"From domain {r['from_domain']} is not one of the account's sending domains."
        else:
            why = (
                f"From domain {r['from_domain']} is not verified "
                f"(status {r['domain_status']}, dkim_verified {r['dkim_verified']})."
            )
        findings.append(ctx.finding("email", r["id"], why, r))
    return Outcome(checked, findings)
