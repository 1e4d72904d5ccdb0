"""Primary-purpose classification of outbound email: commercial, transactional or mixed.

CAN-SPAM's content rules apply to commercial mail only (15 U.S.C. § 7702(2), 16 CFR 316.3),
so every CS control is gated by this. Each message gets a label and the reasons that
produced it, from three explainable sources, in order:

1. the mailbox policy (`[mailboxes."<address>"] classification = commercial|transactional|auto`);
2. tag rules (`[classification] commercial_categories` against `tags.category`);
3. content rules (promotional vocabulary, discount codes, pricing/checkout links), used
   when the policy is `auto` and to detect promotion inside a transactional mailbox.

Promotion mixed with transactional content is labelled `mixed`: the 316.3 test needs a
human reading, so controls turn would-be failures on mixed mail into `review` findings.
The rules run as one DuckDB query over all messages (no per-message Python).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import pyarrow as pa

from auditkit.config import Settings
from auditkit.errors import ConfigError

CLASSIFIER_VERSION = "cls-v1"
Label = Literal["commercial", "transactional", "mixed"]
POLICIES = ("commercial", "transactional", "auto")
DEFAULT_COMMERCIAL_CATEGORIES = ("promotion", "marketing", "newsletter")

# Patterns are RE2 (DuckDB). They are deliberately conservative: a hit is a reason a human
# can read back ("matched '20% off'"), not a score.
PROMOTIONAL_VOCABULARY = (
    r"(?i)(\b\d{1,3} ?% off\b|\bdiscount(ed|s)?\b|\bcoupon\b|\bpromo(tion|tional)?\b"
    r"|\blimited[- ]time\b|\bspecial offer\b|\bexclusive offer\b|\bupgrade (now|today)\b"
    r"|\bbuy now\b|\bshop now\b|\bsale ends\b|\bflash sale\b|\bsave (up to )?\$?\d+"
    r"|\bfree trial\b|\bblack friday\b|\bcyber monday\b|\bearly[- ]bird\b)"
)
# "code SAVE20": letters then digits, upper case, so one-time numeric codes do not match.
DISCOUNT_CODE = r"(?i:\bcode)[:\s]+[*`'\"]*[A-Z]{2,}[A-Z0-9]*[0-9][A-Z0-9]*\b"
PRICING_LINK = (
    r"(?i)https?://[^\s)\]>]*/(pricing|checkout|cart|promo|promotions?|offers?|deals?|upgrade"
    r"|buy|shop|store|sale)\b"
)
TRANSACTIONAL_MARKERS = (
    r"(?i)(\byour (order|invoice|refund|ticket|request|account|subscription|password|booking"
    r"|payment|receipt|case|return|shipment|delivery)\b|\b(order|invoice|ticket|case) ?(#|no\.?"
    r"|number)|\breceipt\b|\brefund(ed)?\b|\bshipped\b|\btracking number\b|\bconfirm(ed|ation)\b"
    r"|\bas (you )?requested\b)"
)
# 16 CFR 316.3(a)(2)(ii): transactional content "at the beginning of the body".
BODY_BEGINNING_CHARS = 300


@dataclass(frozen=True)
class Classification:
    label: Label
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ClassificationRules:
    """Validated `[classification]` section plus each mailbox's `classification` policy."""

    mailbox_policies: Mapping[str, str]  # lower-case address → commercial|transactional|auto
    commercial_categories: tuple[str, ...] = DEFAULT_COMMERCIAL_CATEGORIES
    transactional_categories: tuple[str, ...] = ()
    default_policy: str = "auto"

    @classmethod
    def from_settings(cls, settings: Settings) -> ClassificationRules:
        section = settings.classification or {}
        if not isinstance(section, Mapping):
            raise ConfigError("classification must be a table ([classification])")
        commercial = _string_list(section, "commercial_categories", DEFAULT_COMMERCIAL_CATEGORIES)
        transactional = _string_list(section, "transactional_categories", ())
        default = section.get("default_policy", "auto")
        if default not in POLICIES:
            raise ConfigError(
                f"classification.default_policy must be one of {', '.join(POLICIES)}, got "
                f"{default!r}"
            )
        policies: dict[str, str] = {}
        mailboxes = settings.mailboxes or {}
        if not isinstance(mailboxes, Mapping):
            raise ConfigError('mailboxes must be a table of tables ([mailboxes."<address>"])')
        for address, policy in mailboxes.items():
            if not isinstance(policy, Mapping):
                raise ConfigError(f'mailboxes."{address}" must be a table')
            value = policy.get("classification", default)
            if value not in POLICIES:
                raise ConfigError(
                    f'mailboxes."{address}".classification must be one of '
                    f"{', '.join(POLICIES)}, got {value!r}"
                )
            policies[str(address).strip().lower()] = value
        return cls(policies, commercial, transactional, default)


