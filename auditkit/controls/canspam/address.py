"""CS-001: commercial email shows the account's valid physical postal address.

The account's `physical_address` is split into street, city, state and ZIP, normalised
(street suffixes and state names folded), and each component looked for in the body, the
signature block and, where the mailbox appends it, the account address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from auditkit.controls.canspam.as_sent import AS_SENT_SOURCE, over_as_sent_copies
from auditkit.controls.canspam.common import (
    BODY_SOURCE,
    commercial_scope,
    mixed_note,
    not_applicable_reason,
    state_for,
)
from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control
from auditkit.vocabulary import sql_literal

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

# USPS two-letter codes and full names (50 states + DC): an address may spell the state out
# ("Oakland, California 94607") where the account has the code, or the other way round.
US_STATES = {
    "al": "alabama", "ak": "alaska", "az": "arizona", "ar": "arkansas", "ca": "california",
    "co": "colorado", "ct": "connecticut", "de": "delaware", "dc": "district of columbia",
    "fl": "florida", "ga": "georgia", "hi": "hawaii", "id": "idaho", "il": "illinois",
    "in": "indiana", "ia": "iowa", "ks": "kansas", "ky": "kentucky", "la": "louisiana",
    "me": "maine", "md": "maryland", "ma": "massachusetts", "mi": "michigan",
    "mn": "minnesota", "ms": "mississippi", "mo": "missouri", "mt": "montana",
    "ne": "nebraska", "nv": "nevada", "nh": "new hampshire", "nj": "new jersey",
    "nm": "new mexico", "ny": "new york", "nc": "north carolina", "nd": "north dakota",
    "oh": "ohio", "ok": "oklahoma", "or": "oregon", "pa": "pennsylvania",
    "ri": "rhode island", "sc": "south carolina", "sd": "south dakota", "tn": "tennessee",
    "tx": "texas", "ut": "utah", "vt": "vermont", "va": "virginia", "wa": "washington",
    "wv": "west virginia", "wi": "wisconsin", "wy": "wyoming",
}  # fmt: skip
_STATE_CODES = {name: code for code, name in US_STATES.items()}
# Longest first, so "west virginia" is tried before "virginia".
_STATE_NAMES_RE = "|".join(
    r"\s+".join(name.split()) for name in sorted(_STATE_CODES, key=len, reverse=True)
)


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
    return "NULL" if pattern is None else sql_literal(pattern)


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
    tail = re.search(
        r"([A-Za-z][A-Za-z .'-]*?)\s*,?\s+([A-Z]{2}|(?i:" + _STATE_NAMES_RE + r"))\s+(\d{5})"
        r"(?:-\d{4})?\b",
        text,
    )
    city = state = zip_code = None
    if tail:
        city = normalise_address_text(tail.group(1).split(",")[-1]) or None
        state_text = " ".join(tail.group(2).lower().split())
        state, zip_code = _STATE_CODES.get(state_text, state_text), tail.group(3)
    box = re.search(r"\b(?:P\.?\s*O\.?\s*Box|PMB)\s*#?\s*\d+", text, re.IGNORECASE)
    street_match = re.search(r"(?:^|[,\n]\s*)(\d+[A-Za-z]?\s+[A-Za-z0-9 .'-]+?)\s*(?=,|\n|$)", text)
    street = box.group(0) if box else street_match.group(1) if street_match else None
    parsed = PostalAddress(
        text.strip(), normalise_address_text(street) if street else None, city, state, zip_code
    )
    return parsed if any((parsed.street, parsed.zip)) else None


# --- CS-001 --------------------------------------------------------------------------------
# {street}, {city}, {state}, {zip} are RE2 literals built by `component_regex` from the
# account's physical_address at run time (NULL when the component is missing);
# {some_address} finds any "<state> <ZIP>" (code or name), for "a different address".
# The text and its components are read the same way in a draft and in an as-sent copy: HTML
# tags and entities (a signature's <br>, &nbsp;) separate words like line breaks.
_FOLDED = (
    "regexp_replace(lower(text_checked), '</?[a-z][^<>]*>|&[a-z]+;|&#[0-9]+;', ' ', 'g') "
    "AS text_lower"
)
_COMPONENT_MATCHES = """
           coalesce(regexp_matches(text_lower, {street}), false) AS has_street,
           coalesce(regexp_matches(text_lower, {city}), false) AS has_city,
           coalesce(regexp_matches(text_lower, {state}), false) AS has_state,
           coalesce(regexp_matches(text_lower, {zip}), false) AS has_zip"""
CS_001_SQL = (
    """
WITH checked AS (
    SELECT id, classification, reasons, appends_postal_address,
           coalesce(body_markdown, '') || ' ' || coalesce(signature_block, '')
             || CASE WHEN appends_postal_address THEN ' '
                 || $account_address ELSE '' END AS text_checked
    FROM ak_classified
    WHERE is_sent AND classification IN ('commercial', 'mixed')
), folded AS (
    SELECT *, """
    + _FOLDED
    + """
    FROM checked
), components AS (
    SELECT id, classification, reasons, appends_postal_address, text_checked,"""
    + _COMPONENT_MATCHES
    + """
    FROM folded
)
SELECT id, classification, reasons, appends_postal_address, has_street, has_city, has_state,
    has_zip, regexp_matches(text_checked, {some_address}) AS has_some_address
