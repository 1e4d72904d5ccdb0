"""One record as a dialect says it: audit entries (names, metadata, approver identity,
decoy mailbox updates) and outbound emails (opt-out wording, postal address, tags)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from auditkit.devtools.dialects.axes import Dialect
from auditkit.devtools.sample.world import PHYSICAL_ADDRESS, UNSUBSCRIBE_URL
from auditkit.errors import ConfigError

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


# -- audit log ----------------------------------------------------------------------------------
def oversight_key_id(api_keys: Any) -> str:
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


def render_entry(entry: dict[str, Any], d: Dialect, oversight_key: str) -> dict[str, Any] | None:
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


def decoy_entries(mailboxes: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def render_email(
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
