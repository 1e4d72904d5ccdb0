"""What the sandbox knows about the dataset's JSONL files without holding their records:
byte offsets and a few sort fields, read back with `os.pread`."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp (a bare time is UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


class JsonlFile:
    """Random access to the records of one JSONL file by (offset, length)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def lines(self) -> Iterator[tuple[int, int, str]]:
        """(offset, length in bytes, decoded text) of each non-blank line."""
        offset = 0
        with open(self.path, "rb") as fh:
            for line in fh:
                length = len(line)
                if not line.isspace():
                    # str input skips json's encoding detection, a measurable cost at 1M lines.
                    yield offset, length, line.decode("utf-8")
                offset += length

    def read(self, offset: int, length: int) -> dict[str, Any]:
        return json.loads(os.pread(self.fd, length, offset))

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True, slots=True)
class EmailRef:
    id: str
    mailbox_id: str
    direction: str
    status: str
    received_ms: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class AuditRef:
    id: str
    created_ms: int
    offset: int
    length: int


@dataclass(frozen=True)
class Index:
    """What the sandbox knows about the JSONL files without holding their records: built
    once per file version and shared by every server on the same data (tests start many)."""

    emails_by_id: dict[str, EmailRef]
    emails_by_mailbox: dict[str, list[EmailRef]]  # newest first
    negated_ms_by_mailbox: dict[
        str, list[int]
    ]  # -received_ms of the same lists, ascending (bisect)
    pending_ids: list[str]
    audit_refs: list[AuditRef]  # newest first
    conversations: dict[str, int]  # id -> offset << 32 | length (no tuple per entry)


_INDEX_CACHE: dict[tuple[tuple[str, int, int], ...], Index] = {}
_INDEX_LOCK = threading.Lock()


def _file_version(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def build_index(
    emails: JsonlFile,
    audit: JsonlFile,
    conversations: JsonlFile,
    mailboxes_file: Path,
    mailbox_ids: list[str],
) -> Index:
    key = tuple(
        _file_version(p) for p in (emails.path, audit.path, conversations.path, mailboxes_file)
    )
    with _INDEX_LOCK:
        cached = _INDEX_CACHE.get(key)
        if cached is not None:
            return cached
        by_id: dict[str, EmailRef] = {}
        by_mailbox: dict[str, list[EmailRef]] = {m: [] for m in mailbox_ids}
        pending: list[str] = []
        for offset, length, line in emails.lines():
            rec = json.loads(line)
            # Interned: a million records share a handful of these strings.
            ref = EmailRef(
                rec["id"],
                sys.intern(rec["mailbox_id"]),
                sys.intern(rec["direction"]),
                sys.intern(rec["status"]),
                parse_iso_ms(rec["received_at"]),
                offset,
                length,
            )
            by_id[ref.id] = ref
            by_mailbox.setdefault(ref.mailbox_id, []).append(ref)
            if ref.status in ("pending_send_approval", "pending_inbound_approval"):
                pending.append(ref.id)
        for refs in by_mailbox.values():
            # Newest first, as the API lists them; id breaks ties so pages are stable.
            refs.sort(key=lambda r: (r.received_ms, r.id), reverse=True)
        audit_refs = [
            AuditRef(rec["id"], parse_iso_ms(rec["created_at"]), offset, length)
            for offset, length, line in audit.lines()
            for rec in (json.loads(line),)
        ]
        audit_refs.sort(key=lambda r: (r.created_ms, r.id), reverse=True)
        conv = {
            str(json.loads(line)["id"]): offset << 32 | length
            for offset, length, line in conversations.lines()
        }
        negated = {m: [-r.received_ms for r in refs] for m, refs in by_mailbox.items()}
        index = Index(
            by_id,
            by_mailbox,
            negated,
            pending,
            audit_refs,
            conv,
        )
        _INDEX_CACHE.clear()  # one dataset at a time is plenty
        _INDEX_CACHE[key] = index
        return index
