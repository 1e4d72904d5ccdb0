"""Render the one sample quarter in other MultiMail "dialects": same facts, other words.

Real MultiMail accounts write their audit log and their mail in dialects auditkit cannot
know in advance (MultiMail documents no action names). This module's one job is to copy a
dataset written by `python -m auditkit.sample` and rewrite how it says things, never what
happened: the same emails at the same times with the same statuses and delivery times, the
same decisions on the same emails at the same times, the same planted violations. Controls
can then be tested on renderings they were not tuned to.

    python -m auditkit.sample_dialects --dialect decide-key --out /tmp/decide-key [--data DIR]
    auditkit sandbox --dialect decide-key        # renders into a temporary folder and serves it

A dialect is five independent axes:

| dialect | vocabulary | approver | opt_out | postal | type_tags |
|---|---|---|---|---|---|
| `canonical` | canonical | person | markdown_link | body | category |
| `decide-key` | decide | key | labelled_url | body | none |
| `past-tense-session` | past_tense | session | reply_instruction | signature | type |
| `mailbox-update` | mailbox_update | person | labelled_url | signature | none |
| `no-email-entries` | no_email_entries | key | markdown_link | body | category |

Audit vocabulary (`multimail/audit_log.jsonl`):

- `canonical`: the sample's names (ARCHITECTURE.md "Audit-log vocabulary"), unchanged.
- `decide`: `oversight.approved` / `oversight.rejected` become one action `oversight.decide`
  with metadata `{email_id, action: "approve"|"reject", reason}`; the rest unchanged.
- `past_tense`: `email.sent` → `email.created`, `oversight.approved` → `email.approved`,
  `oversight.rejected` → `email.rejected`, `email.cancelled` → `email.canceled`, resource
  type `email` → `message`; `mailbox.oversight_mode_changed` → `mailbox.mode_updated` with
  metadata `{changes: {oversight_mode: {from, to}}, changed_by}`; `api_key.created` →
  `key.created`; `suppression.added` → `suppression.created`.
- `mailbox_update`: mode changes become a generic `mailbox.updated` with metadata
  `{changes: {oversight_mode: [old, new]}, actor: changed_by}`, and three decoy
  `mailbox.updated` entries per mailbox (actor `system`, before 2026-07-01) change
  `display_name` and `signature_block` only, ending at the values in `mailboxes.json`;
  `oversight.approved` → `oversight.approve`, `oversight.rejected` → `oversight.reject`.
- `no_email_entries`: every entry whose resource type is `email` is dropped, and so are the
  mutations (`multimail/mutations.json`) that target a dropped entry.

Approver identity (outbound `approved_by` and the decision entries' metadata/actor):

- `person`: unchanged (`approved_by` and metadata `reviewer` are the reviewer's email).
- `key`: `approved_by` is the actor key of the email's approval entry (the reviewers'
  oversight key, or the Legacy ops key for the planted self-approval; the oversight key
  when there is no approval entry); decision entries lose metadata `reviewer`.
- `session`: decisions made on the hosted approval page: `approved_by` and the entry's
  metadata `session_id` are `hps_` + the first 20 hex digits of sha256(email id), the
  entry's `actor_key_id` is null and its metadata says `via: approval_page` (no
  `reviewer`). A decision whose actor is not the reviewers' oversight key (the planted
  self-approval) stays a key decision: `approved_by` = that key, actor unchanged.

Content (outbound markdown that carries the sample's footer; inbound mail is never touched):

- opt_out `markdown_link`: unchanged. `labelled_url`: the `[Unsubscribe](…)` sentence
  becomes, per message (by hash of its id), `Unsubscribe here: https://northwind.example/p/
  <token>` or `Manage your email preferences: https://northwind.example/prefs/<token>`.
  `reply_instruction`: it becomes `Don't want these emails? Just reply "unsubscribe" and
  we'll take you off the list.` or `To stop receiving these messages, reply STOP to this
  email.`
- postal `body`: unchanged. `signature`: the one-line address leaves the footer and the
  body ends with a signature block `-- ` / `Northwind Supply Co.` / `1200 Harbor Boulevard,
  Suite 400` / `Oakland, California 94607`.
- type_tags `category`: unchanged. `none`: the `category` tag is removed. `type`: it becomes
  `type: marketing` for `promotion`, `type: transactional` otherwise.

Mail without an opt-out or an address stays without one; audit entry ids never change; a
`set` mutation of `metadata.reason` still applies. When rewritten bodies include messages in
the DKIM-signed `archive/`, the archive is re-signed from the rendered bodies with the same
test key (`auditkit.archive_sample`), so its planted cases stay exactly the same. Files are
written in the source's order (the audit log stays chronological); rendering is
deterministic (the only "randomness" is hashing ids), and `canonical` reproduces the source
byte for byte. Non-canonical renderings prefix `README.md` with a note naming the dialect.
`expected_findings.json` and `expected_demo_findings.json` are copied unchanged: they list
the facts, which some dialects cannot express. With `key` or `session` approvers nothing
says who approved as a person (the planted non-reviewer approval by intern@ looks like any
reviewer's decision), and with `session` the oversight key's `last_used_at` in
`api_keys.json` still reflects the decisions it no longer signs. With `no_email_entries`
everything only the email entries said is gone: sending keys (so the self-approval),
decisions, cancellations, and the AL-001/AL-002 plants that live in those entries.
`imports/` (integration-guide records) and `invalid/` are copied as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditkit.devtools.sample.world import PHYSICAL_ADDRESS, UNSUBSCRIBE_URL
from auditkit.errors import ConfigError

logger = logging.getLogger(__name__)

BUNDLED_SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"

VOCABULARIES = ("canonical", "decide", "past_tense", "mailbox_update", "no_email_entries")
APPROVERS = ("person", "key", "session")
OPT_OUTS = ("markdown_link", "labelled_url", "reply_instruction")
POSTALS = ("body", "signature")
TYPE_TAGS = ("category", "none", "type")


@dataclass(frozen=True)
class Dialect:
    """How one rendering says things; each axis is described in the module docstring."""

    name: str
    vocabulary: str = "canonical"
    approver: str = "person"
    opt_out: str = "markdown_link"
    postal: str = "body"
    type_tags: str = "category"

    def __post_init__(self) -> None:
        for axis, allowed in (
            ("vocabulary", VOCABULARIES),
            ("approver", APPROVERS),
            ("opt_out", OPT_OUTS),
            ("postal", POSTALS),
            ("type_tags", TYPE_TAGS),
        ):
            value = getattr(self, axis)
            if value not in allowed:
                raise ConfigError(
                    f"dialect {self.name!r}: {axis} must be one of {', '.join(allowed)}; "
                    f"got {value!r}"
                )


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("canonical", "canonical", "person", "markdown_link", "body", "category"),
        Dialect("decide-key", "decide", "key", "labelled_url", "body", "none"),
        Dialect(
            "past-tense-session", "past_tense", "session", "reply_instruction", "signature", "type"
        ),
        Dialect("mailbox-update", "mailbox_update", "person", "labelled_url", "signature", "none"),
        Dialect("no-email-entries", "no_email_entries", "key", "markdown_link", "body", "category"),
    )
}

# The sample's canonical audit names (auditkit.sample writes these).
SENT, APPROVED, REJECTED, CANCELLED = (
    "email.sent",
    "oversight.approved",
    "oversight.rejected",
    "email.cancelled",
)
MODE_CHANGED, KEY_CREATED, SUPPRESSION_ADDED = (
    "mailbox.oversight_mode_changed",
    "api_key.created",
    "suppression.added",
)
_PAST_TENSE = {
    SENT: "email.created",
    APPROVED: "email.approved",
    REJECTED: "email.rejected",
    CANCELLED: "email.canceled",
    MODE_CHANGED: "mailbox.mode_updated",
    KEY_CREATED: "key.created",
    SUPPRESSION_ADDED: "suppression.created",
}
_DECISION = {APPROVED: "approve", REJECTED: "reject"}
DECOYS_BEFORE = datetime(2026, 7, 1, tzinfo=UTC)
OVERSIGHT_KEY_NAME = "Reviewers' oversight console"

SIGNATURE_BLOCK = (
    "-- \nNorthwind Supply Co.\n1200 Harbor Boulevard, Suite 400\nOakland, California 94607"
)
_LABELLED_URLS = (
    "Unsubscribe here: https://northwind.example/p/{token}",
    "Manage your email preferences: https://northwind.example/prefs/{token}",
)
_REPLY_INSTRUCTIONS = (
    "Don't want these emails? Just reply \"unsubscribe\" and we'll take you off the list.",
    "To stop receiving these messages, reply STOP to this email.",
)
# The sample's opt-out sentence: the markdown link and the rest of its line.
_OPT_OUT_LINK = re.compile(
    r"\[Unsubscribe\]\(" + re.escape(UNSUBSCRIBE_URL) + r"(?P<token>[^)\s]*)\)[^\n]*"
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def get_dialect(dialect: str | Dialect) -> Dialect:
    """The Dialect itself, or the named one; an unknown name is a ConfigError listing them."""
    if isinstance(dialect, Dialect):
        return dialect
    found = DIALECTS.get(dialect)
    if found is None:
        raise ConfigError(f"unknown dialect {dialect!r}; known dialects: {', '.join(DIALECTS)}")
    return found


# -- small helpers ------------------------------------------------------------------------------
def _dumps(record: Any) -> str:
    """The sample's JSONL form: sorted keys, no whitespace, UTF-8 as is."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _write_json(path: Path, value: Any) -> None:
    """The sample's JSON-file form (indent 2, sorted keys, trailing newline)."""
    path.write_text(
        json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _digest(*parts: str) -> bytes:
    return hashlib.sha256(":".join(parts).encode()).digest()


def session_id(email_id: str) -> str:
    """The hosted approval page's session for a decision on `email_id` (session approver)."""
    return "hps_" + hashlib.sha256(email_id.encode()).hexdigest()[:20]


def _ulid(ms: int, *seed: str) -> str:
    """A ULID-like id (as auditkit.sample's IdFactory): 10 characters of millisecond time,
    then 16 from a hash of `seed` instead of randomness."""
    value = (ms << 80) | int.from_bytes(_digest("sample_dialects", *seed)[:10], "big")
    return "".join(_CROCKFORD_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10))


