"""The dataset as the sandbox serves it: small files in memory, the JSONL files by index,
and the state the routes share. `SandboxServer` (server.py) builds on this."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from auditkit.devtools.sandbox.index import AuditRef, EmailRef, JsonlFile, build_index
from auditkit.errors import ConfigError

# The logger name the sandbox has always logged under (shown by `-v`).
logger = logging.getLogger("auditkit.devtools.sandbox")

# The second Intercom workspace (region EU) lives under this path prefix of the base URL.
EU_PREFIX = "/eu"


class Reply(NamedTuple):
    status: int
    body: Any
    headers: Mapping[str, str]


class SandboxData:
    """The loaded dataset and the state every route reads. Attributes set by
    `SandboxServer.__init__` are declared here so the route classes can use them."""

    data_dir: Path
    api_key: str
    intercom_token: str
    intercom_eu_token: str
    intercom_rate_limit: int
    _state_lock: threading.Lock
    _files: list[JsonlFile]
    _intercom_window: tuple[int, int]

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

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
        # Population sources (PC-001); optional: older data sets have none, and then the
        # endpoints answer 404 as an API without them would.
        usage = self.data_dir / mm / "usage_daily.json"
        self.usage_daily: list[dict[str, Any]] | None = (
            self._json(mm + "usage_daily.json")["data"] if usage.is_file() else None
        )
        deliveries = self.data_dir / mm / "webhook_deliveries.jsonl"
        self.webhook_deliveries: list[dict[str, Any]] | None = None
        if deliveries.is_file():
            records = [
                json.loads(line)
                for line in deliveries.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            # Served newest first, as the audit log is.
            self.webhook_deliveries = sorted(
                records, key=lambda d: (d["created_at"], d["id"]), reverse=True
            )
        mutations = self.data_dir / mm / "mutations.json"
        self.mutations = (
            json.loads(mutations.read_text(encoding="utf-8"))
            if mutations.is_file()
            else {"mutations": []}
        )

        self._emails_file = JsonlFile(self._require(mm + "emails.jsonl"))
        self._audit_file = JsonlFile(self._require(mm + "audit_log.jsonl"))
        self._conv_file = JsonlFile(self._require("intercom/conversations.jsonl"))
        self._files = [self._emails_file, self._audit_file, self._conv_file]

        self.index = build_index(
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

    def _audit_record_unlocked(self, entry_id: str) -> dict[str, Any] | None:
        # A scan, not a dict: mutations are rare and an id index costs ~80 bytes per entry.
        for ref in self.index.audit_refs:
            if ref.id == entry_id:
                return self._audit_file.read(ref.offset, ref.length)
        return None

    def _audit_record(self, ref: AuditRef) -> dict[str, Any]:
        with self._state_lock:
            override = self.audit_overrides.get(ref.id)
        return (
            json.loads(json.dumps(override))
            if override is not None
            else self._audit_file.read(ref.offset, ref.length)
        )

    def _email_record(self, ref: EmailRef) -> dict[str, Any]:
        record = self._emails_file.read(ref.offset, ref.length)
        record["status"] = self._status(ref)
        return record

    def _status(self, ref: EmailRef) -> str:
        return self.status_overrides.get(ref.id, ref.status)
