"""Primary-purpose classification of outbound email: commercial, transactional or mixed.

CAN-SPAM's content rules apply to commercial mail only (15 U.S.C. § 7702(2), 16 CFR 316.3),
so every CS control is gated by this. Each message gets a label and the reasons that
produced it, from four explainable sources, in order of precedence:

1. the mailbox policy (`[mailboxes."<address>"] classification = commercial|transactional|auto`);
2. configured categories (`[classification] commercial_categories` / `transactional_categories`)
   against the message's declared type (`category`, `type`, `email_type`, `message_type`,
   `classification` or `kind`, in `tags` or `metadata`);
3. a declared type from the built-in vocabulary (`COMMERCIAL_TYPES`, `TRANSACTIONAL_TYPES`),
   when no configured category matched: the sender's own label beats content guesses;
4. content rules: promotional vocabulary, discount codes, pricing/checkout links and
   re-engagement wording (strong signals), and an opt-out link (a weak signal, see below).

Promotion inside transactional mail (by policy, configured category or declared type) is
labelled `mixed`: the 316.3 test needs a human reading, so controls turn would-be failures
on mixed mail into `review` findings. An opt-out link says the message went out as list
mail, but it is not content that promotes anything (316.3 looks at content), and many
senders put one in receipts as good practice. So on its own it never makes a message
commercial: with transactional content at the beginning of the body the message stays
transactional, otherwise it is `mixed` for a human to read. It never changes a declared
or policy label. The rules run as one DuckDB query over all messages (no per-message Python);
the opt-out link patterns are `auditkit.opt_out_text`'s, which CS-002 reads too.

Versions: cls-v1 policy, `tags.category` and promotional content. cls-v2 adds declared types
(more keys, `metadata`, built-in vocabulary), re-engagement wording and the opt-out link
signal; categories are compared case-insensitively without spaces, hyphens or underscores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from auditkit.config import Settings
from auditkit.config_keys import reject_unknown
from auditkit.errors import ConfigError
from auditkit.opt_out_text import LINK_WORDING
from auditkit.store.temp_tables import create_temp_table, drop_temp_table
from auditkit.vocabulary import sql_literal

if TYPE_CHECKING:  # config.load validates [classification] here: no pyarrow at start-up
    import pyarrow as pa

CLASSIFIER_VERSION = "cls-v2"
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

# Re-engagement ("win-back") wording addresses a lapsed customer to sell again. Each phrase
# is pinned to its selling form: "come back" alone is also "I'll come back to you", and
# "it's been a while" alone is also a support follow-up ("since we heard from you").
REENGAGEMENT_VOCABULARY = (
    r"(?i)(\bwe(['’]ve| have)? miss(ed)? you\b|\bwin you back\b|\bwelcome you back\b"
    r"|\b(we['’]d|we would) love to (have|see|welcome) you back\b"
    r"|\bcome back\s*[!?]|\bcome back (and|to) (shop|see|check out|visit|explore|try|enjoy"
    r"|browse|discover)\b|\bcome back (soon|anytime)\b"
    r"|\b(haven['’]?t|have not) seen you\b|\bit['’]?s been (a while|too long)\s*(!|—|--)"
    r"|\bit['’]?s been (a while|too long) since (you|your|we['’]ve seen you|we last saw you)"
    r"(\s+(last|visited|shopped|ordered|logged|stopped|were|been|order|visit|purchase|saw))?\b"
    r"|\breactivate your (account|membership|subscription)\b)"
)
# A word every phrase above contains: the vocabulary runs only on text holding one.
REENGAGEMENT_GATE = r"(?i)(miss|back|seen|been|reactivate)"

# Declared message types (`tags`/`metadata` keys below), compared folded (`fold_type`), so
# "Support follow-up", "support_followup" and "SUPPORT-FOLLOWUP" are one type. Configured
# categories are checked first and win.
TYPE_KEYS = ("category", "type", "email_type", "message_type", "classification", "kind")
COMMERCIAL_TYPES = (
    "commercial",
    "marketing",
    "promotional",
    "promotion",
    "promo",
    "newsletter",
    "advertising",
    "advertisement",
)
TRANSACTIONAL_TYPES = (
    "transactional",
    "transaction",
    "support",
    "support_followup",
    "service",
    "relationship",
    "notification",
    "receipt",
    "invoice",
    "billing",
    "shipping",
    "order_confirmation",
    "password_reset",
    "onboarding",
)


def fold_type(value: str) -> str:
    """A declared type or configured category as compared: lower case without spaces,
    hyphens or underscores ("Support follow-up" → "supportfollowup")."""
    return re.sub(r"[\s_-]+", "", value.lower())


@dataclass(frozen=True)
class Classification:
    label: Label
    reasons: tuple[str, ...]


# The keys of [classification]; any other is a ConfigError (config_keys.reject_unknown).
CLASSIFICATION_KEYS = ("commercial_categories", "transactional_categories", "default_policy")


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
        reject_unknown(section, CLASSIFICATION_KEYS, "classification")
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


def _declared_types_sql() -> str:
    """SQL list of {field, value} structs: every declared type on the message, lower case.
    One JSON parse per column (a list of paths), not one per key: this runs on every
    message of the period."""
    paths = "[" + ", ".join(sql_literal(f"$.{key}") for key in TYPE_KEYS) + "]"
    parts = []
    for column in ("tags", "metadata"):
        names = "[" + ", ".join(sql_literal(f"{column}.{key}") for key in TYPE_KEYS) + "]"
        parts.append(
            f"CASE WHEN t.{column} IS NULL THEN [] ELSE list_transform("
            f"list_zip({names}, json_extract_string(t.{column}, {paths})), "
            f"lambda p: {{'field': p[1], 'value': lower(trim(p[2]))}}) END"
        )
    return "list_concat(" + ", ".join(parts) + ")"


def _sql_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(sql_literal(fold_type(v)) for v in values) + "]"


def _type_reasons_sql(matches: str, kind: str, configured: bool) -> str:
    """Reasons naming each declared type that decided, e.g. "tag category promotion is a
    commercial category" (the cls-v1 wording, kept for tags.category)."""
    if configured:
        text = (
            "CASE WHEN d.field = 'tags.category' THEN 'tag category ' ELSE d.field || ' ' END "
            f"|| d.value || ' is a {kind} category'"
        )
    else:
        text = f"d.field || ' ' || d.value || ' declares {kind} mail'"
    return f"list_transform({matches}, lambda d: {text})"