def _iso(ms: int) -> str:
    ts = _EPOCH + timedelta(milliseconds=ms)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _epoch_ms(value: Any) -> int:
    """Epoch ms from the API's epoch-ms integers or an ISO-8601 string."""
    if isinstance(value, (int, float)):
        return int(value)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: not a dataset written by auditkit.sample") from None


# -- audit log ----------------------------------------------------------------------------------
def _oversight_key_id(api_keys: Any) -> str:
    """The reviewers' oversight key: the one key with scopes read + oversight."""
    keys = api_keys.get("api_keys", []) if isinstance(api_keys, dict) else []
    candidates = [k for k in keys if sorted(k.get("scopes") or []) == ["oversight", "read"]]
    if len(candidates) > 1:
        candidates = [k for k in candidates if k.get("name") == OVERSIGHT_KEY_NAME]
    if len(candidates) != 1:
        raise ConfigError(
            "multimail/api_keys.json: cannot tell the reviewers' oversight key "
            "(one key with scopes read + oversight)"
        )
    return str(candidates[0]["id"])


def _render_entry(entry: dict[str, Any], d: Dialect, oversight_key: str) -> dict[str, Any] | None:
    """The entry as dialect `d` writes it, or None when the dialect has no such entry."""
    vocab = d.vocabulary
    if vocab == "no_email_entries" and entry.get("resource_type") == "email":
        return None
    if vocab == "canonical" and d.approver == "person":
        return entry
    out = dict(entry)
    action = entry.get("action")
    meta = entry.get("metadata")
    meta = dict(meta) if isinstance(meta, dict) else meta

    if action in _DECISION and isinstance(meta, dict):
        email_id = str(entry.get("resource_id"))
        if d.approver == "key":
            meta.pop("reviewer", None)
        elif d.approver == "session":
            meta.pop("reviewer", None)
            if entry.get("actor_key_id") == oversight_key:
                out["actor_key_id"] = None
                meta["session_id"] = session_id(email_id)
                meta["via"] = "approval_page"
        if vocab == "decide":
            out["action"] = "oversight.decide"
            meta["email_id"] = email_id
            meta["action"] = _DECISION[action]
        elif vocab == "mailbox_update":
            out["action"] = "oversight." + _DECISION[action]

    if action == MODE_CHANGED and isinstance(meta, dict):
        if vocab == "past_tense":
            meta = {
                "changes": {"oversight_mode": {"from": meta.get("from"), "to": meta.get("to")}},
                "changed_by": meta.get("changed_by"),
            }
        elif vocab == "mailbox_update":
            out["action"] = "mailbox.updated"
            meta = {
                "changes": {"oversight_mode": [meta.get("from"), meta.get("to")]},
                "actor": meta.get("changed_by"),
            }

    if vocab == "past_tense":
        out["action"] = _PAST_TENSE.get(str(action), action)
        if out.get("resource_type") == "email":
            out["resource_type"] = "message"
    out["metadata"] = meta
    return out


