"""Matching archived messages to harvested outbound emails, and comparing an archived body
with the approved content."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from auditkit.archive.reading import ParsedMessage

if TYPE_CHECKING:  # verification workers import this package: keep DuckDB and Arrow out
    from auditkit.store import Store


@dataclass(frozen=True)
class HarvestedEmail:
    id: str
    to_addresses: tuple[str, ...]
    subject: str | None
    created_at: datetime | None
    delivered_at: datetime | None
    body_markdown: str | None


@dataclass(frozen=True)
class Match:
    method: str  # header | heuristic | ambiguous | none
    email: HarvestedEmail | None = None
    candidates: tuple[str, ...] = ()


def _subject_key(subject: str | None) -> str:
    return " ".join((subject or "").split()).lower()


class EmailIndex:
    """Outbound harvested emails, indexed by id and by (subject, recipients)."""

    def __init__(self, emails: Iterable[HarvestedEmail]) -> None:
        self.by_id: dict[str, HarvestedEmail] = {}
        self.by_subject_recipients: dict[tuple[str, tuple[str, ...]], list[HarvestedEmail]] = {}
        for e in emails:
            self.by_id[e.id] = e
            self.by_subject_recipients.setdefault(
                (_subject_key(e.subject), e.to_addresses), []
            ).append(e)

    @classmethod
    def from_store(cls, store: Store) -> EmailIndex:
        rows = store.query(
            "SELECT id, to_addresses, subject, created_at, delivered_at, body_markdown "
            "FROM multimail_emails "
            "WHERE direction IS DISTINCT FROM 'inbound' ORDER BY id"
        )
        return cls(
            HarvestedEmail(
                r[0], tuple(sorted({a.lower() for a in (r[1] or [])})), r[2], r[3], r[4], r[5]
            )
            for r in rows
        )

    def match(self, msg: ParsedMessage, window: timedelta) -> Match:
        """By MultiMail id in a header, else recipients + subject + send time; never a guess."""
        for candidate_id in (msg.multimail_id, msg.message_id_local_part):
            if candidate_id and candidate_id in self.by_id:
                return Match("header", self.by_id[candidate_id], (candidate_id,))
        if msg.date is None:
            return Match("none")
        found = []
        for e in self.by_subject_recipients.get((_subject_key(msg.subject), msg.to_addresses), []):
            # Sent between creation and delivery (approval can take days), give or take the window.
            start = e.created_at or e.delivered_at
            end = e.delivered_at or e.created_at
            if start is not None and end is not None and start - window <= msg.date <= end + window:
                found.append(e)
        if len(found) == 1:
            return Match("heuristic", found[0], (found[0].id,))
        if len(found) > 1:
            return Match("ambiguous", None, tuple(sorted(e.id for e in found)))
        return Match("none")


# -- body vs approved content ------------------------------------------------------------


def normalise_text(text: str) -> str:
    return " ".join(text.split())


def compare_body(
    archived_text: str | None, approved_markdown: str | None
) -> tuple[bool | None, str | None]:
    """(matches, short diff summary). None when there is nothing to compare."""
    if approved_markdown is None:
        return None, None
    if archived_text is None:
        return None, "archived message has no text/plain part to compare"
    archived, approved = (
        normalise_text(archived_text).split(),
        normalise_text(approved_markdown).split(),
    )
    if archived == approved:
        return True, None
    changes = []
    for tag, a1, a2, b1, b2 in difflib.SequenceMatcher(
        a=approved, b=archived, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            continue
        before, after = " ".join(approved[a1:a2])[:60], " ".join(archived[b1:b2])[:60]
        changes.append(f"{tag} at word {a1}: {before!r} -> {after!r}")
    more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
    summary = (
        f"content changed after approval: {len(changes)} change(s), "
        f"approved {len(approved)} words, "
        f"archived {len(archived)} words; " + "; ".join(changes[:3]) + more
    )
    return False, summary
