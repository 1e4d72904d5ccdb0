"""A local double of the MultiMail and Intercom APIs on 127.0.0.1, serving a sample dataset.

`SandboxServer(data_dir)` serves the files `auditkit.sample` writes: MultiMail under `/v1`
and Intercom's `/me` and `/conversations/{id}` on the same host (a second, EU workspace under
`/eu/me` and `/eu/conversations/{id}` with its own token), with bearer-token checks,
the real paging quirks (timestamp cursors whose boundary items repeat, an opaque audit-log
cursor), scripted faults (`faults.add(...)`), random failures (`fail_rate`), per-request
latency and a request log for assertions. The harvester never needs it; tests, the demo
and benchmarks do.

Large JSONL files are indexed once at start (offsets and a few sort fields) and records
are read back with `os.pread`, so a 1M-message set does not sit in memory as objects.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from auditkit.config import Settings
from auditkit.errors import ConfigError

logger = logging.getLogger(__name__)

FAULT_KINDS = frozenset({"429", "500", "502", "503", "drop", "malformed", "timeout"})
EMAIL_LIMIT_DEFAULT, EMAIL_LIMIT_MAX = 20, 100
AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX = 50, 100
SUMMARY_FIELDS = (
    "id",
    "from",
    "to",
    "subject",
    "direction",
    "status",
    "spam_score",
    "spam_verdict",
    "received_at",
    "thread_id",
    "has_attachments",
    "delivered_at",
    "bounced_at",
    "bounce_type",
)
INTERCOM_WINDOW_SECONDS = 10
# The second Intercom workspace (region EU) lives under this path prefix of the base URL.
EU_PREFIX = "/eu"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp (a bare time is UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


class _JsonlFile:
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
class _EmailRef:
    id: str
    mailbox_id: str
    direction: str
    status: str
    received_ms: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class _AuditRef:
    id: str
    created_ms: int
    offset: int
    length: int


@dataclass(frozen=True)
class _Index:
    """What the sandbox knows about the JSONL files without holding their records: built
    once per file version and shared by every server on the same data (tests start many)."""

    emails_by_id: dict[str, _EmailRef]
    emails_by_mailbox: dict[str, list[_EmailRef]]  # newest first
    negated_ms_by_mailbox: dict[
        str, list[int]
    ]  # -received_ms of the same lists, ascending (bisect)
    pending_ids: list[str]
    audit_refs: list[_AuditRef]  # newest first
    conversations: dict[str, int]  # id -> offset << 32 | length (no tuple per entry)


_INDEX_CACHE: dict[tuple[tuple[str, int, int], ...], _Index] = {}
_INDEX_LOCK = threading.Lock()


def _file_version(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def _build_index(
    emails: _JsonlFile,
    audit: _JsonlFile,
    conversations: _JsonlFile,
    mailboxes_file: Path,
    mailbox_ids: list[str],
) -> _Index:
    key = tuple(
        _file_version(p) for p in (emails.path, audit.path, conversations.path, mailboxes_file)
    )
    with _INDEX_LOCK:
        cached = _INDEX_CACHE.get(key)
        if cached is not None:
            return cached
        by_id: dict[str, _EmailRef] = {}
        by_mailbox: dict[str, list[_EmailRef]] = {m: [] for m in mailbox_ids}
        pending: list[str] = []
        for offset, length, line in emails.lines():
            rec = json.loads(line)
            # Interned: a million records share a handful of these strings.
            ref = _EmailRef(
                rec["id"],
                sys.intern(rec["mailbox_id"]),
                sys.intern(rec["direction"]),
                sys.intern(rec["status"]),
                _parse_iso_ms(rec["received_at"]),
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
            _AuditRef(rec["id"], _parse_iso_ms(rec["created_at"]), offset, length)
            for offset, length, line in audit.lines()
            for rec in (json.loads(line),)
        ]
        audit_refs.sort(key=lambda r: (r.created_ms, r.id), reverse=True)
        conv = {
            str(json.loads(line)["id"]): offset << 32 | length
            for offset, length, line in conversations.lines()
        }
        negated = {m: [-r.received_ms for r in refs] for m, refs in by_mailbox.items()}
        index = _Index(
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


@dataclass
class Fault:
    """One scripted fault: the next `times` requests whose path matches `pattern` get `kind`."""

    pattern: re.Pattern[str]
    kind: str
    times: int
    retry_after: str | None
    seconds: float


class FaultPlan:
    """Scripted faults, consumed in the order they were added. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        path_regex: str,
        kind: str,
        times: int = 1,
        retry_after: str | None = "1",
        seconds: float = 2.0,
    ) -> None:
        """Fail the next `times` matching requests. Kinds: 429 (with `Retry-After: retry_after`
        unless None), 500/502/503, drop (close without answering), malformed (200 with broken
        JSON), timeout (say nothing for `seconds`, then close)."""
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(Fault(re.compile(path_regex), kind, times, retry_after, seconds))

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)


class LoggedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    kind: str  # route kind: account, mailboxes, list, detail, pending, audit, api_keys, ...
    status: int  # 0 when the connection was dropped without an answer


class RequestLog:
    """The requests the sandbox saw, in arrival order, with counts per route kind.

    Keeps the latest `max_entries` requests (benchmarks make millions); the counts cover
    every request since the last clear().
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=max_entries)
        self._counts: Counter[str] = Counter()

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            self._counts[entry.kind] += 1

    def snapshot(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def count(self, kind: str) -> int:
        with self._lock:
            return self._counts[kind]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.snapshot())


class _Reply(NamedTuple):
    status: int
    body: Any
    headers: Mapping[str, str]


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SandboxServer:
    """The MultiMail + Intercom double. Use as a context manager or call start()/stop().

    `base_url` serves both APIs; `faults` scripts failures; `requests` logs what was asked;
    `apply_mutations()` tampers with the audit log as `multimail/mutations.json` says.
    Email lists: `date_after` is inclusive, `date_before` exclusive (both on received_at);
    `since_id` keeps ids greater than the one given.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        api_key: str = "mm_test_sandbox_key",
        intercom_token: str = "ic_test_sandbox_token",
        intercom_eu_token: str = "ic_test_sandbox_eu_token",
        latency_ms: float = 0,
        fail_rate: float = 0.0,
        seed: int = 42,
        host: str = "127.0.0.1",
        port: int = 0,
        intercom_rate_limit: int = 10_000,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ConfigError(f"fail_rate must be between 0 and 1, got {fail_rate}")
        if latency_ms < 0:
            raise ConfigError(f"latency_ms must not be negative, got {latency_ms}")
        self.data_dir = Path(data_dir)
        self.api_key = api_key
        self.intercom_token = intercom_token
        self.intercom_eu_token = intercom_eu_token
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.host = host
        self.port = port
        self.intercom_rate_limit = intercom_rate_limit
        self.faults = FaultPlan()
        self.requests = RequestLog()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _QuietThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._files: list[_JsonlFile] = []
        self._intercom_window = (0, 0)  # (window start epoch s, calls used)
        self.mutations_applied = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def aim(self, settings: Settings) -> Settings:
        """`settings` pointed at this sandbox with its tokens: MultiMail, the default Intercom
        workspace and, when the config has one, the EU workspace served under /eu."""
        aimed = settings.with_overrides(
            multimail_api_url=self.base_url,
            multimail_api_key=self.api_key,
            intercom_api_url=self.base_url,
            intercom_access_token=self.intercom_token,
        )
        if aimed.intercom_workspace("eu") is not None:
            aimed = aimed.with_intercom_workspace(
                "eu", api_url=f"{self.base_url}/eu", access_token=self.intercom_eu_token
            )
        return aimed

    def start(self) -> SandboxServer:
        if self._server is not None:
            return self
        self._load()
        self._stopping.clear()
        try:
            self._server = _QuietThreadingServer((self.host, self.port), self._handler_class())
        except OSError as exc:
            self._close_files()
            raise ConfigError(
                f"sandbox cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="auditkit-sandbox", daemon=True
        )
        self._thread.start()
        logger.info("sandbox serving %s on %s", self.data_dir, self.base_url)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a timeout fault or latency
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
        self._close_files()

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data --------------------------------------------------------------------------------
    def _require(self, relative: str) -> Path:
        path = self.data_dir / relative
        if not path.is_file():
            raise ConfigError(
                f"sandbox data file {path} is missing; generate it with "
                f"`python -m auditkit.sample --out {self.data_dir}`"
            )
        return path

    def _json(self, relative: str) -> Any:
        return json.loads(self._require(relative).read_text(encoding="utf-8"))

    def _load(self) -> None:
        t0 = time.perf_counter()
        mm = "multimail/"
        self.account = self._json(mm + "account.json")
        self.mailboxes = self._json(mm + "mailboxes.json")["mailboxes"]
        self.api_keys = self._json(mm + "api_keys.json")
        self.domains = self._json(mm + "domains.json")
        self.webhooks = self._json(mm + "webhooks.json")
        self.suppressions = self._json(mm + "suppressions.json")
        self.me = self._json("intercom/me.json")
        # The EU workspace is optional (older data sets have none) and small: held in memory.
        eu = self.data_dir / "intercom" / EU_PREFIX.strip("/")
        self.eu_me: Any = None
        self.eu_conversations: dict[str, Any] = {}
        if (eu / "me.json").is_file():
            self.eu_me = self._json(f"intercom/{EU_PREFIX.strip('/')}/me.json")
            conversations = eu / "conversations.jsonl"
            if conversations.is_file():
                for line in conversations.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        record = json.loads(line)
                        self.eu_conversations[str(record["id"])] = record
        mutations = self.data_dir / mm / "mutations.json"
        self.mutations = (
            json.loads(mutations.read_text(encoding="utf-8"))
            if mutations.is_file()
            else {"mutations": []}
        )

        self._emails_file = _JsonlFile(self._require(mm + "emails.jsonl"))
        self._audit_file = _JsonlFile(self._require(mm + "audit_log.jsonl"))
        self._conv_file = _JsonlFile(self._require("intercom/conversations.jsonl"))
        self._files = [self._emails_file, self._audit_file, self._conv_file]

        self.index = _build_index(
            self._emails_file,
            self._audit_file,
            self._conv_file,
            self._require(mm + "mailboxes.json"),
            [m["id"] for m in self.mailboxes],
        )
        self.audit_overrides: dict[str, dict[str, Any]] = {}
        self.audit_removed: set[str] = set()
        self.status_overrides: dict[str, str] = {}  # inbound mail marked read by a detail GET
        logger.info(
            "sandbox indexed %d emails, %d audit entries, %d conversations in %.2fs",
            len(self.index.emails_by_id),
            len(self.index.audit_refs),
            len(self.index.conversations),
            time.perf_counter() - t0,
        )

    def apply_mutations(self) -> int:
        """Apply `multimail/mutations.json` (source-side tampering between two harvests).
        Returns how many mutations were applied; applying twice changes nothing more."""
        if self._server is None:
            raise RuntimeError("apply_mutations() needs a running sandbox: call start() first")
        applied = 0
        with self._state_lock:
            for m in self.mutations.get("mutations", []):
                if m.get("collection") != "audit_log":
                    raise ConfigError(
                        f"mutations.json: unsupported collection {m.get('collection')!r}"
                    )
                entry_id = m["id"]
                if m["op"] == "delete":
                    self.audit_removed.add(entry_id)
                elif m["op"] == "set":
                    record = self.audit_overrides.get(entry_id) or self._audit_record_unlocked(
                        entry_id
                    )
                    if record is None:
                        raise ConfigError(f"mutations.json: audit entry {entry_id} does not exist")
                    target = record
                    *parents, leaf = m["path"]
                    for key in parents:
                        target = target.setdefault(key, {})
                    target[leaf] = m["value"]
                    self.audit_overrides[entry_id] = record
                else:
                    raise ConfigError(f"mutations.json: unsupported op {m['op']!r}")
                applied += 1
        self.mutations_applied += applied
        return applied

    def _audit_record_unlocked(self, entry_id: str) -> dict[str, Any] | None:
        # A scan, not a dict: mutations are rare and an id index costs ~80 bytes per entry.
        for ref in self.index.audit_refs:
            if ref.id == entry_id:
                return self._audit_file.read(ref.offset, ref.length)
        return None

    def _audit_record(self, ref: _AuditRef) -> dict[str, Any]:
        with self._state_lock:
            override = self.audit_overrides.get(ref.id)
        return (
            json.loads(json.dumps(override))
            if override is not None
            else self._audit_file.read(ref.offset, ref.length)
        )

    def _email_record(self, ref: _EmailRef) -> dict[str, Any]:
        record = self._emails_file.read(ref.offset, ref.length)
        record["status"] = self._status(ref)
        return record

    def _status(self, ref: _EmailRef) -> str:
        return self.status_overrides.get(ref.id, ref.status)

    # -- routing -----------------------------------------------------------------------------
    def _route(
        self, method: str, path: str, query: dict[str, str], auth: str | None
    ) -> tuple[str, _Reply]:
        intercom_kind = _intercom_kind(path)
        if intercom_kind is not None:
            return intercom_kind, self._intercom(method, path, auth)
        kind = _multimail_kind(path)
        if kind == "unknown":
            return kind, _Reply(404, {"error": "Not found"}, {})
        if auth != f"Bearer {self.api_key}":
            return kind, _Reply(
                401,
                {"error": "Invalid or missing API key"},
                {
                    "WWW-Authenticate": (
                        f'Bearer resource_metadata="{self.base_url}'
                        '/.well-known/oauth-protected-resource"'
                    )
                },
            )
        if method != "GET":
            return kind, _Reply(
                405, {"error": f"{method} is not supported by the sandbox"}, {"Allow": "GET"}
            )
        try:
            return kind, _Reply(200, self._multimail(kind, path, query), {})
        except _HttpError as exc:
            return kind, _Reply(exc.status, {"error": exc.message}, {})

    def _multimail(self, kind: str, path: str, query: dict[str, str]) -> Any:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if kind == "account":
            return self.account
        if kind == "mailboxes":
            return {"mailboxes": self.mailboxes}
        if kind == "api_keys":
            return self.api_keys
        if kind == "domains":
            return self.domains
        if kind == "webhooks":
            return self.webhooks
        if kind == "suppression":
            return self.suppressions
        if kind == "pending":
            items = []
            for email_id in self.index.pending_ids:
                rec = self._email_record(self.index.emails_by_id[email_id])
                items.append(
                    {
                        "id": rec["id"],
                        "mailbox_id": rec["mailbox_id"],
                        "direction": rec["direction"],
                        "from": rec["from"],
                        "to": rec["to"],
                        "subject": rec["subject"],
                        "body_markdown": rec.get("markdown", ""),
                        "status": rec["status"],
                        "received_at": rec["received_at"],
                    }
                )
            return {"emails": items}
        if kind == "audit":
            return self._audit_page(query)
        if kind == "list":
            return self._email_page(parts[2], query)
        if kind == "detail":
            return self._email_detail(parts[2], parts[4])
        raise _HttpError(404, "Not found")

    def _email_page(self, mailbox_id: str, query: dict[str, str]) -> dict[str, Any]:
        refs = self.index.emails_by_mailbox.get(mailbox_id)
        if refs is None:
            raise _HttpError(404, "Mailbox not found")
        limit = _limit(query, EMAIL_LIMIT_DEFAULT, EMAIL_LIMIT_MAX)
        cursor_ms = None
        if query.get("cursor"):
            if not query["cursor"].isdigit():
                raise _HttpError(400, "cursor must be a received_at epoch (milliseconds)")
            cursor_ms = int(query["cursor"])
        after = _time_filter(query, "date_after")
        before = _time_filter(query, "date_before")
        direction, status, since_id = (
            query.get("direction"),
            query.get("status"),
            query.get("since_id"),
        )
        if direction not in (None, "inbound", "outbound"):
            raise _HttpError(400, "direction must be inbound or outbound")
        # Start at the newest item the cursor and date_before allow (bisect, not a scan, so
        # paging a 300k-message mailbox stays linear overall).
        newest_ms = min(
            cursor_ms if cursor_ms is not None else 2**62,
            before - 1 if before is not None else 2**62,
        )
        start = bisect.bisect_left(self.index.negated_ms_by_mailbox[mailbox_id], -newest_ms)
        page: list[_EmailRef] = []
        more = False
        for position in range(start, len(refs)):
            ref = refs[position]
            # The cursor is a timestamp, not a key: items at exactly the cursor time come
            # again on the next page, as with the real API.
            if after is not None and ref.received_ms < after:
                break  # newest first: everything further is older still
            if direction and ref.direction != direction:
                continue
            if status and self._status(ref) != status:
                continue
            if since_id and ref.id <= since_id:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(ref)
        emails = []
        for ref in page:
            rec = self._email_record(ref)
            emails.append({k: rec.get(k) for k in SUMMARY_FIELDS})
        return {"emails": emails, "cursor": str(page[-1].received_ms) if more else None}

    def _email_detail(self, mailbox_id: str, email_id: str) -> dict[str, Any]:
        if mailbox_id not in self.index.emails_by_mailbox:
            raise _HttpError(404, "Mailbox not found")
        ref = self.index.emails_by_id.get(email_id)
        if ref is None or ref.mailbox_id != mailbox_id:
            raise _HttpError(404, "Email not found")
        record = self._email_record(ref)
        if ref.direction == "inbound" and record["status"] == "unread":
            with self._state_lock:  # read_email marks unread mail read, as the real API does
                self.status_overrides[ref.id] = "read"
        record.pop("mailbox_id", None)
        record.pop("direction", None)
        return record

    def _audit_page(self, query: dict[str, str]) -> dict[str, Any]:
        limit = _limit(query, AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX)
        start_key: tuple[int, str] | None = None
        if query.get("cursor"):
            try:
                ms, _, last_id = (
                    base64.urlsafe_b64decode(query["cursor"].encode()).decode().partition("|")
                )
                start_key = (int(ms), last_id)
            except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
                raise _HttpError(400, "invalid cursor") from exc
        with self._state_lock:
            removed = set(self.audit_removed)
        # Newest first; the cursor holds the (time, id) of the last entry served, so
        # entries deleted between pages do not shift later pages.
        refs = self.index.audit_refs
        lo, hi = 0, len(refs)
        if start_key is not None:
            while lo < hi:  # first ref strictly older than the cursor key
                mid = (lo + hi) // 2
                ref = refs[mid]
                if (ref.created_ms, ref.id) >= start_key:
                    lo = mid + 1
                else:
                    hi = mid
        page: list[_AuditRef] = []
        more = False
        for position in range(lo, len(refs)):
            ref = refs[position]
            if ref.id in removed:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(ref)
        cursor = None
        if more:
            cursor = base64.urlsafe_b64encode(
                f"{page[-1].created_ms}|{page[-1].id}".encode()
            ).decode()
        return {"entries": [self._audit_record(r) for r in page], "cursor": cursor}

    def _intercom(self, method: str, path: str, auth: str | None) -> _Reply:
        eu = path.startswith(EU_PREFIX + "/")
        if eu:
            path = path[len(EU_PREFIX) :]
        if auth != f"Bearer {self.intercom_eu_token if eu else self.intercom_token}":
            return _Reply(401, _intercom_error("unauthorized", "Access Token Invalid"), {})
        now = int(time.time())
        window_start = now - now % INTERCOM_WINDOW_SECONDS
        with self._state_lock:
            start, used = self._intercom_window
            if start != window_start:
                start, used = window_start, 0
            used += 1
            self._intercom_window = (start, used)
        remaining = max(self.intercom_rate_limit - used, 0)
        headers = {
            "X-RateLimit-Limit": str(self.intercom_rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(window_start + INTERCOM_WINDOW_SECONDS),
        }
        if used > self.intercom_rate_limit:
            message = f"Exceeded rate limit of {self.intercom_rate_limit} in 10_seconds"
            return _Reply(429, _intercom_error("rate_limit_exceeded", message), headers)
        if method != "GET":
            return _Reply(
                405, _intercom_error("method_not_allowed", f"{method} is not supported"), headers
            )
        if eu and self.eu_me is None:
            return _Reply(404, _intercom_error("not_found", "Resource Not Found"), headers)
        if path == "/me":
            return _Reply(200, self.eu_me if eu else self.me, headers)
        conversation_id = unquote(path[len("/conversations/") :])
        if eu:
            record = self.eu_conversations.get(conversation_id)
            if record is None:
                return _Reply(404, _intercom_error("not_found", "Resource Not Found"), headers)
            return _Reply(200, record, headers)
        ref = self.index.conversations.get(conversation_id)
        if ref is None:
            return _Reply(404, _intercom_error("not_found", "Resource Not Found"), headers)
        return _Reply(200, self._conv_file.read(ref >> 32, ref & 0xFFFFFFFF), headers)

    # -- HTTP ----------------------------------------------------------------------------------
    def _random_failure(self) -> str | None:
        if self.fail_rate <= 0:
            return None
        with self._rng_lock:
            if self._rng.random() >= self.fail_rate:
                return None
            return self._rng.choice(("429", "429", "500", "502", "503"))

    def _retry_after(self) -> str:
        with self._rng_lock:
            return self._rng.choice(("0", "1"))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            server_version = "auditkit-sandbox"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the request log is the record; stderr stays quiet

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._serve("PUT")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

            def do_DELETE(self) -> None:  # noqa: N802
                self._serve("DELETE")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)  # keep the connection usable for the next request
                split = urlsplit(self.path)
                path = split.path
                query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
                kind = _intercom_kind(path) or _multimail_kind(path)
                if sandbox.latency_ms:
                    sandbox._stopping.wait(sandbox.latency_ms / 1000)
                fault = sandbox.faults.take(path)
                fault_kind = fault.kind if fault else sandbox._random_failure()
                if fault_kind in ("drop", "timeout"):
                    sandbox.requests.record(LoggedRequest(method, path, query, kind, 0))
                    if fault_kind == "timeout":
                        sandbox._stopping.wait(fault.seconds if fault else 2.0)
                    self.close_connection = True  # no answer at all
                    return
                if fault_kind is not None:
                    status, body, headers = self._fault_reply(fault_kind, fault)
                else:
                    try:
                        kind, reply = sandbox._route(
                            method, path, query, self.headers.get("Authorization")
                        )
                    except Exception:  # a sandbox bug must still answer, or keep-alive hangs
                        logger.exception("sandbox failed on %s %s", method, path)
                        reply = _Reply(500, {"error": "sandbox internal error"}, {})
                    status, headers = reply.status, reply.headers
                    body = json.dumps(reply.body, ensure_ascii=False).encode()
                # Logged before answering: a client holding its response finds it in the log.
                sandbox.requests.record(LoggedRequest(method, path, query, kind, status))
                self._send(status, body, headers)

            def _fault_reply(
                self, kind: str, fault: Fault | None
            ) -> tuple[int, bytes, Mapping[str, str]]:
                if kind == "malformed":
                    return 200, b'{"emails": [{"id": "01J', {}
                if kind == "429":
                    retry_after = fault.retry_after if fault else sandbox._retry_after()
                    headers = {"Retry-After": retry_after} if retry_after is not None else {}
                    return 429, b'{"error":"Rate limited"}', headers
                return int(kind), json.dumps({"error": f"sandbox fault {kind}"}).encode(), {}

            def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (e.g. its own timeout)

        return Handler