def _decoys(mailboxes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Three `mailbox.updated` entries per mailbox that change anything but the oversight
    mode, spread between the mailbox's creation and DECOYS_BEFORE, oldest first."""
    cutoff = (DECOYS_BEFORE - _EPOCH) // timedelta(milliseconds=1)
    decoys = []
    for mb in mailboxes:
        mailbox_id = str(mb["id"])
        created = _epoch_ms(mb.get("created_at") or 0)
        span = cutoff - created
        if span <= 4 * 3_600_000:  # created (nearly) after the cutoff: nothing to pretend
            continue
        display = mb.get("display_name")
        local = str(mb.get("address", "mailbox")).split("@", 1)[0].replace(".", " ").title()
        old_display = local if local != display else f"{local} (old)"
        domain = str(mb.get("address", "")).rpartition("@")[2]
        interim_signature = f"— {display or local}\n{domain}"
        changes = (
            {"display_name": [old_display, display]},
            {"signature_block": [None, interim_signature]},
            {"signature_block": [interim_signature, mb.get("signature_block")]},
        )
        for n, change in enumerate(changes, start=1):
            jitter = int.from_bytes(_digest("decoy-time", mailbox_id, str(n))[:4], "big")
            ms = created + span * n // 4 + jitter % 3_600_000
            decoys.append(
                {
                    "id": _ulid(ms, "mailbox.updated", mailbox_id, str(n)),
                    "action": "mailbox.updated",
                    "resource_type": "mailbox",
                    "resource_id": mailbox_id,
                    "actor_key_id": "system",
                    "metadata": {"changes": change, "actor": "system"},
                    "created_at": _iso(ms),
                }
            )
    decoys.sort(key=lambda e: (e["created_at"], e["id"]))
    return decoys


# -- emails -------------------------------------------------------------------------------------
def _render_markdown(email_id: str, markdown: str, d: Dialect) -> str:
    pick = _digest("content", email_id)[0] & 1
    if d.opt_out != "markdown_link" and UNSUBSCRIBE_URL in markdown:
        match = _OPT_OUT_LINK.search(markdown)
        if match is None:
            raise ConfigError(
                f"email {email_id}: its unsubscribe link is not in the form auditkit.sample "
                "writes ([Unsubscribe](…) sentence)"
            )
        token = match.group("token") or hashlib.sha256(email_id.encode()).hexdigest()[:16]
        if d.opt_out == "labelled_url":
            sentence = _LABELLED_URLS[pick].format(token=token)
        else:
            sentence = _REPLY_INSTRUCTIONS[pick]
        markdown = markdown[: match.start()] + sentence + markdown[match.end() :]
    if d.postal == "signature" and PHYSICAL_ADDRESS in markdown:
        lines = markdown.split("\n")
        kept = [line for line in lines if line.strip() != PHYSICAL_ADDRESS]
        if len(kept) == len(lines):
            raise ConfigError(
                f"email {email_id}: the postal address is not on a line of its own, as "
                "auditkit.sample writes it"
            )
        markdown = "\n".join(kept).rstrip("\n") + "\n\n" + SIGNATURE_BLOCK
    return markdown


def _render_email(
    rec: dict[str, Any], d: Dialect, oversight_key: str, key_approvers: dict[str, str]
) -> dict[str, Any]:
    if rec.get("direction") != "outbound":
        return rec
    out = dict(rec)
    email_id = str(rec.get("id"))
    if rec.get("approved_by") is not None and d.approver != "person":
        key = key_approvers.get(email_id)  # approval entries by any key but the oversight one
        if d.approver == "key":
            out["approved_by"] = key or oversight_key
        else:
            out["approved_by"] = key or session_id(email_id)
    markdown = rec.get("markdown")
    if isinstance(markdown, str):
        out["markdown"] = _render_markdown(email_id, markdown, d)
    tags = rec.get("tags")
    if isinstance(tags, dict) and "category" in tags and d.type_tags != "category":
        tags = dict(tags)
        category = tags.pop("category")
        if d.type_tags == "type":
            tags["type"] = "marketing" if category == "promotion" else "transactional"
        out["tags"] = tags
    return out


# -- the whole folder ---------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from fh


def render(src: Path | None, dest: Path, dialect: str | Dialect) -> dict[str, Any]:
    """Copy the dataset folder `src` (None: the bundled sample_data/) to `dest` (new or empty)
    and rewrite it in `dialect`. Returns counts of what was rewritten, dropped and inserted."""
    d = get_dialect(dialect)
    src = Path(src) if src is not None else BUNDLED_SAMPLE_DATA
    dest = Path(dest)
    mm_src = src / "multimail"
    if not (mm_src / "emails.jsonl").is_file() or not (mm_src / "audit_log.jsonl").is_file():
        raise ConfigError(
            f"no sample data in {src}; generate it with `python -m auditkit.sample --out {src}`"
        )
    oversight_key = _oversight_key_id(_read_json(mm_src / "api_keys.json"))
    mailboxes = _read_json(mm_src / "mailboxes.json").get("mailboxes", [])
    mutations_path = mm_src / "mutations.json"
    mutations = _read_json(mutations_path) if mutations_path.is_file() else None
    archive_expected = src / "archive" / "expected.json"
    archived_ids = (
        {str(m["email_id"]) for m in _read_json(archive_expected).get("messages", [])}
        if archive_expected.is_file()
        else set()
    )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} exists and is not an empty folder; render into a new one")
    if dest.resolve().is_relative_to(src.resolve()):
        raise ConfigError(f"{dest} is inside the source dataset {src}; render elsewhere")
    # Written into a hidden sibling and renamed into place: no half-rendered `dest`.
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.rendering-", dir=dest.parent))
    try:
        shutil.copytree(src, work, dirs_exist_ok=True)
        summary = _render_into(src, work, d, oversight_key, mailboxes, mutations, archived_ids)
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info("rendered %s as %s into %s: %s", src, d.name, dest, summary)
    return summary


