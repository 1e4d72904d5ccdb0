"""CAN-SPAM controls (CS-*): postal address, opt-out, honouring opt-outs, subjects, From domain.

The content rules (CS-001..CS-003) apply to commercial mail only, so they read the
primary-purpose label from `auditkit.classify`: transactional mail is out of scope, and a
failure on `mixed` mail becomes a `review` finding, because 16 CFR 316.3 needs a human
reading. CS-004 (fake Re:/Fwd:, also plain FTC Act deception) and CS-005 (header
information, § 7704(a)(1)) apply to every sent message. Bodies are the
author's markdown as stored by MultiMail, plus the mailbox signature block and, where the
mailbox policy says MultiMail appends it, the account address; findings say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

import pyarrow as pa

from auditkit.business_days import CALENDAR_VERSION, add_business_days
from auditkit.controls import Outcome, control
from auditkit.controls.context import CheckContext

OPT_OUT_BUSINESS_DAYS = 10
BODY_SOURCE = "body_markdown (author's draft as stored) + mailbox signature_block"

# Street-suffix spellings folded to one form on both sides of the address comparison.
_SUFFIXES = {
    "street": "st",
    "avenue": "ave",
    "av": "ave",
    "boulevard": "blvd",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "parkway": "pkwy",
    "highway": "hwy",
    "suite": "ste",
    "square": "sq",
    "terrace": "ter",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}
_SUFFIX_RE = r"\b(" + "|".join(sorted(_SUFFIXES, key=len, reverse=True)) + r")\b"


def normalise_address_text(text: str) -> str:
    """Lower case, punctuation and line breaks to single spaces, street suffixes folded."""
    flat = re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()
    return re.sub(_SUFFIX_RE, lambda m: _SUFFIXES[m.group(1)], flat)


def _tokens_regex(normalised: str) -> str:
    parts = []
    for token in normalised.split():
        spellings = [token] + sorted(long for long, short in _SUFFIXES.items() if short == token)
        parts.append(
            "(" + "|".join(re.escape(t) for t in spellings) + ")"
            if len(spellings) > 1
            else re.escape(token)
        )
    return r"[^a-z0-9]+".join(parts)


def component_regex(normalised: str | None) -> str | None:
    """An RE2 pattern finding a normalised address component in lower-cased raw text: tokens
    separated by any punctuation or line breaks, each street suffix in short or long form.
    One regex per component keeps the check to a few passes over each body."""
    return rf"\b{_tokens_regex(normalised)}\b" if normalised else None


def _sql_regex_literal(pattern: str | None) -> str:
    return "NULL" if pattern is None else "'" + pattern.replace("'", "''") + "'"


@dataclass(frozen=True)
class PostalAddress:
    """The account's physical_address split into the components CS-001 looks for."""

    raw: str
    street: str | None  # normalised "1200 harbor blvd" or "po box 12"
    city: str | None
    state: str | None
    zip: str | None

    @property
    def complete(self) -> bool:
        return all((self.street, self.city, self.state, self.zip))


def parse_postal_address(text: str | None) -> PostalAddress | None:
    """Parse a US postal address; None when there is nothing usable."""
    if not text or not text.strip():
        return None
    tail = re.search(r"([A-Za-z][A-Za-z .'-]*?)\s*,?\s+([A-Z]{2})\s+(\d{5})(?:-\d{4})?\b", text)
    city = state = zip_code = None
    if tail:
        city = normalise_address_text(tail.group(1).split(",")[-1]) or None
        state, zip_code = tail.group(2).lower(), tail.group(3)
    box = re.search(r"\b(?:P\.?\s*O\.?\s*Box|PMB)\s*#?\s*\d+", text, re.IGNORECASE)
    street_match = re.search(r"(?:^|[,\n]\s*)(\d+[A-Za-z]?\s+[A-Za-z0-9 .'-]+?)\s*(?=,|\n|$)", text)
    street = box.group(0) if box else street_match.group(1) if street_match else None
    parsed = PostalAddress(
        text.strip(), normalise_address_text(street) if street else None, city, state, zip_code
    )
    return parsed if any((parsed.street, parsed.zip)) else None


