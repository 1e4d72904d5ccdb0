"""Infer the audit-log vocabulary from a store's own records (see `auditkit.vocabulary`).

Each meaning not configured is looked for where the records say it must be: the entry on
each outbound email at its created_at (sent) or its approved_at (approved), the other
entries on rejected and cancelled mail, entries on mailboxes whose metadata names an
oversight mode, entries on keys at their creation or holding scopes. Where one action
carries two meanings, the metadata field that tells them apart is found too. Support counts
and a confidence are kept; with no evidence either way a known name is used, else the
meaning stays unknown. Inference reads at most `INFERENCE_SAMPLE` of the newest outbound
emails, so its cost does not grow with the store; it only reads (temp tables).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import duckdb

from auditkit.multimail_terms import OVERSIGHT_MODES
from auditkit.vocabulary import (
    EMAIL_MEANINGS,
    KEY_MEANINGS,
    KNOWN_NAMES,
    MEANINGS,
    Matcher,
    MeaningMapping,
    Vocabulary,
    sql_literal,
)

# An audit entry "at" an email's created_at or approved_at: the two clocks are the same
# service's, but an entry may be written a moment after the field it matches.
TIME_TOLERANCE_SECONDS = 2
INFERENCE_SAMPLE = 20_000
HIGH_SHARE, MEDIUM_SHARE = 0.9, 0.5
# A discriminating metadata field: one value on (nearly) every positive entry, rare on the rest.
DISCRIMINATOR_SHARE = 0.95


def resolve_vocabulary(
    con: duckdb.DuckDBPyConnection, configured: Mapping[str, Sequence[Matcher]] | None = None
) -> Vocabulary:
    """The mapping in force: configured meanings as given, the rest inferred from the store."""
    return _Inference(con, {k: tuple(v) for k, v in (configured or {}).items()}).run()


def _share_confidence(support: int, eligible: int) -> Literal["high", "medium"] | None:
    if not eligible or not support:
        return None
    share = support / eligible
    if share >= HIGH_SHARE and support >= 3:
        return "high"
    return "medium" if share >= MEDIUM_SHARE else None


class _Inference:
    """One pass of inference over a store; fills `self.mappings` meaning by meaning, in an
    order where each step can exclude what earlier steps explained."""

    def __init__(self, con: duckdb.DuckDBPyConnection, configured: dict[str, tuple[Matcher, ...]]):
        self.con = con
        self.configured = configured
        self.mappings: dict[str, MeaningMapping] = {}
        self.actions_seen = {
            r[0]
            for r in con.sql(
                "SELECT DISTINCT action FROM multimail_audit_log WHERE action IS NOT NULL"
            ).fetchall()
        }

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.sql(sql).fetchall()

    def predicate(self, *meanings: str) -> str:
        parts = [
            m.sql()
            for meaning in meanings
            for m in self.mappings.get(meaning, MeaningMapping(meaning)).matchers
        ]
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"

    def run(self) -> Vocabulary:
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE ak_vocab_emails AS
            SELECT id, created_at, approved_at, status, lower(coalesce(decision, '')) AS decision
            FROM multimail_emails WHERE direction = 'outbound'
            ORDER BY created_at DESC NULLS LAST, id LIMIT {INFERENCE_SAMPLE}""")
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE ak_vocab_entries AS
            SELECT l.id, l.action, l.metadata, l.created_at, e.id AS email_id,
                   e.created_at AS email_created_at, e.approved_at, e.status, e.decision
            FROM multimail_audit_log l JOIN ak_vocab_emails e ON e.id = l.resource_id""")
        try:
            self._email_sent()
            self._approved_and_rejected()
            self._stopped("cancelled", "status = 'cancelled'", "cancelled emails")
            self._mode_changed()
            self._keys()
            self._suppression_added()
            unexplained = self._unexplained()
        finally:
            self.con.execute("DROP TABLE IF EXISTS temp.ak_vocab_entries")
            self.con.execute("DROP TABLE IF EXISTS temp.ak_vocab_emails")
        return Vocabulary(mappings={m: self.mappings[m] for m in MEANINGS}, unexplained=unexplained)

    # -- helpers ----------------------------------------------------------------------------
    def settle(
        self,
        meaning: str,
        candidates: Sequence[tuple[Any, ...]],
        eligible: int,
        basis: str,
        build: Any = None,
    ) -> MeaningMapping:
        """Record `meaning`: configured if it is, else the best-supported candidate (rows of
        (action, support) ordered best first), else a recognised name, else unknown.
        `basis` names what was counted ("approved emails with audit entries")."""
        if meaning in self.configured:
            mapping = MeaningMapping(meaning, self.configured[meaning], "configured")
        elif candidates and (confidence := _share_confidence(candidates[0][1], eligible)):
            action, support = candidates[0][0], candidates[0][1]
            matchers = build(action) if build else (Matcher(action),)
            mapping = MeaningMapping(
                meaning, matchers, "inferred", support, eligible, basis, confidence
            )
        else:
            mapping = self.by_name(meaning, self.no_evidence(candidates, eligible, basis))
        self.mappings[meaning] = mapping
        return mapping

    def by_name(self, meaning: str, why: str) -> MeaningMapping:
        names = [n for n in KNOWN_NAMES[meaning] if n in self.actions_seen]
        if names:
            return MeaningMapping(
                meaning,
                tuple(Matcher(n) for n in names),
                "recognised_name",
                basis=f"{why}; the log uses the known name {names[0]}",
                confidence="low",
            )
        return MeaningMapping(meaning, basis=why)

    @staticmethod
    def no_evidence(candidates: Sequence[tuple[Any, ...]], eligible: int, basis: str) -> str:
        if not eligible:
            return f"the log holds no {basis}"
        if not candidates:
            return f"none of the entries on {eligible} {basis} fits"
        action, support = candidates[0][0], candidates[0][1]
        return f"best candidate {action} fits only {support} of {eligible} {basis}"

    def count(
        self, condition: str, table: str = "ak_vocab_entries", unit: str = "DISTINCT email_id"
    ) -> int:
        """How many `unit`s of `table` match SQL `condition`: the evidence looked at."""
        return self.rows(f"SELECT count({unit}) FROM {table} WHERE {condition}")[0][0]

    def ranked(
        self, condition: str, table: str = "ak_vocab_entries", unit: str = "DISTINCT email_id"
    ) -> list[tuple[Any, ...]]:
        """(action, support) for the entries matching `condition`, best supported first
        (ties by name, so the result never depends on scan order)."""
        return self.rows(f"""
            SELECT action, count({unit}) AS n FROM {table} WHERE {condition}
            GROUP BY action ORDER BY n DESC, action""")

    def discriminator(
        self, action: str, positive: str, negative: str
    ) -> tuple[tuple[str, ...], str, str | None] | None:
        """A metadata field of `action`'s entries whose value is the same on (nearly) every
        entry matching SQL condition `positive` and different on those matching `negative`:
        (path, positive value, the negatives' common value or None). Top-level and one
        nested level of scalars are tried; ties go to the shorter, then alphabetical path."""
        sample = f"""
            SELECT metadata FROM ak_vocab_entries
            WHERE action = {sql_literal(action)} AND ({{cond}}) ORDER BY id LIMIT 5000"""
        pos = [_scalars(m) for (m,) in self.rows(sample.format(cond=positive))]
        neg = [_scalars(m) for (m,) in self.rows(sample.format(cond=negative))]
        if not pos or not neg:
            return None
        for path in sorted({p for d in pos for p in d}, key=lambda p: (len(p), p)):
            value, count = Counter(d.get(path) for d in pos).most_common(1)[0]
            if value is None or count / len(pos) < DISCRIMINATOR_SHARE:
                continue
            hits = sum(1 for d in neg if d.get(path) == value)
            if hits / len(neg) > 1 - DISCRIMINATOR_SHARE:
                continue
            other, other_count = Counter(d.get(path) for d in neg).most_common(1)[0]
            common = other is not None and other_count / len(neg) >= HIGH_SHARE
            return path, value, other if common else None
        return None

    # -- the meanings -----------------------------------------------------------------------
    def _email_sent(self) -> None:
        at_creation = (
            f"abs(epoch(created_at) - epoch(email_created_at)) <= {TIME_TOLERANCE_SECONDS}"
        )
        eligible, candidates = self.count("TRUE"), self.ranked(at_creation)

        def build(action: str) -> tuple[Matcher, ...]:
            # The same action later in an email's life (a generic "email event") needs a
            # metadata field to tell the send apart.
            later = self.rows(f"""
                SELECT count(*) FILTER (WHERE NOT ({at_creation})), count(*)
                FROM ak_vocab_entries WHERE action = {sql_literal(action)}""")[0]
            if later[0] and later[0] / later[1] > 1 - HIGH_SHARE:
                found = self.discriminator(action, at_creation, f"NOT ({at_creation})")
                if found:
                    return (Matcher(action, found[0], found[1]),)
            return (Matcher(action),)

        self.settle("email_sent", candidates, eligible, "outbound emails with audit entries", build)

    def _approved_and_rejected(self) -> None:
        sent = self.predicate("email_sent")
        at_approval = (
            f"approved_at IS NOT NULL AND abs(epoch(created_at) - epoch(approved_at)) <= "
            f"{TIME_TOLERANCE_SECONDS} AND NOT {sent}"
        )
        rejected_mail = "(status = 'rejected' OR decision IN ('rejected', 'reject'))"
        eligible, candidates = self.count("approved_at IS NOT NULL"), self.ranked(at_approval)
        shared: dict[str, Matcher] = {}

        def build(action: str) -> tuple[Matcher, ...]:
            if not self.count(f"action = {sql_literal(action)} AND {rejected_mail}"):
                return (Matcher(action),)
            # One action for both decisions: the field that says which.
            found = self.discriminator(action, at_approval, rejected_mail)
            if not found:
                return (Matcher(action),)
            path, value, negative = found
            if negative is not None:
                shared["rejected"] = Matcher(action, path, negative)
            return (Matcher(action, path, value),)

        self.settle("approved", candidates, eligible, "approved emails with audit entries", build)
        if "rejected" in shared and "rejected" not in self.configured:
            matcher = shared["rejected"]
            support = self.count(f"{rejected_mail} AND {matcher.sql()}")
            total = self.count(rejected_mail)
            self.settle(
                "rejected",
                [(matcher.action, support)],
                total,
                "rejected emails with audit entries",
                lambda _a: (matcher,),
            )
        else:
            self._stopped("rejected", rejected_mail, "rejected emails")

    def _stopped(self, meaning: str, condition: str, basis: str) -> None:
        """Rejection or cancellation: the entries on mail in that state that no earlier
        meaning explains."""
        explained = self.predicate(*[m for m in EMAIL_MEANINGS if m in self.mappings])
        self.settle(
            meaning,
            self.ranked(f"{condition} AND NOT {explained}"),
            self.count(condition),
            f"{basis} with audit entries",
        )

    def _mode_changed(self) -> None:
        if "mode_changed" in self.configured:
            self.settle("mode_changed", [], 0, "")
            return
        entries = self.rows("""
            SELECT l.action, l.metadata FROM multimail_audit_log l
            WHERE l.resource_id IN (SELECT id FROM multimail_mailboxes)
               OR lower(coalesce(l.resource_type, '')) LIKE '%mailbox%'
            ORDER BY l.created_at, l.id LIMIT 50000""")
        by_action: dict[str, list[list[tuple[str, ...]]]] = {}
        for action, metadata in entries:
            by_action.setdefault(action, []).append(_mode_paths(metadata))
        scored = sorted(
            ((a, sum(1 for p in paths if p)) for a, paths in by_action.items()),
            key=lambda c: (-c[1], c[0]),
        )
        candidates = [c for c in scored if c[1]]

        def build(action: str) -> tuple[Matcher, ...]:
            paths = by_action[action]
            if all(paths):
                return (Matcher(action),)
            # A generic update: the change is a mode change when the mode's field is there.
            containers = Counter(p[0] for p in paths if p)
            container = containers.most_common(1)[0][0]
            return (Matcher(action, container),)

        # Support: the chosen action's entries naming a mode, of all mailbox entries that do.
        eligible = sum(n for _, n in candidates)
        self.settle(
            "mode_changed",
            candidates,
            eligible,
            "mailbox entries whose metadata names an oversight mode",
            build,
        )

    def _keys(self) -> None:
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE ak_vocab_key_entries AS
            SELECT l.id, l.action, l.metadata, l.created_at, k.created_at AS key_created_at,
                   k.is_active
            FROM multimail_audit_log l JOIN multimail_api_keys k ON k.id = l.resource_id""")
        try:
            at_creation = (
                f"abs(epoch(created_at) - epoch(key_created_at)) <= {TIME_TOLERANCE_SECONDS}"
            )
            self.settle_entries("key_created", at_creation, "API key entries at a key's creation")
            has_scopes = (
                "(json_extract(metadata, '$.scopes') IS NOT NULL "
                "OR json_extract(metadata, '$.changes.scopes') IS NOT NULL)"
            )
            self.settle_entries(
                "key_updated",
                f"NOT {self.predicate('key_created')} AND {has_scopes}",
                "later API key entries holding scopes",
            )
            explained = self.predicate("key_created", "key_updated")
            self.settle_entries(
                "key_revoked",
                f"NOT coalesce(is_active, true) AND NOT {explained}",
                "other entries on inactive API keys",
            )
        finally:
            self.con.execute("DROP TABLE IF EXISTS temp.ak_vocab_key_entries")

    def settle_entries(self, meaning: str, condition: str, basis: str) -> None:
        """Settle a key meaning from the entries of `ak_vocab_key_entries` matching SQL
        `condition`: each is one piece of evidence for its action."""
        table, unit = "ak_vocab_key_entries", "*"
        self.settle(
            meaning, self.ranked(condition, table, unit), self.count(condition, table, unit), basis
        )

    def _suppression_added(self) -> None:
        rows = self.rows(f"""
            SELECT l.action, count(*) AS n FROM multimail_audit_log l
            JOIN multimail_suppressions s ON s.id = l.resource_id
            WHERE abs(epoch(l.created_at) - epoch(s.created_at)) <= {TIME_TOLERANCE_SECONDS}
            GROUP BY l.action ORDER BY n DESC, l.action""")
        eligible = self.rows("""
            SELECT count(DISTINCT s.id) FROM multimail_audit_log l
            JOIN multimail_suppressions s ON s.id = l.resource_id""")[0][0]
        self.settle(
            "suppression_added",
            rows,
            eligible,
            "suppressions with audit entries (entry at its creation)",
        )

    def _unexplained(self) -> dict[str, dict[str, int]]:
        """Entries on emails (the sampled ones), mailboxes and keys that no known meaning
        matches, by action."""
        families = {
            "email": ("SELECT id FROM ak_vocab_emails", EMAIL_MEANINGS),
            "mailbox": ("SELECT id FROM multimail_mailboxes", ("mode_changed",)),
            "api_key": ("SELECT id FROM multimail_api_keys", KEY_MEANINGS),
        }
        result: dict[str, dict[str, int]] = {}
        for family, (ids, meanings) in families.items():
            rows = self.rows(f"""
                SELECT action, count(*) FROM multimail_audit_log
                WHERE resource_id IN ({ids}) AND NOT {self.predicate(*meanings)}
                  AND action IS NOT NULL
                GROUP BY action ORDER BY action""")
            if rows:
                result[family] = {a: n for a, n in rows}
        return result