def _render_into(
    src: Path,
    dest: Path,
    d: Dialect,
    oversight_key: str,
    mailboxes: list[dict[str, Any]],
    mutations: dict[str, Any] | None,
    archived_ids: set[str],
) -> dict[str, Any]:
    """Rewrite the copy `dest` of `src` in dialect `d` (see render)."""
    mm_src, mm = src / "multimail", dest / "multimail"
    targets = {
        str(m.get("id")): m for m in (mutations or {}).get("mutations", []) if isinstance(m, dict)
    }
    summary: dict[str, Any] = {"dialect": d.name}

    # 1. Audit log, oldest first. Decisions by a key other than the oversight key are noted
    # for approved_by; the latest approval of an email wins.
    key_approvers: dict[str, str] = {}
    decoys = _decoys(mailboxes) if d.vocabulary == "mailbox_update" else []
    dropped_targets: set[str] = set()
    counts = dict.fromkeys(("written", "rewritten", "dropped", "inserted"), 0)
    with (mm / "audit_log.jsonl").open("wb") as out_fh:

        def emit_decoys(before: tuple[str, str] | None) -> None:
            """Write the decoys older than `before` (all of them for None)."""
            while decoys and (
                before is None or (decoys[0]["created_at"], decoys[0]["id"]) < before
            ):
                out_fh.write((_dumps(decoys.pop(0)) + "\n").encode())
                counts["inserted"] += 1
                counts["written"] += 1

        for raw in _lines(mm_src / "audit_log.jsonl"):
            if raw.isspace():
                out_fh.write(raw)
                continue
            entry = json.loads(raw)
            entry_id = str(entry.get("id"))
            emit_decoys((str(entry.get("created_at")), entry_id))
            if entry.get("action") == APPROVED and entry.get("resource_type") == "email":
                email_id, actor = str(entry.get("resource_id")), entry.get("actor_key_id")
                if actor != oversight_key and actor is not None:
                    key_approvers[email_id] = str(actor)
                else:
                    key_approvers.pop(email_id, None)
            rendered = _render_entry(entry, d, oversight_key)
            if rendered is None:
                counts["dropped"] += 1
                if entry_id in targets:
                    dropped_targets.add(entry_id)
                continue
            if entry_id in targets and not _mutation_applies(targets[entry_id], entry, rendered):
                dropped_targets.add(entry_id)
            counts["written"] += 1
            if rendered == entry:
                out_fh.write(raw)
            else:
                counts["rewritten"] += 1
                out_fh.write((_dumps(rendered) + "\n").encode())
        emit_decoys(None)
    summary.update(
        audit_entries=counts["written"],
        audit_rewritten=counts["rewritten"],
        audit_dropped=counts["dropped"],
        audit_inserted=counts["inserted"],
    )

    # 2. Emails, in their order; inbound mail is copied as is.
    email_counts = dict.fromkeys(("emails", "rewritten", "approved_by", "bodies", "tags"), 0)
    changed_archived: set[str] = set()
    with (mm / "emails.jsonl").open("wb") as out_fh:
        for raw in _lines(mm_src / "emails.jsonl"):
            if raw.isspace():
                out_fh.write(raw)
                continue
            rec = json.loads(raw)
            email_counts["emails"] += 1
            rendered = _render_email(rec, d, oversight_key, key_approvers)
            if rendered == rec:
                out_fh.write(raw)
                continue
            email_counts["rewritten"] += 1
            for field, count in (
                ("approved_by", "approved_by"),
                ("markdown", "bodies"),
                ("tags", "tags"),
            ):
                if rendered.get(field) != rec.get(field):
                    email_counts[count] += 1
            if rendered.get("markdown") != rec.get("markdown") and rec.get("id") in archived_ids:
                changed_archived.add(str(rec["id"]))
            out_fh.write((_dumps(rendered) + "\n").encode())
    summary.update(
        emails=email_counts["emails"],
        emails_rewritten=email_counts["rewritten"],
        approved_by_rewritten=email_counts["approved_by"],
        bodies_rewritten=email_counts["bodies"],
        tags_rewritten=email_counts["tags"],
    )

    # 3. Mutations of entries this dialect does not have (or whose field it drops) go too.
    summary["mutations_dropped"] = 0
    if mutations is not None and dropped_targets:
        listed = mutations.get("mutations", [])
        kept = [m for m in listed if str(m.get("id")) not in dropped_targets]
        summary["mutations_dropped"] = len(listed) - len(kept)
        note = (
            f" Dialect {d.name}: {summary['mutations_dropped']} mutation(s) of audit entries "
            "this dialect does not write were removed."
        )
        description = str(mutations.get("description", "")) + note
        _write_json(
            mm / "mutations.json", {**mutations, "description": description, "mutations": kept}
        )

    # 4. The DKIM-signed archive copies the approved bodies: re-sign the ones that changed.
    summary["archive_resigned"] = 0
    if changed_archived:
        summary["archive_resigned"] = _resign_archive(src, dest)

    if d.name != "canonical" and (dest / "README.md").is_file():
        readme = dest / "README.md"
        readme.write_text(
            f"> Rendered in dialect `{d.name}` by `python -m auditkit.sample_dialects` "
            f"(vocabulary {d.vocabulary}, approver {d.approver}, opt_out {d.opt_out}, "
            f"postal {d.postal}, type_tags {d.type_tags}). The text below describes the "
            "canonical rendering; the facts are the same.\n\n" + readme.read_text(encoding="utf-8"),
            encoding="utf-8",
        )
    return summary