def _state_for(classification: str) -> str:
    return "review" if classification == "mixed" else "open"


def _mixed_note(classification: str) -> str:
    return (
        " Mixed commercial/transactional content: a human must decide the primary purpose."
        if classification == "mixed"
        else ""
    )


def _commercial_scope(ctx: CheckContext) -> tuple[int, int]:
    table = ctx.classified()
    row = ctx.rows(
        f"SELECT count(*) FILTER (WHERE classification IN ('commercial', 'mixed')) AS commercial, "
        f"count(*) AS total FROM {table} WHERE is_sent"
    )[0]
    return row["commercial"], row["total"]


def _not_applicable(total: int) -> str:
    if not total:
        return "no outbound email created in the period was sent"
    return f"no commercial or mixed email among the {total} sent in the period (all transactional)"


# --- CS-001 --------------------------------------------------------------------------------
# {street}, {city}, {state}, {zip} are RE2 literals built by `component_regex` from the
# account's physical_address at run time (NULL when the component is missing).
CS_001_SQL = """
WITH checked AS (
    SELECT id, classification, reasons, appends_postal_address,
           coalesce(body_markdown, '') || ' ' || coalesce(signature_block, '')
             || CASE WHEN appends_postal_address THEN ' '
                 || $account_address ELSE '' END AS text_checked
    FROM ak_classified
    WHERE is_sent AND classification IN ('commercial', 'mixed')
), components AS (
    SELECT id, classification, reasons, appends_postal_address, text_checked,
           coalesce(regexp_matches(lower(text_checked), {street}), false) AS has_street,
           coalesce(regexp_matches(lower(text_checked), {city}), false) AS has_city,
           coalesce(regexp_matches(lower(text_checked), {state}), false) AS has_state,
           coalesce(regexp_matches(lower(text_checked), {zip}), false) AS has_zip
    FROM checked
)
SELECT id, classification, reasons, appends_postal_address, has_street, has_city, has_state,
    has_zip,
       regexp_matches(text_checked, '\\b[A-Z]{{2}}\\s+\\d{{5}}(-\\d{{4}})?\\b') AS has_some_address
FROM components
WHERE NOT (has_street AND has_city AND has_state AND has_zip)
ORDER BY id
"""


def _cs_001_sql(address: PostalAddress | None) -> str:
    street = city = state = zip_code = None
    if address is not None:
        street, city, zip_code = (
            component_regex(address.street),
            component_regex(address.city),
            component_regex(address.zip),
        )
        if address.state:
            # The state counts when it sits where a state goes: after the city or before the ZIP.
            state_re = re.escape(address.state)
            around = [
                p
                for p in (
                    rf"\b{_tokens_regex(address.city)}[^a-z0-9]+{state_re}\b"
                    if address.city
                    else None,
                    rf"\b{state_re}[^a-z0-9]+{address.zip}\b" if address.zip else None,
                )
                if p
            ]
            state = "|".join(around) or None
    return CS_001_SQL.format(
        street=_sql_regex_literal(street),
        city=_sql_regex_literal(city),
        state=_sql_regex_literal(state),
        zip=_sql_regex_literal(zip_code),
    )


