"""CS-002 and CS-003: commercial email offers a clear opt-out, and opt-outs are honoured.

CS-002 looks for an opt-out link or reply instruction in the body or signature block
(`auditkit.opt_out_text`), else a List-Unsubscribe header; CS-003 matches sends after a
suppression against a 10-business-day deadline.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date
from typing import Any

from auditkit.business_days import CALENDAR_VERSION, add_business_days
from auditkit.controls.canspam.as_sent import AS_SENT_SOURCE, AsSent, as_sent_opt_outs
from auditkit.controls.canspam.common import (
    BODY_SOURCE,
    commercial_scope,
    mixed_note,
    not_applicable_reason,
    state_for,
)
from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control
from auditkit.errors import one_line
from auditkit.evidence_sql import recipient_address_sql
from auditkit.opt_out_text import (
    LINK_WORDING,
    OPT_OUT_WORDING,
    POSSIBLE_MECHANISM,
    REPLY_WORDING,
)
from auditkit.store.temp_tables import create_temp_table, drop_temp_table

OPT_OUT_BUSINESS_DAYS = 10

# --- CS-002 --------------------------------------------------------------------------------
# Links and reply instructions are recognised by `auditkit.opt_out_text` (the classifier
# reads the same link patterns).
# RFC 2369 List-Unsubscribe with a usable URI, in a stored header object: {"List-Unsubscribe":
# "<https://…>"}, {"list-unsubscribe": ["<mailto:…>"]}, [{"name": "List-Unsubscribe", "value":
# …}] or ["List-Unsubscribe: <…>"]. Header names are case-insensitive; "-Post" does not count.
LIST_UNSUBSCRIBE_HEADER = (
    r"(?i)list-unsubscribe(\"\s*:\s*\[?\s*\"|\"\s*,\s*\"values?\"\s*:\s*\[?\s*\"|\s*:\s*)"
    r"([^\"]*?(https?://|mailto:)[^\"]*)"
)
# Where a record may carry headers. MultiMail documents none (multimail-api.md §5), but
# imports and future API versions may: the raw record's `headers`, or `metadata.headers` /
# `tags.headers`.
HEADER_SOURCES = ("raw.headers", "metadata.headers", "tags.headers")
OPT_OUT_CHECKED = (
    BODY_SOURCE
    + " + List-Unsubscribe header where the record carries headers ("
    + ", ".join(HEADER_SOURCES)
    + ")"
    + AS_SENT_SOURCE
)

# Every commercial or mixed message with the opt-out it shows in the message, first match
# each, in order of preference (materialised as ak_cs002: counts come from it in SQL, and
# only the messages without one reach Python).
CS_002_IN_MESSAGE_SQL = f"""
WITH checked AS (
    SELECT id, classification, reasons, metadata, tags,
           coalesce(body_markdown, '') AS body, coalesce(signature_block, '') AS signature
    FROM ak_classified
    WHERE is_sent AND classification IN ('commercial', 'mixed')
), hits AS (
    SELECT *,
           {LINK_WORDING.first_hit_sql("body")} AS body_link_hit,
           {REPLY_WORDING.first_hit_sql("body")} AS body_reply_hit,
           {LINK_WORDING.first_hit_sql("signature")} AS signature_link_hit,
           {REPLY_WORDING.first_hit_sql("signature")} AS signature_reply_hit
    FROM checked
), recognised AS (
    SELECT id, classification, reasons, metadata, tags, body, signature,
           {LINK_WORDING.kept_sql("body_link_hit", "body")} AS body_link,
           {REPLY_WORDING.kept_sql("body_reply_hit", "body")} AS body_reply,
           {LINK_WORDING.kept_sql("signature_link_hit", "signature")} AS signature_link,
           {REPLY_WORDING.kept_sql("signature_reply_hit", "signature")} AS signature_reply
    FROM hits
), with_mechanism AS (
    SELECT *,
           CASE WHEN body_link IS NOT NULL THEN 'link_in_body'
                WHEN body_reply IS NOT NULL THEN 'reply_instruction_in_body'
                WHEN signature_link IS NOT NULL THEN 'link_in_signature'
                WHEN signature_reply IS NOT NULL THEN 'reply_instruction_in_signature'
           END AS mechanism
    FROM recognised
)
-- The text is kept only where no mechanism was recognised: those few are read again.
SELECT * EXCLUDE (body, signature),
       CASE WHEN mechanism IS NULL THEN body || chr(10) || signature END AS unrecognised_text