def _mutation_applies(
    mutation: dict[str, Any], source: dict[str, Any], rendered: dict[str, Any]
) -> bool:
    """False when a `set` mutation targets a field the source entry has and the rendering
    dropped (it would add a field instead of changing one)."""
    if mutation.get("op") != "set":
        return True
    path = list(mutation.get("path") or [])

    def has(record: Any) -> bool:
        for key in path:
            if not isinstance(record, dict) or key not in record:
                return False
            record = record[key]
        return True

    return has(rendered) or not has(source)


def _resign_archive(src: Path, dest: Path) -> int:
    """Regenerate dest/archive from the rendered emails with the dataset's own test keys.
    The archive picks messages by id and delivery only, so its cases must come out the same."""
    from auditkit.devtools import archive_sample

    expected_src = src / "archive" / "expected.json"
    label = _read_json(expected_src).get("source_emails", "multimail/emails.jsonl")
    dns = dest / "dns"
    key, wrong_key = dns / archive_sample.TEST_KEY.name, dns / archive_sample.WRONG_TEST_KEY.name
    if not key.is_file() or not wrong_key.is_file():
        raise ConfigError(f"{dns} lacks the test DKIM keys needed to re-sign the archive")
    document = archive_sample.generate(
        dest / "archive",
        archive_sample.load_source_emails(dest / "multimail" / "emails.jsonl"),
        key_pem=key.read_bytes(),
        wrong_key_pem=wrong_key.read_bytes(),
        source_label=label,
    )
    if (dest / "archive" / "expected.json").read_bytes() != expected_src.read_bytes():
        raise ConfigError(
            "re-signing the archive from the rendered emails changed its planted cases"
        )
    return len(document["messages"])