FROM components
WHERE NOT (has_street AND has_city AND has_state AND has_zip)
ORDER BY id
"""
)
# The same components in each archived as-sent copy of the messages the draft check left
# (ak_as_sent: auditkit.controls.canspam.as_sent).
CS_001_AS_SENT_SQL = (
    """
WITH folded AS (
    SELECT *, """
    + _FOLDED
    + """
    FROM (SELECT email_id, source_path, text AS text_checked FROM ak_as_sent)
)
SELECT email_id, source_path,"""
    + _COMPONENT_MATCHES
    + """,
       regexp_matches(text_checked, {some_address}) AS has_some_address
FROM folded ORDER BY email_id, source_path
"""
)
_SOME_ADDRESS = rf"\b([A-Z]{{2}}|(?i:{_STATE_NAMES_RE}))\s+\d{{5}}(-\d{{4}})?\b"
_COMPONENTS = ("street", "city", "state", "zip")


def _cs_001_sql(address: PostalAddress | None, template: str = CS_001_SQL) -> str:
    street = city = state = zip_code = None
    if address is not None:
        street, city, zip_code = (
            component_regex(address.street),
            component_regex(address.city),
            component_regex(address.zip),
        )
        if address.state:
            # The state counts when it sits where a state goes: after the city or before the ZIP,
            # as the code or spelled out (a line break may sit in between, as in a signature).
            state_re = re.escape(address.state)
            if address.state in US_STATES:
                state_re = f"({state_re}|{_tokens_regex(US_STATES[address.state])})"
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
    return template.format(
        street=_sql_regex_literal(street),
        city=_sql_regex_literal(city),
        state=_sql_regex_literal(state),
        zip=_sql_regex_literal(zip_code),
        some_address=_sql_regex_literal(_SOME_ADDRESS),
    )


@control(
    id="CS-001",
    title="Commercial email without a valid physical postal address",
    severity="high",
    rationale=(
        "Commercial email must show the sender's valid physical postal address. Looks for the "
        "account's physical_address components (street number and name, city, state, ZIP), "
        "normalised, in the body markdown, the mailbox signature block, and the account address "
        "where the mailbox policy says appends_postal_address = true; then, for a message "
        "still short of it, in every text part of its archived as-sent copies (a footer added "
        "at send time is not in the stored draft). All found: pass; none: fail; some or a "
        "different address: review; none in the draft and no archived copy, where other "
        "messages' copies showed it added at send time: review. Scope: sent commercial or "
        "mixed outbound email created in the period (created_at)."
    ),
    reference="15 U.S.C. § 7704(a)(5)(A)(iii); 16 CFR 316.2; can-spam.md CS-04",
    applies_to="commercial_email",
    sql=CS_001_SQL,
)
def cs_001(ctx: CheckContext) -> Outcome:
    commercial, total = commercial_scope(ctx)
    if not commercial:
        return Outcome(0, not_applicable=not_applicable_reason(total))
    raw = ctx.scalar("SELECT min(physical_address) FROM multimail_account")
    address = parse_postal_address(raw)
    rows = ctx.rows(_cs_001_sql(address), account_address=raw or "")
    copies: dict[str, list[dict[str, Any]]] = {}
    if address is not None:
        as_sent_sql = _cs_001_sql(address, CS_001_AS_SENT_SQL)
        for c in over_as_sent_copies(ctx, [r["id"] for r in rows], as_sent_sql):
            copies.setdefault(c["email_id"], []).append(c)
    complete = {
        email_id
        for email_id, cs in copies.items()
        if any(all(c[f"has_{k}"] for k in _COMPONENTS) for c in cs)
    }
    findings = []
    for r in rows:
        cs = copies.get(r["id"], [])
        found = [k for k in _COMPONENTS if r[f"has_{k}"] or any(c[f"has_{k}"] for c in cs)]
        missing = [k for k in _COMPONENTS if k not in found]
        if not missing:
            # What was sent shows every part (a copy in `complete`: added at send time), or
            # the draft and its copies do between them.
            continue
        evidence: dict[str, Any] = {
            "classification": r["classification"],
            "classification_reasons": r["reasons"],
            "account_address": raw,
            "components_found": found,
            "components_missing": missing,
            "checked": BODY_SOURCE
            + (" + account address (appends_postal_address)" if r["appends_postal_address"] else "")
            + AS_SENT_SOURCE,
            "as_sent_copies_checked": len(cs),
        }
        note = mixed_note(r["classification"])
        if address is None:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "The account has no parseable physical_address, so no valid postal address can "
                    "be shown." + note,
                    evidence,
                    state_for(r["classification"]),
                )
            )
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
        elif r["has_some_address"] or any(c["has_some_address"] for c in cs):
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "Shows a postal address that is not the account's physical_address." + note,
                    evidence,
                    "review",
                )
            )
        elif not cs and complete:
            findings.append(
                ctx.finding(
                    "email",
                    r["id"],
                    "No physical postal address in the stored draft, but the archived as-sent "
                    f"copies of {len(complete)} other message(s) whose drafts lacked it showed "
                    "it (added at send time), and this message has no archived copy: a human "
                    "must check what its recipient got." + note,
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
                    state_for(r["classification"]),
                )
            )
    detail = (
        f"{len(complete)} message(s) show the address only in their archived as-sent copy "
        "(added at send time)"
        if complete
        else ""
    )
    return Outcome(commercial, findings, detail=detail)
