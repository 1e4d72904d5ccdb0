"""The run's books: what one harvest keeps about itself while it runs.

`RunRecorder` counts rows, calls and skips, stamps rows with the run, buffers quarantined
records until the next batch's transaction takes them, turns changed evidence into
integrity events, notes stage failures and reports progress. Every stage gets it as an
argument; `HarvestResult` is what it adds up to.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from auditkit.errors import SourceAuthError, SourceError
from auditkit.sources import multimail
from auditkit.sources.client import PayloadError
from auditkit.store import Cursor, IntegrityEvent, Quarantined, canonical_json
from auditkit.store.audit_chain import INCONSISTENT

# Every module of the harvester logs under one name, as the single module did.
logger = logging.getLogger("auditkit.harvest")


class Progress(Protocol):
    """What the CLI shows: a stage starts (total if known), advances, finishes with a count."""

    def start(self, stage: str, total: int | None) -> None: ...

    def advance(self, stage: str, n: int) -> None: ...

    def finish(self, stage: str, count: int) -> None: ...


@dataclass
class HarvestResult:
    run_id: str
    counts: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    detail_calls: int = 0
    list_calls: int = 0
    intercom_calls: int = 0
    integrity_events: int = 0
    retries: int = 0
    duration: float = 0.0
    outcome: str = "running"
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "counts": dict(sorted(self.counts.items())),
            "quarantined": self.quarantined,
            "detail_calls": self.detail_calls,
            "list_calls": self.list_calls,
            "intercom_calls": self.intercom_calls,
            "integrity_events": self.integrity_events,
            "retries": self.retries,
            "skipped": dict(sorted(self.skipped.items())),
            "errors": list(self.errors),
            "duration_seconds": round(self.duration, 3),
        }

    def one_line(self) -> str:
        rows = sum(self.counts.values())
        return (
            f"{self.outcome}: {rows} rows in {self.duration:.1f}s ({self.list_calls} list + "
            f"{self.detail_calls} detail calls, {self.retries} retries, {self.quarantined} "
            f"quarantined, {self.integrity_events} integrity events)"
        )


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def json_safe(value: Any) -> Any:
    """Run params as plain JSON (TOML dates and Paths become strings)."""
    return json.loads(json.dumps(value, default=str))


class RunRecorder:
    """One run's books (see the module docstring). Thread-safe where threads meet it: the
    request hooks and the quarantine buffer (the list producer and the audit walk add bad
    pages from their threads)."""

    def __init__(
        self,
        result: HarvestResult,
        progress: Progress | None = None,
        *,
        credential: str = multimail.CREDENTIAL,
    ) -> None:
        self.result = result
        self.run_id = result.run_id
        self.progress = progress
        # The variable the account's MultiMail key comes from, as errors name it
        # (MULTIMAIL_API_KEY, or MULTIMAIL_API_KEY_<NAME> for an [accounts.NAME]).
        self.credential = credential
        # Every row of the run carries this stamp; a complete listing's watermark too.
        self.harvested_at = datetime.now(UTC)
        self._lock = threading.Lock()
        self._quarantine: list[tuple[str, str, str, str | None]] = []

    # -- counts and stamps --------------------------------------------------------------
    def count(self, key: str, n: int) -> None:
        self.result.counts[key] = self.result.counts.get(key, 0) + n

    def skip(self, key: str, n: int = 1) -> None:
        self.result.skipped[key] = self.result.skipped.get(key, 0) + n

    def stamp(self, row: dict[str, Any]) -> dict[str, Any]:
        row["run_id"] = self.run_id
        row["harvested_at"] = self.harvested_at
        return row

    def cursor(self, resource: str, value: str | None, source: str = multimail.SOURCE) -> Cursor:
        return Cursor(source, resource, value, self.run_id)

    def count_request(self, request: httpx.Request) -> None:
        """MultiMail client event hook, called in worker threads once per logical request
        (not per retry)."""
        parts = request.url.path.strip("/").split("/")
        with self._lock:
            if len(parts) == 5 and parts[1] == "mailboxes" and parts[3] == "emails":
                self.result.detail_calls += 1
            else:
                self.result.list_calls += 1

    def count_intercom_request(self, request: httpx.Request) -> None:
        with self._lock:
            self.result.intercom_calls += 1

    # -- progress -----------------------------------------------------------------------
    def start(self, stage: str, total: int | None) -> None:
        if self.progress is not None:
            self.progress.start(stage, total)

    def advance(self, stage: str, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(stage, n)

    def finish(self, stage: str, count: int) -> None:
        if self.progress is not None:
            self.progress.finish(stage, count)

    # -- quarantine -----------------------------------------------------------------------
    def quarantine(
        self, endpoint: str, reason: str, raw: Any, record_id: str | None = None
    ) -> None:
        """Queue a bad record; it is written in the next batch's transaction."""
        raw_text = raw if isinstance(raw, str) else canonical_json(raw)
        logger.warning("quarantined a record from %s: %s", endpoint, reason)
        with self._lock:
            self._quarantine.append((endpoint, reason, raw_text, record_id))

    def on_bad_page(self, exc: PayloadError) -> None:
        self.quarantine(exc.url or "?", f"invalid page: {exc}", exc.raw_text or "")

    def has_quarantined(self) -> bool:
        with self._lock:
            return bool(self._quarantine)

    @contextmanager
    def quarantined(self, source: str = multimail.SOURCE) -> Iterator[list[Quarantined]]:
        """The records queued so far, for the batch being committed; counted once it is."""
        with self._lock:
            queued, self._quarantine = self._quarantine, []
        records = [
            Quarantined(self.run_id, source, endpoint, reason, raw_text, record_id)
            for endpoint, reason, raw_text, record_id in queued
        ]
        yield records
        self.result.quarantined += len(records)

    # -- failures and integrity -----------------------------------------------------------
    def error(self, message: str) -> None:
        """Something failed but the run goes on: the run ends `partial`."""
        self.result.errors.append(message)

    def stage_failed(self, stage: str, exc: SourceError) -> None:
        if isinstance(exc, SourceAuthError):
            raise exc
        logger.error("%s: %s", stage, exc)
        self.result.errors.append(f"{stage}: {exc}")

    def integrity_event(
        self,
        record_type: str,
        record_id: str,
        change: str,
        stored_sha: str | None,
        stored_raw: str | None,
        source_sha: str | None,
        source_raw: str | None,
    ) -> IntegrityEvent:
        """A stored record changed or vanished at the source, or the source gave it in two
        versions (`change`: changed, removed, inconsistent): counted and logged here,
        written by the batch that carries it."""
        self.result.integrity_events += 1
        logger.warning(
            "integrity: %s %s %s",
            record_type,
            record_id,
            "given in two versions by the source in this harvest"
            if change == INCONSISTENT
            else f"{change} at the source since it was harvested",
        )
        return IntegrityEvent(
            self.run_id,
            record_type,
            record_id,
            change,
            stored_sha,
            stored_raw,
            source_sha,
            source_raw,
        )