FROM with_mechanism
"""
# The messages with no opt-out in them: the opt-out wording and the possible mechanism the
# text holds without either being recognised as one (a review finding, not an open one),
# and a List-Unsubscribe header where the record carries one. The stored record (raw) is
# joined for these few only: reading every raw record of a quarter is the expensive part.
CS_002_WITHOUT_SQL = f"""
WITH without AS (
    SELECT id, classification, reasons, metadata, tags, unrecognised_text AS text
    FROM ak_cs002 WHERE mechanism IS NULL
), hints AS (
    SELECT *,
           {OPT_OUT_WORDING.first_hit_sql("text")} AS wording_hit,
           {POSSIBLE_MECHANISM.first_hit_sql("text")} AS carrier_hit
    FROM without
)
SELECT h.id, h.classification, h.reasons,
       {OPT_OUT_WORDING.kept_sql("wording_hit", "text")} AS opt_out_wording,
       {POSSIBLE_MECHANISM.kept_sql("carrier_hit", "text")} AS possible_mechanism,
       nullif(regexp_extract(concat_ws(' ', json_extract(e.raw, '$.headers')::VARCHAR,
                                       json_extract(h.metadata, '$.headers')::VARCHAR,
                                       json_extract(h.tags, '$.headers')::VARCHAR),
                             '{LIST_UNSUBSCRIBE_HEADER.replace("'", "''")}', 2), '')
           AS list_unsubscribe
FROM hints h LEFT JOIN multimail_emails e ON e.id = h.id
ORDER BY h.id
"""
CS_002_SQL = (
    "CREATE OR REPLACE TEMP TABLE ak_cs002 AS "
    + CS_002_IN_MESSAGE_SQL.strip()
    + ";\n"
    + CS_002_WITHOUT_SQL
)


_MECHANISM_TEXT = {
    "link_in_body": "opt-out link in the body",
    "reply_instruction_in_body": "reply instruction in the body",
    "link_in_signature": "opt-out link in the signature block",
    "reply_instruction_in_signature": "reply instruction in the signature block",
    "list_unsubscribe_header": "List-Unsubscribe header only",
    "unrecognised": "opt-out wording not recognised as a mechanism (review)",
    "in_as_sent_copy": "opt-out only in the archived as-sent copy (added at send time)",
    "sent_copy_unknown": "no opt-out in the draft and no archived copy, where others had "
    "one added at send time (review)",
}


@control(
    id="CS-002",
    title="Commercial email without a clear opt-out",
    severity="high",
    rationale=(
        "Commercial email must offer a working way to opt out, with a notice in the message. "
        "Recognised, in the body markdown or mailbox signature block: a link whose URL or "
        "mailto: says unsubscribe/opt-out/preferences; a URL or email address labelled as an "
        "opt-out in the same clause ('Unsubscribe here: https://…', 'To opt out, visit …', "
        "'Manage your email preferences: …', 'To unsubscribe, email …'); markdown or HTML "
        "link text naming the opt-out; a reply instruction ('reply STOP', 'reply with "
        "\"unsubscribe\"', 'reply to this email with REMOVE in the subject', 'to unsubscribe, "
        "reply …'). Negated wording ('we will never unsubscribe you', 'do not reply') and "
        "bare URLs without an opt-out label are not opt-outs. A List-Unsubscribe header "
        "(RFC 2369) alone, where the record carries headers, is a review finding: it is a "
        "mechanism, but whether the mail client's unsubscribe control is a clear and "
        "conspicuous notice (§ 7704(a)(5)(A)(ii)) needs a human. Opt-out wording and a link, "
        "address or reply verb that are not recognised as one instruction ('Don't want these "
        "emails anymore? Let us know by replying') are a review finding too: too close to an "
        "opt-out to accuse. The stored body is the author's draft: a footer added at send "
        "time is not in it, so the archived as-sent copies of a message (harvest-archive) "
        "are read too, every text part, and an opt-out there is one. A draft without an "
        "opt-out and with no archived copy, where other messages' copies showed one added at "
        "send time, is a review finding. Nothing found: fail (mixed mail: review). Scope: "
        "sent commercial or mixed outbound email created in the period (created_at)."
    ),
    reference="15 U.S.C. § 7704(a)(3), (a)(5)(A)(ii); 16 CFR 316.5; can-spam.md CS-05",
    applies_to="commercial_email",
    sql=CS_002_SQL,
)
def cs_002(ctx: CheckContext) -> Outcome:
    commercial, total = commercial_scope(ctx)
    if not commercial:
        return Outcome(0, not_applicable=not_applicable_reason(total))
    ctx.con.execute("CREATE OR REPLACE TEMP TABLE ak_cs002 AS " + CS_002_IN_MESSAGE_SQL)
    try:
        recognised: Counter[str] = Counter(
            {
                r["mechanism"]: r["n"]
                for r in ctx.rows(
                    "SELECT mechanism, count(*) AS n FROM ak_cs002 WHERE mechanism IS NOT NULL "
                    "GROUP BY mechanism"
                )
            }
        )
        without = ctx.rows(CS_002_WITHOUT_SQL)
    finally:
        ctx.con.execute("DROP TABLE IF EXISTS temp.ak_cs002")
    as_sent = as_sent_opt_outs(ctx, [r["id"] for r in without])
    # Drafts without an opt-out whose as-sent copy has one: something adds it at send time.
    added_at_send = sum(1 for a in as_sent.values() if a.opt_out is not None)
    findings = []
    for r in without:
        copy = as_sent.get(r["id"], AsSent(copies=0))
        if copy.opt_out is not None:
            recognised["in_as_sent_copy"] += 1
            continue
        evidence: dict[str, Any] = {
            "classification": r["classification"],
            "classification_reasons": r["reasons"],
            "checked": OPT_OUT_CHECKED,
            "as_sent_copies_checked": copy.copies,
        }
        wording, carrier = r["opt_out_wording"], r["possible_mechanism"]
        unrecognised = wording is not None and carrier is not None
        if unrecognised:
            evidence.update(opt_out_wording=wording, possible_mechanism=carrier)
        if r["list_unsubscribe"] is None and unrecognised:
            recognised["unrecognised"] += 1
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    f'Opt-out wording ("{one_line(wording, 80)}") and a possible mechanism '
                    f'("{one_line(carrier, 80)}") that auditkit does not recognise as an opt-out '
                    "instruction: a human must read the message and decide whether it offers "
                    "a working opt-out." + mixed_note(r["classification"]),
                    evidence,
                    "review",
                )
            )
        elif r["list_unsubscribe"] is None and not copy.copies and added_at_send:
            recognised["sent_copy_unknown"] += 1
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "No opt-out in the stored draft, but the archived as-sent copies of "
                    f"{added_at_send} other message(s) whose drafts had none showed one (added "
                    "at send time), and this message has no archived copy: a human must check "
                    "what its recipient got." + mixed_note(r["classification"]),
                    evidence,
                    "review",
                )
            )
        elif r["list_unsubscribe"] is None:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "No opt-out in the commercial message: no unsubscribe/opt-out link, labelled "
                    "opt-out URL or address, reply-to-opt-out instruction or List-Unsubscribe "
                    "header." + mixed_note(r["classification"]),
                    evidence,
                    state_for(r["classification"]),
                )
            )
        else:
            recognised["list_unsubscribe_header"] += 1
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    f"The only opt-out is the List-Unsubscribe header ({r['list_unsubscribe']}); "
                    "the message itself shows no opt-out notice. Whether the mail client's "
                    "unsubscribe control is a clear and conspicuous notice needs a human."
                    + mixed_note(r["classification"]),
                    {
                        **evidence,
                        "mechanism": "list_unsubscribe_header",
                        "list_unsubscribe": r["list_unsubscribe"],
                    },
                    "review",
                )
            )
    detail = ""
    if recognised:
        detail = "opt-out recognised: " + ", ".join(
            f"{recognised[m]} {_MECHANISM_TEXT[m]}" for m in _MECHANISM_TEXT if m in recognised
        )
    return Outcome(commercial, findings, detail=detail)


# --- CS-003 --------------------------------------------------------------------------------
def _unknown_reason_note(row: dict[str, Any]) -> str:
    if row["reason_kind"] == "opt_out":
        return ""
    reason = f"'{one_line(row['reason'], 60)}'" if row["reason"] else "none given"
    return (
        f" The suppression's reason ({reason}) names neither an opt-out nor a delivery "
        "failure ([controls] opt_out_reasons, delivery_failure_reasons): a human must decide "
        "whether the address asked to stop."
    )


CS_003_MATCHES = f"""
WITH recipient_lists AS (
    SELECT id, classification, sent_at,
           unnest(list_concat(coalesce(to_addresses, []::VARCHAR[]), coalesce(cc_addresses,
               []::VARCHAR[]))) AS raw_address
    FROM ak_classified
    WHERE is_sent AND classification IN ('commercial', 'mixed')
), recipients AS (
    SELECT DISTINCT id, classification, sent_at,
           {recipient_address_sql("raw_address")} AS address
    FROM recipient_lists
), after_opt_out AS (
    SELECT r.id, r.classification, r.address, r.sent_at, d.suppression_id, d.suppressed_at,
           d.reason, d.reason_kind,
           d.deadline, (r.sent_at AT TIME ZONE 'UTC')::DATE > d.deadline AS late
    FROM recipients r JOIN ak_optout_deadlines d ON d.address = r.address
    WHERE r.sent_at >= d.suppressed_at
)
"""
# One finding per late send and address: by the opt-out that names itself as one where the
# send is late for it, else by the suppression whose reason is unknown (a review finding).
CS_003_SQL = (
    CS_003_MATCHES
    + """
SELECT * FROM after_opt_out WHERE late
QUALIFY row_number() OVER (PARTITION BY id, address
                           ORDER BY reason_kind = 'opt_out' DESC, suppressed_at) = 1
ORDER BY id, address
"""
)
CS_003_WITHIN_SQL = (
    CS_003_MATCHES
    + "SELECT count(*) FROM (SELECT id, address FROM after_opt_out GROUP BY ALL "
    + "HAVING NOT bool_or(late))"
)


# A suppression's reason names a delivery failure (a bounce is no request to stop: not an
# opt-out), else an opt-out (an unsubscribe, a complaint), else nothing known: the reason is
# not guessed at, so a late send to that address is a review finding, not an open one.
def _reason_contains_any(substrings_param: str) -> str:
    """SQL true when the suppression's reason contains one of the `$param` substrings."""
    return (
        "coalesce(list_bool_or([contains(lower(coalesce(reason, '')), p) "
        f"FOR p IN ${substrings_param}]), false)"
    )


_IS_DELIVERY_FAILURE = _reason_contains_any("delivery_failure_reasons")
_NAMES_AN_OPT_OUT = _reason_contains_any("opt_out_reasons")
_SUPPRESSIONS_SQL = f"""
SELECT lower(trim(email_address)) AS address,
       CASE WHEN {_NAMES_AN_OPT_OUT} THEN 'opt_out' ELSE 'unknown' END AS reason_kind,
       arg_min(id, created_at) AS suppression_id,
       min(created_at) AS suppressed_at, arg_min(reason, created_at) AS reason
FROM multimail_suppressions
WHERE email_address IS NOT NULL AND created_at IS NOT NULL AND NOT {_IS_DELIVERY_FAILURE}
GROUP BY ALL
"""
# What each suppression reason was read as, for the detail: the inference shown.
_REASON_KINDS_SQL = f"""
SELECT coalesce(reason, '(none)') AS reason,
       CASE WHEN {_IS_DELIVERY_FAILURE} THEN 'delivery failure'
            WHEN {_NAMES_AN_OPT_OUT} THEN 'opt-out'
            ELSE 'unknown: review' END AS read_as,
       count(*) AS n
FROM multimail_suppressions
GROUP BY ALL ORDER BY n DESC, reason
"""
# Sends after a delivery-failure suppression to addresses that never opted out: not judged
# by CS-003, but counted in its detail so a reviewer sees them.
_AFTER_DELIVERY_FAILURE_SQL = f"""
SELECT count(DISTINCT r.id)
FROM recipients r
JOIN (SELECT lower(trim(email_address)) AS address, min(created_at) AS failed_at
      FROM multimail_suppressions
      WHERE email_address IS NOT NULL AND created_at IS NOT NULL AND {_IS_DELIVERY_FAILURE}
      GROUP BY 1) f ON f.address = r.address
WHERE r.sent_at >= f.failed_at AND r.address NOT IN (SELECT address FROM ak_optout_deadlines)
"""


@control(
    id="CS-003",
    title="Opt-out not honoured within 10 business days",
    severity="high",
    rationale=(
        "No commercial email may go to an address more than 10 business days after it opted out. "
        "A suppression whose reason names a delivery failure ([controls] "
        "delivery_failure_reasons, default: bounce) is no opt-out and is counted in the detail "
        "instead; one whose reason names an opt-out ([controls] opt_out_reasons, default: "
        "unsubscribe, opt-out, complaint, spam, abuse, manual, removal, stop, request) is one; "
        "one with any other reason, or none, is not guessed at: a late send is a review "
        "finding. The detail lists how each reason was read. The send time is delivered_at, "
        "else created_at; business days are Mon–Fri minus US federal holidays (observed), "
        "counted from the UTC date of the suppression's created_at; addresses match "
        "case-insensitively over To and Cc. A send within the 10 days is not a failure. "
        "Scope: sent commercial or mixed outbound email created in the period."
    ),
    reference="15 U.S.C. § 7704(a)(4); 16 CFR 316.5; can-spam.md CS-07",
    applies_to="commercial_email",
    sql=CS_003_SQL,
)
def cs_003(ctx: CheckContext) -> Outcome:
    commercial, total = commercial_scope(ctx)
    if not commercial:
        return Outcome(0, not_applicable=not_applicable_reason(total))
    failure_reasons = list(ctx.settings.delivery_failure_reasons)
    reasons = {
        "delivery_failure_reasons": failure_reasons,
        "opt_out_reasons": list(ctx.settings.opt_out_reasons),
    }
    suppressions = ctx.rows(_SUPPRESSIONS_SQL, **reasons)
    # One calendar computation per distinct suppression date, then a single join in SQL.
    deadline_by_day: dict[date, date] = {}
    for s in suppressions:
        day = s["suppressed_at"].astimezone(UTC).date()
        if day not in deadline_by_day:
            deadline_by_day[day] = add_business_days(day, OPT_OUT_BUSINESS_DAYS)
    create_temp_table(
        ctx.con,
        "ak_optout_deadlines",
        {
            "address": ("VARCHAR", [s["address"] for s in suppressions]),
            "suppression_id": ("VARCHAR", [s["suppression_id"] for s in suppressions]),
            "suppressed_at": ("TIMESTAMPTZ", [s["suppressed_at"] for s in suppressions]),
            "reason": ("VARCHAR", [s["reason"] for s in suppressions]),
            "reason_kind": ("VARCHAR", [s["reason_kind"] for s in suppressions]),
            "deadline": (
                "DATE",
                [deadline_by_day[s["suppressed_at"].astimezone(UTC).date()] for s in suppressions],
            ),
        },
    )
    try:
        rows = ctx.rows(CS_003_SQL)
        within = ctx.scalar(CS_003_WITHIN_SQL)
        read_as = ctx.rows(_REASON_KINDS_SQL, **reasons)
        after_failure = ctx.scalar(
            CS_003_MATCHES + _AFTER_DELIVERY_FAILURE_SQL,
            delivery_failure_reasons=failure_reasons,
        )
    finally:
        drop_temp_table(ctx.con, "ak_optout_deadlines")
    findings = [
        ctx.finding(
            "email",
            r["id"],
            f"Sent to {r['address']} on {r['sent_at']:%Y-%m-%d}, after the opt-out deadline "
            f"{r['deadline']:%Y-%m-%d} (10 business days after suppression on "
            f"{r['suppressed_at']:%Y-%m-%d})."
            + _unknown_reason_note(r)
            + mixed_note(r["classification"]),
            {
                "recipient": r["address"],
                "sent_at": r["sent_at"],
                "suppression_id": r["suppression_id"],
                "suppressed_at": r["suppressed_at"],
                "suppression_reason": r["reason"],
                "suppression_read_as": "opt-out" if r["reason_kind"] == "opt_out" else "unknown",
                "deadline": r["deadline"],
                "classification": r["classification"],
                "calendar": CALENDAR_VERSION,
            },
            "review" if r["reason_kind"] != "opt_out" else state_for(r["classification"]),
        )
        for r in rows
    ]
    notes = []
    if read_as:
        notes.append(
            "suppression reasons read as: "
            + ", ".join(f"{r['n']} {r['reason']} ({r['read_as']})" for r in read_as[:8])
            + (f" and {len(read_as) - 8} more" if len(read_as) > 8 else "")
        )
    if within:
        notes.append(f"{within} send(s) to suppressed addresses inside the 10-business-day window")
    if after_failure:
        notes.append(
            f"{after_failure} send(s) to addresses suppressed only for a delivery failure "
            f"(reason containing {', '.join(failure_reasons)}), not judged as opt-outs"
        )
    return Outcome(commercial, findings, detail="; ".join(notes))