class _QuietThreadingServer(ThreadingHTTPServer):
    """Clients that vanish mid-request (killed harvesters, their own timeouts) are normal
    here: log them at debug level instead of printing socketserver tracebacks."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("sandbox client %s went away: %s", client_address, exc)
            return
        logger.exception("sandbox failed serving %s", client_address)


_MAILBOX_EMAILS = re.compile(r"^/v1/mailboxes/[^/]+/emails/?$")
_MAILBOX_EMAIL = re.compile(r"^/v1/mailboxes/[^/]+/emails/[^/]+/?$")
_FIXED_ROUTES = {
    "/v1/account": "account",
    "/v1/mailboxes": "mailboxes",
    "/v1/oversight/pending": "pending",
    "/v1/audit-log": "audit",
    "/v1/api-keys": "api_keys",
    "/v1/domains": "domains",
    "/v1/suppression": "suppression",
    "/v1/webhooks": "webhooks",
}


def _multimail_kind(path: str) -> str:
    fixed = _FIXED_ROUTES.get(path.rstrip("/") or "/")
    if fixed:
        return fixed
    if _MAILBOX_EMAILS.match(path):
        return "list"
    if _MAILBOX_EMAIL.match(path):
        return "detail"
    return "unknown"


def _intercom_kind(path: str) -> str | None:
    """`intercom_me` / `intercom_conversation` for either workspace, None for MultiMail paths."""
    if path.startswith(EU_PREFIX + "/"):
        path = path[len(EU_PREFIX) :]
    if path == "/me":
        return "intercom_me"
    if path.startswith("/conversations/"):
        return "intercom_conversation"
    return None


def _intercom_error(code: str, message: str) -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": None,
        "errors": [{"code": code, "message": message}],
    }


def _limit(query: dict[str, str], default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _HttpError(400, f"limit must be an integer between 1 and {maximum}") from None
    if not 1 <= value <= maximum:
        raise _HttpError(400, f"limit must be an integer between 1 and {maximum}")
    return value


def _time_filter(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return _parse_iso_ms(raw)
    except ValueError:
        raise _HttpError(400, f"{name} must be an ISO-8601 date-time") from None