@control(
    id="CS-001",
    title="Commercial email without a valid physical postal address",
    severity="high",
    rationale=(
        "Commercial email must show the sender's valid physical postal address. Looks for the "
        "account's physical_address components (street number and name, city, state, ZIP), "
        "normalised, in the body markdown, the mailbox signature block, and the account address "
        "where the mailbox policy says appends_postal_address = true. All found: pass; none: "
        "fail; some or a different address: review. Scope: sent commercial or mixed outbound "
        "email created in the period (created_at)."
    ),
    reference="15 U.S.C. § 7704(a)(5)(A)(iii); 16 CFR 316.2; can-spam.md CS-04",
    applies_to="commercial_email",
    sql=CS_001_SQL,
)
def cs_001(ctx: CheckContext) -> Outcome:
    commercial, total = _commercial_scope(ctx)
    if not commercial:
        return Outcome(0, not_applicable=_not_applicable(total))
    raw = ctx.scalar("SELECT min(physical_address) FROM multimail_account")
    address = parse_postal_address(raw)
    rows = ctx.rows(_cs_001_sql(address), account_address=raw or "")
    findings = []
    components = ("street", "city", "state", "zip")
    for r in rows:
        found = [c for c in components if r[f"has_{c}"]]
        missing = [c for c in components if c not in found]
        evidence: dict[str, Any] = {
            "classification": r["classification"],
            "classification_reasons": r["reasons"],
            "account_address": raw,
            "components_found": found,
            "components_missing": missing,
            "checked": BODY_SOURCE
            + (
                " + account address (appends_postal_address)" if r["appends_postal_address"] else ""
            ),
        }
        note = _mixed_note(r["classification"])
        if address is None:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "The account has no parseable physical_address, so no valid postal address can "
                    "be shown." + note,
                    evidence,
                    _state_for(r["classification"]),
                )
            )
        elif len(found) == len(components):
            continue
        elif found:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    f"Postal address only partly present (missing {', '.join(missing)})." + note,
                    evidence,
                    "review",
                )
            )
        elif r["has_some_address"]:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "Shows a postal address that is not the account's physical_address." + note,
                    evidence,
                    "review",
                )
            )
        else:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "No physical postal address in the commercial message." + note,
                    evidence,
                    _state_for(r["classification"]),
                )
            )
    return Outcome(commercial, findings)


# --- CS-002 --------------------------------------------------------------------------------
OPT_OUT_LINK = (
    r"(?i)(https?://[^\s)\]>]*(unsubscribe|opt-?out|email-preferences|preferences|manage-subscription)"
    r"|mailto:[^\s)\]>]*unsubscribe|\[[^\]]*(unsubscribe|opt[ -]?out)[^\]]*\]\([^)]+\))"
)
REPLY_INSTRUCTION = r"(?i)\breply\b[^.\n]{0,40}\b(stop|unsubscribe|remove me)\b"

CS_002_SQL = f"""
SELECT id, classification, reasons
FROM ak_classified
WHERE is_sent AND classification IN ('commercial', 'mixed')
  AND NOT regexp_matches(coalesce(body_markdown, '') || ' ' || coalesce(signature_block, ''),
      '{OPT_OUT_LINK}')
  AND NOT regexp_matches(coalesce(body_markdown, '') || ' ' || coalesce(signature_block, ''),
      '{REPLY_INSTRUCTION}')
ORDER BY id
"""


@control(
    id="CS-002",
    title="Commercial email without a clear opt-out",
    severity="high",
    rationale=(
        "Commercial email must offer a working way to opt out: an unsubscribe/opt-out link or a "
        "reply instruction (reply STOP / unsubscribe), found in the body markdown or mailbox "
        "signature block. Scope: sent commercial or mixed outbound email created in the period "
        "(created_at)."
    ),
    reference="15 U.S.C. § 7704(a)(3), (a)(5)(A)(ii); 16 CFR 316.5; can-spam.md CS-05",
    applies_to="commercial_email",
    sql=CS_002_SQL,
)
def cs_002(ctx: CheckContext) -> Outcome:
    commercial, total = _commercial_scope(ctx)
    if not commercial:
        return Outcome(0, not_applicable=_not_applicable(total))
    findings = [
        ctx.finding(
            "email",
            r["id"],
            "No unsubscribe link or reply-to-opt-out instruction in the commercial message."
            + _mixed_note(r["classification"]),
            {
                "classification": r["classification"],
                "classification_reasons": r["reasons"],
                "checked": BODY_SOURCE,
            },
            _state_for(r["classification"]),
        )
        for r in ctx.rows(CS_002_SQL)
    ]
    return Outcome(commercial, findings)