def _string_list(section: Mapping[str, Any], key: str, default: Iterable[str]) -> tuple[str, ...]:
    value = section.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f"classification.{key} must be a list of non-empty strings, got {value!r}"
        )
    return tuple(v.strip().lower() for v in value)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def classification_sql(source: str, policy_relation: str) -> str:
    """SQL labelling every row of `source` (columns id, subject, body_markdown, tags, metadata,
    mailbox_address). `policy_relation` has (address, policy). Parameters: $commercial_categories,
    $transactional_categories, $default_policy."""
    promo, code, link, trans = (
        _literal(p)
        for p in (PROMOTIONAL_VOCABULARY, DISCOUNT_CODE, PRICING_LINK, TRANSACTIONAL_MARKERS)
    )
    return f"""
    WITH texts AS (
        SELECT s.id, s.mailbox_address, s.tags, s.metadata,
               coalesce(s.subject, '') AS subject, coalesce(s.body_markdown, '') AS body,
               coalesce(s.subject, '') || ' ' || coalesce(s.body_markdown, '') AS text
        FROM {source} s
    ), signals AS (
        SELECT t.id,
               coalesce(p.policy, $default_policy) AS policy,
               lower(coalesce(json_extract_string(t.tags, '$.category'),
                              json_extract_string(t.metadata, '$.category'))) AS category,
               nullif(regexp_extract(t.text, {promo}, 0), '') AS promo_term,
               nullif(regexp_extract(t.body, {code}, 0), '') AS discount_code,
               nullif(regexp_extract(t.body, {link}, 0), '') AS pricing_link,
               nullif(regexp_extract(t.text, {trans}, 0), '') AS transactional_term,
               regexp_matches(t.subject, {promo}) AS promo_in_subject,
               regexp_matches(left(t.body, {BODY_BEGINNING_CHARS}), {trans}) AS transactional_first
        FROM texts t
        LEFT JOIN {policy_relation} p ON p.address = t.mailbox_address
    ), flagged AS (
        SELECT *,
               category IS NOT NULL AND list_contains($commercial_categories,
                   category) AS commercial_tag,
               category IS NOT NULL AND list_contains($transactional_categories,
                   category) AS transactional_tag,
               promo_term IS NOT NULL OR discount_code IS NOT NULL
                   OR pricing_link IS NOT NULL AS promo_content
        FROM signals
    )
    SELECT id,
           CASE
               WHEN policy = 'commercial' THEN 'commercial'
               WHEN policy = 'transactional' AND (commercial_tag OR promo_content) THEN 'mixed'
               WHEN policy = 'transactional' THEN 'transactional'
               WHEN commercial_tag AND NOT transactional_tag THEN 'commercial'
               WHEN (commercial_tag OR promo_content) AND (transactional_tag
                   OR transactional_term IS NOT NULL) THEN 'mixed'
               WHEN promo_content THEN 'commercial'
               ELSE 'transactional'
           END AS classification,
           list_filter([
               'mailbox policy: ' || policy,
               CASE WHEN commercial_tag THEN 'tag category ' || category
                   || ' is a commercial category' END,
               CASE WHEN transactional_tag THEN 'tag category ' || category
                   || ' is a transactional category' END,
               CASE WHEN promo_term IS NOT NULL THEN 'promotional vocabulary: "' || promo_term
                   || '"' END,
               CASE WHEN discount_code IS NOT NULL THEN 'discount code: "' || discount_code
                   || '"' END,
               CASE WHEN pricing_link IS NOT NULL THEN 'pricing/checkout link: '
                   || pricing_link END,
               CASE WHEN transactional_term IS NOT NULL THEN 'transactional content: "'
                   || transactional_term || '"' END,
               CASE WHEN (commercial_tag OR promo_content) AND promo_in_subject
                    THEN 'commercial content in the subject line (16 CFR 316.3(a)(2)(i))' END,
               CASE WHEN (commercial_tag OR promo_content) AND transactional_term IS NOT NULL
                   AND NOT transactional_first
                    THEN 'transactional content is not at the beginning of the body '
                         || '(16 CFR 316.3(a)(2)(ii))' END,
               CASE WHEN policy <> 'commercial' AND NOT commercial_tag AND NOT promo_content
                    THEN 'no commercial signals' END
           ], lambda r: r IS NOT NULL) AS reasons
    FROM flagged
    """


def classification_policy_table(rules: ClassificationRules) -> pa.Table:
    """The mailbox policies as an Arrow table (address, policy) for `classification_sql`."""
    items = sorted(rules.mailbox_policies.items())
    return pa.table(
        {"address": [a for a, _ in items], "policy": [p for _, p in items]},
        schema=pa.schema([("address", pa.string()), ("policy", pa.string())]),
    )


def classification_params(rules: ClassificationRules) -> dict[str, Any]:
    return {
        "commercial_categories": list(rules.commercial_categories),
        "transactional_categories": list(rules.transactional_categories),
        "default_policy": rules.default_policy,
    }


def classify_relation(
    con: duckdb.DuckDBPyConnection, source: str, rules: ClassificationRules
) -> pa.Table:
    """Label every row of relation `source` as an Arrow table (id, classification, reasons)."""
    name = "_auditkit_classification_policy"
    con.register(name, classification_policy_table(rules))
    try:
        return con.sql(
            classification_sql(source, name), params=classification_params(rules)
        ).to_arrow_table()
    finally:
        con.unregister(name)


def classify_message(
    rules: ClassificationRules,
    *,
    subject: str | None,
    body_markdown: str | None,
    tags: str | None = None,
    mailbox_address: str | None = None,
) -> Classification:
    """One message through the same SQL rules (for tooling and tests); `tags` is JSON text."""
    row = pa.table(
        {
            "id": ["message"],
            "subject": [subject],
            "body_markdown": [body_markdown],
            "tags": [tags],
            "metadata": [None],
            "mailbox_address": [mailbox_address.lower() if mailbox_address else None],
        },
        schema=pa.schema(
            [
                (c, pa.string())
                for c in ("id", "subject", "body_markdown", "tags", "metadata", "mailbox_address")
            ]
        ),
    )
    con = duckdb.connect(":memory:")
    try:
        con.register("_auditkit_one_message", row)
        result = classify_relation(con, "_auditkit_one_message", rules).to_pylist()[0]
    finally:
        con.close()
    return Classification(result["classification"], tuple(result["reasons"]))
