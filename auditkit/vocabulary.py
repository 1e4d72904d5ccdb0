"""The audit-log vocabulary: which entries mean "email sent", "approved", "mode changed" and so on.

MultiMail documents no audit action names (multimail-api.md §4.8), so no control may assume
them. Each meaning the controls use is a list of matchers (an action name alone, or an
action plus a metadata path that must hold a value or merely be present), taken from the
first source that establishes it:

1. **configured**: `[controls.audit_actions]`, which always wins;
2. **inferred** from the store's own records, with support counts:
   - `email_sent`: the entry on an outbound email at the email's created_at;
   - `approved`: the entry on an email at its approved_at;
   - `rejected` / `cancelled`: the entries on rejected / cancelled mail that mean neither;
   - `mode_changed`: entries on mailboxes whose metadata names an oversight mode;
   - `key_created`: the entry on an API key at its created_at; `key_updated`: other entries
     on keys whose metadata holds scopes; `key_revoked`: other entries on keys now inactive;
   - `suppression_added`: the entry on a suppression at its created_at;
   where one action carries two meanings (a single "decide" action for approve and reject,
   a generic "mailbox updated"), a metadata field that tells them apart is found too;
3. **recognised name**: when the records hold no evidence either way, an action whose name
   auditkit's earlier releases or MultiMail's webhook events use for that meaning;
4. otherwise **unknown**, and the controls that need the meaning report `inconclusive`.

This module holds the model (meanings, matchers, the mapping in force and the SQL it
yields) and the configuration; `auditkit.vocabulary_inference` reads a store to infer the
rest. The result is plain data shown by `auditkit vocabulary`, the check output and the
evidence pack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from auditkit.errors import ConfigError
from auditkit.multimail_terms import OVERSIGHT_MODES

# What each meaning is, as the vocabulary listing explains it.
MEANINGS: dict[str, str] = {
    "email_sent": "an email was submitted for sending (its actor is the sending key)",
    "approved": "a reviewer approved an email",
    "rejected": "a reviewer rejected an email",
    "cancelled": "an email was cancelled before it was sent",
    "mode_changed": "a mailbox's oversight mode changed",
    "key_created": "an API key was created (with its scopes)",
    "key_updated": "an API key's scopes changed",
    "key_revoked": "an API key was revoked",
    "suppression_added": "an address was added to the suppression list",
}
EMAIL_MEANINGS = ("email_sent", "approved", "rejected", "cancelled")
KEY_MEANINGS = ("key_created", "key_updated", "key_revoked")

# Names used when the records give no evidence: the sandbox names of auditkit's earlier
# releases and MultiMail's documented webhook event names (multimail-api.md §4.14). Never
# names invented for a test dialect.
KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    "email_sent": ("email.sent", "message.sent"),
    "approved": ("oversight.approved",),
    "rejected": ("oversight.rejected",),
    "cancelled": ("email.cancelled",),
    "mode_changed": ("mailbox.oversight_mode_changed",),
    "key_created": ("api_key.created",),
    "key_updated": ("api_key.updated",),
    "key_revoked": ("api_key.revoked",),
    "suppression_added": ("suppression.added",),
}

# Where real logs put the new and the old mode of a change: a field, or a `changes` object
# holding [old, new] or {from, to}. Only values that are oversight modes are taken.
_MODE_CONTAINERS = ("oversight_mode", "mode")
NEW_MODE_PATHS: tuple[str, ...] = (
    "$.to",
    "$.new_mode",
    "$.to_mode",
    "$.new",
    "$.oversight_mode",
    "$.mode",
    *(f"$.changes.{c}{s}" for c in _MODE_CONTAINERS for s in ("[1]", ".to", ".new", ".after")),
    "$.after.oversight_mode",
    "$.new_values.oversight_mode",
)
OLD_MODE_PATHS: tuple[str, ...] = (
    "$.from",
    "$.old_mode",
    "$.from_mode",
    "$.old",
    "$.previous_mode",
    *(f"$.changes.{c}{s}" for c in _MODE_CONTAINERS for s in ("[0]", ".from", ".old", ".before")),
    "$.before.oversight_mode",
    "$.old_values.oversight_mode",
)
# Who changed a mode, where the log says so in metadata.
CHANGED_BY_PATHS = ("$.changed_by", "$.actor", "$.user", "$.by", "$.operator")

Source = Literal["configured", "inferred", "recognised_name", "unknown"]


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def json_path(path: Sequence[str]) -> str:
    """`('changes', 'oversight_mode')` → `$."changes"."oversight_mode"` (keys quoted)."""
    return "$" + "".join('."' + p.replace('"', '\\"') + '"' for p in path)


@dataclass(frozen=True)
class Matcher:
    """Entries with this action and, when `path` is set, that metadata path holding `value`
    (compared case-insensitively) or, with `value` None, merely present."""

    action: str
    path: tuple[str, ...] = ()
    value: str | None = None

    def sql(self, alias: str = "") -> str:
        """SQL true for matching entries; `alias` qualifies the columns (`l.`)."""
        condition = f"{alias}action = {sql_literal(self.action)}"
        if self.path:
            where = sql_literal(json_path(self.path))
            if self.value is None:
                condition += f" AND json_extract({alias}metadata, {where}) IS NOT NULL"
            else:
                condition += (
                    f" AND lower(json_extract_string({alias}metadata, {where})) = "
                    f"{sql_literal(self.value.lower())}"
                )
        return f"({condition})"

    def describe(self) -> str:
        if not self.path:
            return self.action
        dotted = ".".join(self.path)
        if self.value is None:
            return f"{self.action} where metadata.{dotted} is present"
        return f"{self.action} where metadata.{dotted} = {self.value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "metadata_path": ".".join(self.path) or None,
            "metadata_value": self.value,
        }


@dataclass(frozen=True)
class MeaningMapping:
    """How one meaning is recognised, where that came from, and how well it is supported."""

    meaning: str
    matchers: tuple[Matcher, ...] = ()
    source: Source = "unknown"
    support: int = 0  # records that agree with the mapping (inferred only)
    eligible: int = 0  # records the inference looked at
    basis: str = ""  # one line: what was counted, or why nothing could be
    confidence: Literal["high", "medium", "low"] | None = None

    @property
    def known(self) -> bool:
        return bool(self.matchers)

    def describe(self) -> str:
        return " or ".join(m.describe() for m in self.matchers) if self.matchers else "(unknown)"

    def provenance(self) -> str:
        """'configured', 'inferred from 2368 of 2370 approved emails', or 'unknown: …'."""
        if self.source == "configured":
            return "configured in [controls.audit_actions]"
        if self.source == "inferred":
            return (
                f"inferred from {self.support} of {self.eligible} {self.basis} ({self.confidence})"
            )
        if self.source == "recognised_name":
            return f"recognised name ({self.basis})"
        return f"unknown: {self.basis}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "meaning": self.meaning,
            "matchers": [m.to_dict() for m in self.matchers],
            "description": self.describe(),
            "source": self.source,
            "support": self.support,
            "eligible": self.eligible,
            "confidence": self.confidence,
            "provenance": self.provenance(),
        }


@dataclass(frozen=True)
class Vocabulary:
    """The mapping in force for one store and configuration."""

    mappings: Mapping[str, MeaningMapping]
    # Entries on emails / mailboxes / keys that no known meaning explains, by action.
    unexplained: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def __getitem__(self, meaning: str) -> MeaningMapping:
        return self.mappings[meaning]

    def known(self, meaning: str) -> bool:
        return self.mappings[meaning].known

    def predicate(self, meaning: str, alias: str = "") -> str:
        """SQL that is true for the entries of `meaning` (FALSE when it is unknown).
        `alias` qualifies the columns (`l.` for a joined audit log)."""
        matchers = self.mappings[meaning].matchers
        if not matchers:
            return "FALSE"
        return "(" + " OR ".join(m.sql(alias) for m in matchers) + ")"

    def new_mode_sql(self, metadata: str = "metadata") -> str:
        return _mode_sql(metadata, NEW_MODE_PATHS)

    def old_mode_sql(self, metadata: str = "metadata") -> str:
        return _mode_sql(metadata, OLD_MODE_PATHS)

    def missing(self, meaning: str) -> str | None:
        """Why a control cannot rely on `meaning`, in one line; None when it can.

        Email meanings must be established: every gated email leaves entries. A mode or key
        meaning that is unknown does not block a control when the log holds no entry on
        mailboxes (keys) left unexplained: then there is simply no change on record.
        """
        mapping = self.mappings[meaning]
        if mapping.known:
            return None
        family = _family(meaning)
        if family != "email" and not self.unexplained.get(family):
            return None
        return (
            f"the audit-log meaning '{meaning}' ({MEANINGS[meaning]}) could not be established "
            f'({mapping.basis}); name it with [controls.audit_actions] {meaning} = "<action>" '
            "(see `auditkit vocabulary`)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "meanings": {m: self.mappings[m].to_dict() for m in MEANINGS},
            "unexplained": {k: dict(v) for k, v in sorted(self.unexplained.items())},
        }


def _family(meaning: str) -> str:
    if meaning in EMAIL_MEANINGS:
        return "email"
    if meaning in KEY_MEANINGS:
        return "api_key"
    return "mailbox" if meaning == "mode_changed" else "suppression"


def _mode_sql(metadata: str, paths: Iterable[str]) -> str:
    """The first of `paths` in `metadata` that holds an oversight mode (NULL if none)."""
    listed = ", ".join(sql_literal(p) for p in paths)
    modes = ", ".join(sql_literal(m) for m in OVERSIGHT_MODES)
    return f"list_filter(json_extract_string({metadata}, [{listed}]), lambda v: v IN ({modes}))[1]"


class SymbolicVocabulary(Vocabulary):
    """Renders each meaning as `meaning('approved')`: the controls' SQL as documentation
    (`auditkit controls --json`), independent of any one store's vocabulary."""

    def __init__(self) -> None:
        super().__init__(mappings={m: MeaningMapping(m) for m in MEANINGS})

    def predicate(self, meaning: str, alias: str = "") -> str:
        return f"{alias}meaning({sql_literal(meaning)})"

    def new_mode_sql(self, metadata: str = "metadata") -> str:
        return f"new_mode({metadata})"

    def old_mode_sql(self, metadata: str = "metadata") -> str:
        return f"old_mode({metadata})"