def classification_sql(source: str, policy_relation: str) -> str:
    """SQL labelling every row of `source` (columns id, subject, body_markdown, tags, metadata,
    mailbox_address). `policy_relation` has (address, policy). Parameters: $commercial_categories,
    $transactional_categories, $default_policy."""
    promo, code, link, trans, reengage = (
        sql_literal(p)
        for p in (
            PROMOTIONAL_VOCABULARY,
            DISCOUNT_CODE,
            PRICING_LINK,
            TRANSACTIONAL_MARKERS,
            REENGAGEMENT_VOCABULARY,
        )
    )
    return f"""
    WITH texts AS (
        SELECT s.id, s.mailbox_address, s.tags, s.metadata,
               coalesce(s.subject, '') AS subject, coalesce(s.body_markdown, '') AS body,
               coalesce(s.subject, '') || ' ' || coalesce(s.body_markdown, '') AS text
        FROM {source} s
    ), signals AS (
        SELECT t.id, t.body,
               coalesce(p.policy, $default_policy) AS policy,
               list_transform(list_filter({_declared_types_sql()},
                   lambda d: d.value IS NOT NULL AND d.value <> ''),
                   lambda d: struct_insert(d, folded := regexp_replace(d.value, '[\\s_-]+', '',
                       'g'))) AS declared,
               nullif(regexp_extract(t.text, {promo}, 0), '') AS promo_term,
               nullif(regexp_extract(t.body, {code}, 0), '') AS discount_code,
               nullif(regexp_extract(t.body, {link}, 0), '') AS pricing_link,
               CASE WHEN regexp_matches(t.text, {sql_literal(REENGAGEMENT_GATE)})
                    THEN nullif(regexp_extract(t.text, {reengage}, 0), '') END
                   AS reengagement_term,
               nullif(regexp_extract(t.text, {trans}, 0), '') AS transactional_term,
               regexp_matches(t.subject, {promo}) OR regexp_matches(t.subject, {reengage})
                   AS promo_in_subject,
               regexp_matches(left(t.body, {BODY_BEGINNING_CHARS}), {trans}) AS transactional_first
        FROM texts t
        LEFT JOIN {policy_relation} p ON p.address = t.mailbox_address
    ), matched AS (
        SELECT *,
               list_filter(declared, lambda d: list_contains($commercial_categories, d.folded))
                   AS configured_commercial,
               list_filter(declared, lambda d: list_contains($transactional_categories, d.folded))
                   AS configured_transactional,
               list_filter(declared, lambda d: list_contains({_sql_list(COMMERCIAL_TYPES)},
                   d.folded)) AS builtin_commercial,
               list_filter(declared, lambda d: list_contains({_sql_list(TRANSACTIONAL_TYPES)},
                   d.folded)) AS builtin_transactional,
               promo_term IS NOT NULL OR discount_code IS NOT NULL OR pricing_link IS NOT NULL
                   OR reengagement_term IS NOT NULL AS promo_content
        FROM signals
    ), typed AS (
        SELECT *,
               -- Configured categories win; the built-in vocabulary speaks only when no
               -- configured category matched.
               len(configured_commercial) + len(configured_transactional) > 0 AS configured
        FROM matched
    ), typed_flags AS (
        SELECT *,
               CASE WHEN configured THEN len(configured_commercial) > 0
                    ELSE len(builtin_commercial) > 0 END AS type_commercial,
               CASE WHEN configured THEN len(configured_transactional) > 0
                    ELSE len(builtin_transactional) > 0 END AS type_transactional
        FROM typed
    ), link_hits AS (
        -- An opt-out link decides only when nothing else does, so it is looked for (the
        -- costliest pattern) only then; the body only: a signature is not the content.
        SELECT f.*,
               CASE WHEN policy = 'auto' AND NOT type_commercial AND NOT type_transactional
                         AND NOT promo_content
                    THEN {LINK_WORDING.first_hit_sql("f.body")} END AS opt_out_hit
        FROM typed_flags f
    ), flagged AS (
        SELECT * EXCLUDE (opt_out_hit),
               {LINK_WORDING.kept_sql("opt_out_hit", "body")} AS opt_out_link
        FROM link_hits
    )
    SELECT id,
           CASE
               WHEN policy = 'commercial' THEN 'commercial'
               WHEN policy = 'transactional' AND (type_commercial OR promo_content) THEN 'mixed'
               WHEN policy = 'transactional' THEN 'transactional'
               -- A declared type beats the content rules, except that promotion inside
               -- declared-transactional mail still needs the 316.3 reading.
               WHEN type_commercial AND type_transactional THEN 'mixed'
               WHEN type_commercial THEN 'commercial'
               WHEN type_transactional AND promo_content THEN 'mixed'
               WHEN type_transactional THEN 'transactional'
               -- 16 CFR 316.3(a)(2): promotion with transactional content is deemed
               -- commercial when the subject line reads as commercial, or when the
               -- transactional part is not at the beginning of the body (a promotion whose
               -- only "your order" is a fake "Re:" subject); otherwise a human decides.
               WHEN promo_content AND transactional_term IS NOT NULL
                    AND (promo_in_subject OR NOT transactional_first) THEN 'commercial'
               WHEN promo_content AND transactional_term IS NOT NULL THEN 'mixed'
               WHEN promo_content THEN 'commercial'
               -- An opt-out link alone: at most mixed (see the module docstring).
               WHEN opt_out_link IS NOT NULL AND transactional_first THEN 'transactional'
               WHEN opt_out_link IS NOT NULL THEN 'mixed'
               ELSE 'transactional'
           END AS classification,
           list_filter(flatten([
               ['mailbox policy: ' || policy],
               {_type_reasons_sql("configured_commercial", "commercial", True)},
               {_type_reasons_sql("configured_transactional", "transactional", True)},
               CASE WHEN configured THEN [] ELSE
                   {_type_reasons_sql("builtin_commercial", "commercial", False)} END,
               CASE WHEN configured THEN [] ELSE
                   {_type_reasons_sql("builtin_transactional", "transactional", False)} END,
               [CASE WHEN promo_term IS NOT NULL THEN 'promotional vocabulary: "' || promo_term
                   || '"' END,
               CASE WHEN discount_code IS NOT NULL THEN 'discount code: "' || discount_code
                   || '"' END,
               CASE WHEN pricing_link IS NOT NULL THEN 'pricing/checkout link: '
                   || pricing_link END,
               CASE WHEN reengagement_term IS NOT NULL THEN 're-engagement wording: "'
                   || reengagement_term || '"' END,
               CASE WHEN opt_out_link IS NOT NULL THEN 'opt-out link (a list-mail signal, '
                   || 'not commercial content): "' || opt_out_link || '"' END,
               CASE WHEN transactional_term IS NOT NULL THEN 'transactional content: "'
                   || transactional_term || '"' END,
               CASE WHEN (type_commercial OR promo_content) AND promo_in_subject
                    THEN 'commercial content in the subject line (16 CFR 316.3(a)(2)(i))' END,
               CASE WHEN (type_commercial OR promo_content) AND transactional_term IS NOT NULL
                   AND NOT transactional_first
                    THEN 'transactional content is not at the beginning of the body '
                         || '(16 CFR 316.3(a)(2)(ii))' END,
               CASE WHEN policy = 'auto' AND NOT type_commercial AND NOT type_transactional
                   AND NOT promo_content AND opt_out_link IS NOT NULL
                    THEN CASE WHEN transactional_first
                         THEN 'opt-out link alone, and the body opens with transactional '
                              || 'content: transactional'
                         ELSE 'opt-out link alone, without transactional content at the '
                              || 'beginning of the body: a human decides the primary purpose'
                         END END,
               CASE WHEN policy <> 'commercial' AND NOT type_commercial AND NOT promo_content
                   AND opt_out_link IS NULL
                    THEN 'no commercial signals' END]
           ]), lambda r: r IS NOT NULL) AS reasons
    FROM flagged
    """


