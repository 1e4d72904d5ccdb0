"""The `[controls]` and `[mailboxes."<address>"]` settings, validated, for the controls.

`ControlSettings.from_settings` interprets the raw TOML sections (raising ConfigError
naming the key): reviewers, the pending-approval limit, the audit-log meanings configured
in `[controls.audit_actions]`, the suppression reasons that are delivery failures, and
each mailbox's policy. `vocabulary_for` resolves the audit-log vocabulary a check or pack
reads the store with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb

from auditkit.config import Settings
from auditkit.config_keys import reject_unknown, table_path
from auditkit.errors import ConfigError
from auditkit.vocabulary import MEANINGS, Matcher, Vocabulary, parse_configured
from auditkit.vocabulary_inference import resolve_vocabulary

DEFAULT_PENDING_LIMIT_HOURS = 72
# Suppression reasons (matched as lower-case substrings) that record a failed delivery, not a
# recipient's request: CS-003 does not count them as opt-outs. MultiMail documents no reason
# strings; the sandbox uses hard_bounce, unsubscribe and spam_complaint.
DEFAULT_DELIVERY_FAILURE_REASONS = ("bounce",)
# Suppression reasons (lower-case substrings, read after the failure reasons) that record a
# recipient's request to stop: MultiMail says its reasons cover "bounces, spam complaints and
# manual unsubscribes". A reason that is neither (or none at all) is not guessed at: CS-003
# makes a late send to that address a review finding, not an open one.
DEFAULT_OPT_OUT_REASONS = (
    "unsub",
    "opt",
    "complain",
    "spam",
    "abuse",
    "manual",
    "remov",
    "stop",
    "request",
)
# The keys of [controls] and of each [mailboxes."<address>"] (`classification` is read by
# auditkit.classify); anything else is a ConfigError, since a typo would silently change results.
CONTROLS_KEYS = (
    "reviewers",
    "pending_limit_hours",
    "audit_actions",
    "delivery_failure_reasons",
    "opt_out_reasons",
)
MAILBOX_KEYS = ("classification", "require_conversation_link", "appends_postal_address")


@dataclass(frozen=True)
class MailboxPolicy:
    address: str
    require_conversation_link: bool = False
    appends_postal_address: bool = False


@dataclass(frozen=True)
class ControlSettings:
    reviewers: tuple[str, ...] = ()
    pending_limit_hours: float = DEFAULT_PENDING_LIMIT_HOURS
    # Meanings named in `[controls.audit_actions]`; the rest are inferred (auditkit.vocabulary).
    audit_actions: Mapping[str, tuple[Matcher, ...]] = field(default_factory=dict)
    mailboxes: Mapping[str, MailboxPolicy] = field(default_factory=dict)
    delivery_failure_reasons: tuple[str, ...] = DEFAULT_DELIVERY_FAILURE_REASONS
    opt_out_reasons: tuple[str, ...] = DEFAULT_OPT_OUT_REASONS

    @classmethod
    def from_settings(cls, settings: Settings) -> ControlSettings:
        section = settings.controls or {}
        if not isinstance(section, Mapping):
            raise ConfigError("controls must be a table ([controls])")
        reject_unknown(section, CONTROLS_KEYS, "controls")
        actions_section = section.get("audit_actions")
        if isinstance(actions_section, Mapping):
            # The meanings are the known keys (vocabulary.parse_configured checks the rest).
            reject_unknown(actions_section, MEANINGS, "controls.audit_actions", kind="meaning")

        reviewers = section.get("reviewers", [])
        if not isinstance(reviewers, list) or not all(
            isinstance(r, str) and r.strip() for r in reviewers
        ):
            raise ConfigError(
                f"controls.reviewers must be a list of non-empty strings, got {reviewers!r}"
            )

        limit = section.get("pending_limit_hours", DEFAULT_PENDING_LIMIT_HOURS)
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit <= 0:
            raise ConfigError(
                f"controls.pending_limit_hours must be a positive number of hours, got {limit!r}"
            )

        actions = parse_configured(actions_section)

        return cls(
            reviewers=tuple(r.strip().lower() for r in reviewers),
            pending_limit_hours=float(limit),
            audit_actions=actions,
            mailboxes=_mailbox_policies(settings.mailboxes or {}),
            delivery_failure_reasons=_reasons(
                section, "delivery_failure_reasons", DEFAULT_DELIVERY_FAILURE_REASONS
            ),
            opt_out_reasons=_reasons(section, "opt_out_reasons", DEFAULT_OPT_OUT_REASONS),
        )


def _reasons(section: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A `[controls]` list of suppression-reason substrings, lower-cased."""
    reasons = section.get(key, list(default))
    if not isinstance(reasons, list) or not all(isinstance(r, str) and r.strip() for r in reasons):
        raise ConfigError(f"controls.{key} must be a list of non-empty strings, got {reasons!r}")
    return tuple(r.strip().lower() for r in reasons)


def vocabulary_for(con: duckdb.DuckDBPyConnection, settings: Settings) -> Vocabulary:
    """The audit-log vocabulary a check or pack reads the store with: the configured
    meanings, the rest inferred from the store. Resolve it once per command and pass it to
    `run_controls` and `write_pack`: inference reads the store (~0.2 s on a million emails)."""
    return resolve_vocabulary(con, ControlSettings.from_settings(settings).audit_actions)


def _mailbox_policies(section: Mapping[str, Any]) -> dict[str, MailboxPolicy]:
    if not isinstance(section, Mapping):
        raise ConfigError('mailboxes must be a table of tables ([mailboxes."<address>"])')
    policies: dict[str, MailboxPolicy] = {}
    for address, policy in section.items():
        where = table_path("mailboxes", str(address))
        if not isinstance(policy, Mapping):
            raise ConfigError(f"{where} must be a table")
        reject_unknown(policy, MAILBOX_KEYS, where, kind="mailbox setting")
        flags = {}
        for key in ("require_conversation_link", "appends_postal_address"):
            value = policy.get(key, False)
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be true or false, got {value!r}")
            flags[key] = value
        normalised = str(address).strip().lower()
        policies[normalised] = MailboxPolicy(normalised, **flags)
    return policies