def _scalars(metadata: Any) -> dict[tuple[str, ...], str]:
    """Scalar metadata values at the top level and one level down, as lower-case text."""
    data = _as_object(metadata)
    found: dict[tuple[str, ...], str] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            for inner, leaf in value.items():
                if _is_scalar(leaf):
                    found[(key, str(inner))] = _text(leaf)
        elif _is_scalar(value):
            found[(key,)] = _text(value)
    return found


def _mode_paths(metadata: Any) -> list[tuple[str, ...]]:
    """Paths (keys only, list positions dropped) at which metadata names an oversight mode."""
    found: list[tuple[str, ...]] = []

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(inner, (*path, str(key)))
        elif isinstance(value, list):
            for inner in value:
                walk(inner, path)
        elif isinstance(value, str) and value in OVERSIGHT_MODES and path:
            found.append(path)

    walk(_as_object(metadata), ())
    # The container of the mode: `changes.oversight_mode` for {from,to} and [old, new] alike.
    return sorted(
        {
            p[:-1] if p[-1] in ("from", "to", "old", "new", "before", "after") and len(p) > 1 else p
            for p in found
        }
    )


def _as_object(metadata: Any) -> Mapping[str, Any]:
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return {}
    return metadata if isinstance(metadata, Mapping) else {}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, str) and len(value) > 200
    )


def _text(value: Any) -> str:
    # Booleans as JSON spells them, so they compare with json_extract_string's text.
    return json.dumps(value) if isinstance(value, bool) else str(value).lower()