def classification_policy_columns(rules: ClassificationRules) -> dict[str, tuple[str, list[str]]]:
    """The mailbox policies (address, policy) for `classification_sql`, as the columns of a
    temp table (`store.temp_tables.create_temp_table`)."""
    items = sorted(rules.mailbox_policies.items())
    return {
        "address": ("VARCHAR", [a for a, _ in items]),
        "policy": ("VARCHAR", [p for _, p in items]),
    }


def classification_params(rules: ClassificationRules) -> dict[str, Any]:
    return {
        "commercial_categories": [fold_type(c) for c in rules.commercial_categories],
        "transactional_categories": [fold_type(c) for c in rules.transactional_categories],
        "default_policy": rules.default_policy,
    }


def classify_relation(
    con: duckdb.DuckDBPyConnection, source: str, rules: ClassificationRules
) -> pa.Table:
    """Label every row of relation `source` as an Arrow table (id, classification, reasons)."""
    name = "_auditkit_classification_policy"
    create_temp_table(con, name, classification_policy_columns(rules))
    try:
        return con.sql(
            classification_sql(source, name), params=classification_params(rules)
        ).to_arrow_table()
    finally:
        drop_temp_table(con, name)


def classify_message(
    rules: ClassificationRules,
    *,
    subject: str | None,
    body_markdown: str | None,
    tags: str | None = None,
    mailbox_address: str | None = None,
    metadata: str | None = None,
) -> Classification:
    """One message through the same SQL rules (for tooling and tests); `tags` and `metadata`
    are JSON text."""
    row = {
        "id": "message",
        "subject": subject,
        "body_markdown": body_markdown,
        "tags": tags,
        "metadata": metadata,
        "mailbox_address": mailbox_address.lower() if mailbox_address else None,
    }
    con = duckdb.connect(":memory:")
    try:
        create_temp_table(
            con, "_auditkit_one_message", {k: ("VARCHAR", [v]) for k, v in row.items()}
        )
        result = classify_relation(con, "_auditkit_one_message", rules).to_pylist()[0]
    finally:
        con.close()
    return Classification(result["classification"], tuple(result["reasons"]))