SYMBOLIC = SymbolicVocabulary()


# -- configuration --------------------------------------------------------------------------


def parse_configured(section: Any) -> dict[str, tuple[Matcher, ...]]:
    """`[controls.audit_actions]`: each meaning is an action name, a table
    `{action = "…", metadata = {"path.to.field" = "value"}}` or `{action = "…", has = "path"}`,
    or a list of those. Raises ConfigError naming the key."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError("controls.audit_actions must be a table ([controls.audit_actions])")
    configured: dict[str, tuple[Matcher, ...]] = {}
    for meaning, value in section.items():
        where = f"controls.audit_actions.{meaning}"
        if meaning not in MEANINGS:
            raise ConfigError(f"{where} is unknown; known meanings: {', '.join(sorted(MEANINGS))}")
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ConfigError(f"{where} must name at least one action")
        configured[meaning] = tuple(_configured_matcher(where, item) for item in items)
    return configured


def _configured_matcher(where: str, item: Any) -> Matcher:
    if isinstance(item, str):
        if not item.strip():
            raise ConfigError(f"{where} must be a non-empty action name, got {item!r}")
        return Matcher(item.strip())
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be an action name or a table, got {item!r}")
    unknown = sorted(set(item) - {"action", "metadata", "has"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; use action, metadata or has")
    action = item.get("action")
    if not isinstance(action, str) or not action.strip():
        raise ConfigError(f"{where}.action must be a non-empty action name, got {action!r}")
    metadata, has = item.get("metadata"), item.get("has")
    if metadata is not None and has is not None:
        raise ConfigError(f"{where}: give metadata or has, not both")
    if has is not None:
        if not isinstance(has, str) or not has.strip():
            raise ConfigError(f"{where}.has must be a metadata path like 'changes.oversight_mode'")
        return Matcher(action.strip(), tuple(has.strip().split(".")))
    if metadata is not None:
        if not isinstance(metadata, Mapping) or len(metadata) != 1:
            raise ConfigError(
                f'{where}.metadata must be one path and value, e.g. {{"action" = "approve"}}'
            )
        ((path, expected),) = metadata.items()
        if not isinstance(expected, str | int | bool):
            raise ConfigError(f"{where}.metadata.{path} must be a string, number or boolean")
        text = str(expected).lower() if isinstance(expected, bool) else str(expected)
        return Matcher(action.strip(), tuple(str(path).split(".")), text)
    return Matcher(action.strip())