# --- CS-003 --------------------------------------------------------------------------------
CS_003_MATCHES = """
WITH recipient_lists AS (
    SELECT id, classification, sent_at,
           unnest(list_concat(coalesce(to_addresses, []::VARCHAR[]), coalesce(cc_addresses,
               []::VARCHAR[]))) AS raw_address
    FROM ak_classified
    WHERE is_sent AND classification IN ('commercial', 'mixed')
), recipients AS (
    SELECT DISTINCT id, classification, sent_at,
           lower(trim(coalesce(nullif(regexp_extract(raw_address, '<([^>]+)>', 1), ''),
               raw_address))) AS address
    FROM recipient_lists
), after_opt_out AS (
    SELECT r.id, r.classification, r.address, r.sent_at, d.suppression_id, d.suppressed_at,
        d.reason,
           d.deadline, (r.sent_at AT TIME ZONE 'UTC')::DATE > d.deadline AS late
    FROM recipients r JOIN ak_optout_deadlines d ON d.address = r.address
    WHERE r.sent_at >= d.suppressed_at
)
"""
CS_003_SQL = (
    CS_003_MATCHES
    + """
SELECT * FROM after_opt_out WHERE late ORDER BY id, address
"""
)
# A suppression is an opt-out unless its reason names a delivery failure (a bounce is not a
# request to stop); unknown and missing reasons count as opt-outs, the cautious reading.
_IS_DELIVERY_FAILURE = (
    "coalesce(list_bool_or([contains(lower(coalesce(reason, '')), p) "
    "FOR p IN $delivery_failure_reasons]), false)"
)
_SUPPRESSIONS_SQL = f"""
SELECT lower(trim(email_address)) AS address, arg_min(id, created_at) AS suppression_id,
       min(created_at) AS suppressed_at, arg_min(reason, created_at) AS reason
FROM multimail_suppressions
WHERE email_address IS NOT NULL AND created_at IS NOT NULL AND NOT {_IS_DELIVERY_FAILURE}
GROUP BY 1
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
        "Every suppression counts as an opt-out except those whose reason names a delivery "
        "failure ([controls] delivery_failure_reasons, default: bounce), which are counted in "
        "the detail instead. The send time is delivered_at, else created_at; business days are "
        "Mon–Fri minus US federal holidays (observed), counted from the UTC date of the "
        "suppression's created_at; addresses match case-insensitively over To and Cc. A send "
        "within the 10 days is not a failure. Scope: sent commercial or mixed outbound email "
        "created in the period."
    ),
    reference="15 U.S.C. § 7704(a)(4); 16 CFR 316.5; can-spam.md CS-07",
    applies_to="commercial_email",
    sql=CS_003_SQL,
)
def cs_003(ctx: CheckContext) -> Outcome:
    commercial, total = _commercial_scope(ctx)
    if not commercial:
        return Outcome(0, not_applicable=_not_applicable(total))
    failure_reasons = list(ctx.settings.delivery_failure_reasons)
    suppressions = ctx.rows(_SUPPRESSIONS_SQL, delivery_failure_reasons=failure_reasons)
    # One calendar computation per distinct suppression date, then a single join in SQL.
    deadline_by_day: dict[date, date] = {}
    for s in suppressions:
        day = s["suppressed_at"].astimezone(UTC).date()
        if day not in deadline_by_day:
            deadline_by_day[day] = add_business_days(day, OPT_OUT_BUSINESS_DAYS)
    deadlines = pa.table(
        {
            "address": [s["address"] for s in suppressions],
            "suppression_id": [s["suppression_id"] for s in suppressions],
            "suppressed_at": [s["suppressed_at"] for s in suppressions],
            "reason": [s["reason"] for s in suppressions],
            "deadline": [
                deadline_by_day[s["suppressed_at"].astimezone(UTC).date()] for s in suppressions
            ],
        },
        schema=pa.schema(
            [
                ("address", pa.string()),
                ("suppression_id", pa.string()),
                ("suppressed_at", pa.timestamp("us", tz="UTC")),
                ("reason", pa.string()),
                ("deadline", pa.date32()),
            ]
        ),
    )
    ctx.con.register("ak_optout_deadlines", deadlines)
    try:
        rows = ctx.rows(CS_003_SQL)
        within = ctx.scalar(CS_003_MATCHES + "SELECT count(*) FROM after_opt_out WHERE NOT late")
        after_failure = ctx.scalar(
            CS_003_MATCHES + _AFTER_DELIVERY_FAILURE_SQL,
            delivery_failure_reasons=failure_reasons,
        )
    finally:
        ctx.con.unregister("ak_optout_deadlines")
    findings = [
        ctx.finding(
            "email",
            r["id"],
            f"Sent to {r['address']} on {r['sent_at']:%Y-%m-%d}, after the opt-out deadline "
            f"{r['deadline']:%Y-%m-%d} (10 business days after suppression on "
            f"{r['suppressed_at']:%Y-%m-%d})." + _mixed_note(r["classification"]),
            {
                "recipient": r["address"],
                "sent_at": r["sent_at"],
                "suppression_id": r["suppression_id"],
                "suppressed_at": r["suppressed_at"],
                "suppression_reason": r["reason"],
                "deadline": r["deadline"],
                "classification": r["classification"],
                "calendar": CALENDAR_VERSION,
            },
            _state_for(r["classification"]),
        )
        for r in rows
    ]
    notes = []
    if within:
        notes.append(f"{within} send(s) to suppressed addresses inside the 10-business-day window")
    if after_failure:
        notes.append(
            f"{after_failure} send(s) to addresses suppressed only for a delivery failure "
            f"(reason containing {', '.join(failure_reasons)}), not judged as opt-outs"
        )
    return Outcome(commercial, findings, detail="; ".join(notes))


# --- CS-004 --------------------------------------------------------------------------------
CS_004_SQL = """
SELECT c.id, c.subject, c.thread_id, c.created_at
FROM ak_scope c
WHERE c.is_sent
  AND regexp_matches(coalesce(c.subject, ''), '^\\s*(re|fwd?|fw)\\s*:', 'i')
  AND NOT EXISTS (
      SELECT 1 FROM multimail_emails p
      WHERE c.thread_id IS NOT NULL AND p.thread_id = c.thread_id
        AND p.created_at < c.created_at AND p.id <> c.id)