@contextmanager
def rendered(dialect: str | Dialect, src: Path | None = None) -> Iterator[Path]:
    """A temporary folder holding `src` (default: the bundled sample) rendered in `dialect`,
    removed on exit."""
    d = get_dialect(dialect)
    with tempfile.TemporaryDirectory(prefix=f"auditkit-{d.name}-") as tmp:
        target = Path(tmp) / "data"
        render(src, target, d)
        yield target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m auditkit.sample_dialects",
        description="Render a sample dataset in another MultiMail dialect (same facts).",
    )
    parser.add_argument("--dialect", help=f"one of: {', '.join(DIALECTS)}")
    parser.add_argument("--out", type=Path, help="output folder (new or empty)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset written by `python -m auditkit.sample` (default: the bundled sample_data/)",
    )
    parser.add_argument("--list", action="store_true", help="list the dialects and their axes")
    args = parser.parse_args(argv)
    if args.list:
        for d in DIALECTS.values():
            print(  # noqa: T201  (CLI entry point output)
                f"{d.name:20} vocabulary={d.vocabulary} approver={d.approver} "
                f"opt_out={d.opt_out} postal={d.postal} type_tags={d.type_tags}"
            )
        return 0
    if not args.dialect or args.out is None:
        parser.error("--dialect and --out are required")
    try:
        summary = render(args.data, args.out, args.dialect)
    except ConfigError as exc:
        parser.error(str(exc))
    print(json.dumps(summary, sort_keys=True))  # noqa: T201  (CLI entry point output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