ORDER BY c.id
"""


@control(
    id="CS-004",
    title="Deceptive reply/forward subject",
    severity="medium",
    rationale=(
        "A Re:/Fwd:/Fw: subject on a message that is not part of an existing conversation "
        "suggests a relationship that does not exist. Flags such subjects when no earlier "
        "message (inbound or outbound, by created_at) exists in the same thread_id. CAN-SPAM's "
        "subject rule covers commercial mail and the FTC Act's general ban on deception covers "
        "the rest, so every sent message is checked, whatever its classification. Scope: sent "
        "outbound email created in the period."
    ),
    reference="15 U.S.C. § 7704(a)(2); 15 U.S.C. § 45 (FTC Act § 5); can-spam.md CS-02",
    applies_to="outbound_email",
    sql=CS_004_SQL,
)
def cs_004(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar("SELECT count(*) FROM ak_scope WHERE is_sent")
    if not checked:
        return Outcome(0, not_applicable="no outbound email created in the period was sent")
    findings = [
        ctx.finding(
            "email",
            r["id"],
            f"Subject {r['subject']!r} claims a reply or forward, but thread "
            f"{r['thread_id'] or '(none)'} "
            "has no earlier message.",
            r,
        )
        for r in ctx.rows(CS_004_SQL)
    ]
    return Outcome(checked, findings)


# --- CS-005 --------------------------------------------------------------------------------
CS_005_SQL = """
WITH account AS (
    SELECT lower(min(slug)) || '.multimail.dev' AS default_domain FROM multimail_account
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
