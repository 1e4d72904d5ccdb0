"""The harvester: fetch MultiMail (and linked Intercom) records, normalise them, upsert them.

Every batch lands together with its cursor in one store transaction, so killing the
process at any point and running again converges on the same store as one clean run: a
mailbox is listed in full until one listing of it completes with every detail stored
(after that, from the lookback window on, plus its stored mail not final yet), the audit
log's new entries are committed in one transaction, and bad records go to quarantine
instead of stopping the run. Stored audit entries are
evidence: a changed or vanished entry at the source becomes an integrity event, never an
overwrite. Compliance decisions belong to `auditkit.controls`, not here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import duckdb
import httpx
import pyarrow as pa

from auditkit.config import IntercomWorkspace, Settings
from auditkit.errors import ConfigError, SourceAuthError, SourceError
from auditkit.normalise import (
    RecordError,
    normalise_account,
    normalise_api_key,
    normalise_audit_entry,
    normalise_domain,
    normalise_email,
    normalise_mailbox,
    normalise_pending,
    normalise_suppression,
    normalise_webhook,
)
from auditkit.sources import intercom, multimail
from auditkit.sources.client import (
    PayloadError,
    RetryTransport,
    build_client,
    decode_json,
    default_transport,
    raise_for_status,
)
from auditkit.sources.paging import Page, paginate
from auditkit.sources.preflight import preflight
from auditkit.store import HARVESTED_TABLES, Store, canonical_json, sha256_hex

logger = logging.getLogger(__name__)

# Rows per transaction. Each commit has a fixed cost (a WAL sync, the existence check), so
# 2,000 email rows per commit load ~1.8x faster than 500 (BENCHMARKS.md); a crash loses at
# most this much work, which the next run fetches again.
COMMIT_ROWS = 2000
INTERCOM_BATCH = 500
# Page.extra flag on the pages of stored ids the list producer adds (no list cursor of theirs).
STORED_NOT_FINAL = "stored_not_final"
# The audit walk's staging table, rows per staging insert, and rows per chain batch.
AUDIT_STAGING = "_auditkit_audit_walk"
AUDIT_STAGING_ROWS = 5000
AUDIT_CHAIN_BATCH = 50_000
AUDIT_LOG_COLUMNS = (
    "id",
    "action",
    "resource_type",
    "resource_id",
    "actor_key_id",
    "metadata",
    "created_at",
    "chain_seq",
    "chain_hash",
    "raw",
    "raw_sha256",
    "run_id",
    "harvested_at",
)
GENESIS_HASH = "0" * 64  # the chain_hash "before" the first audit entry
# Which Intercom workspace the conversation lives in: tag (v1 shape) or metadata (guide shape);
# absent means the default workspace. Read from the stored JSON, so the schema stays as it is.
WORKSPACE_SQL = (
    "nullif(lower(trim(coalesce(json_extract_string(e.tags, '$.intercom_workspace'), "
    "json_extract_string(e.metadata, '$.intercom_workspace'), ''))), '')"
)


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


class _Listed(NamedTuple):
    """One message from the list producer: a page, the end of a listing (page None), or a
    listing failure (error set). key None marks the end of all listings."""

    key: tuple[str, str] | None
    page: Page | None
    error: BaseException | None


@dataclass
class _EmailBatch:
    """Collected rows of one mailbox listing waiting for their transaction."""

    cursor_key: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    cursor: str | None = None
    # Set when the listing ends complete: the new watermark, committed with the last rows.
    watermark: str | None = None
    # A detail read of this listing failed: the watermark must not move past that email.
    incomplete: bool = False


@dataclass(frozen=True)
class _ListingPlan:
    """What one mailbox listing asks for this run.

    After one complete, unfiltered listing, later runs list only from the lookback window
    on (everything older is stored), and read by id the stored outbound mail that is not
    final yet and is older than that: the list would no longer show it.
    """

    date_after: datetime | None
    date_before: datetime | None
    advances_watermark: bool
    stored_not_final: tuple[str, ...] = ()


@dataclass
class _AuditWalk:
    """The audit-log walk: what it knows, its own store connection, and how it ended.

    Entries go to the `_auditkit_audit_walk` staging table as they are read, so memory
    holds ids, not entries, however long the log is.
    """

    stored_ids: set[str]  # entries in multimail_audit_log when the run began
    cursor: duckdb.DuckDBPyConnection  # the walk's own connection: it writes from its thread
    complete: bool = False  # a pass read the log to its end
    newest_id: str | None = None
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


@dataclass(frozen=True)
class StoredEmail:
    is_final: bool
    created_at: datetime | None
    raw_sha256: str
    first_harvested_at: datetime


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def _json_safe(value: Any) -> Any:
    """Run params as plain JSON (TOML dates and Paths become strings)."""
    return json.loads(json.dumps(value, default=str))


def harvest(
    settings: Settings,
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    mailbox_ids: Sequence[str] | None = None,
    full_audit_scan: bool = False,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
    intercom_transport: httpx.BaseTransport | None = None,
    check_endpoints: bool = True,
) -> HarvestResult:
    """Pull everything MultiMail (and Intercom, when a token is set) holds into `store`.

    Returns the run summary; outcome is `ok`, or `partial` when some stage failed but the
    rest landed. Raises ConfigError without an API key. Before any record is read, the
    preflight (`sources.preflight`, skipped with `check_endpoints=False` when the caller
    already ran it) raises SourceError naming an API that cannot be reached or refuses its
    key (SourceAuthError for 401/403, here or later); a failed run is recorded as such.
    """
    require_api_key(settings)
    run_id = new_run_id()
    params = {
        **settings.public_dict(),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "mailbox_ids": sorted(mailbox_ids) if mailbox_ids else None,
        "full_audit_scan": full_audit_scan,
    }
    # Only one writer can hold the store, so a 'running' row now belongs to a dead process.
    store.con.execute(
        "UPDATE harvest_runs SET outcome = 'failed', finished_at = now(), "
        "error = 'interrupted: the process ended before the run finished' WHERE outcome = 'running'"
    )
    store.start_run(run_id, "harvest", _json_safe(params))
    started = time.perf_counter()
    result = HarvestResult(run_id=run_id)
    worker = _Harvester(
        settings,
        store,
        result,
        since=since,
        until=until,
        mailbox_ids={m.strip().lower() for m in mailbox_ids} if mailbox_ids else None,
        full_audit_scan=full_audit_scan,
        progress=progress,
        transport=transport,
        intercom_transport=intercom_transport,
    )
    try:
        if check_endpoints:  # recorded as this run's failure, with the cause it names
            preflight(settings, transport, intercom_transport)
        worker.run()
    except BaseException as exc:
        result.outcome = "failed"
        result.duration = time.perf_counter() - started
        message = (
            str(exc)
            if isinstance(exc, SourceError | ConfigError)
            else f"{type(exc).__name__}: {exc}"
        )
        result.errors.append(message)
        try:
            store.finish_run(run_id, "failed", result.to_dict(), error=message[:2000])
        except Exception:  # the store itself may be the problem; the original error matters more
            logger.exception("could not record the failed run %s", run_id)
        raise
    result.outcome = "partial" if result.errors else "ok"
    result.duration = time.perf_counter() - started
    store.finish_run(
        run_id,
        result.outcome,
        result.to_dict(),
        error="; ".join(result.errors)[:2000] if result.errors else None,
    )
    logger.info("harvest %s", result.one_line())
    return result


class _Harvester:
    """One run's state: clients, the worker pool and the rows' common stamps."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        result: HarvestResult,
        *,
        since: datetime | None,
        until: datetime | None,
        mailbox_ids: set[str] | None,
        full_audit_scan: bool,
        progress: Progress | None,
        transport: httpx.BaseTransport | None,
        intercom_transport: httpx.BaseTransport | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.result = result
        self.run_id = result.run_id
        self.since, self.until = since, until
        self.mailbox_ids = mailbox_ids
        self.full_audit_scan = full_audit_scan
        self.progress = progress
        self.transport = transport or default_transport(
            concurrency=settings.concurrency, max_retries=settings.max_retries
        )
        self.intercom_transport = (
            intercom_transport
            or transport
            or default_transport(concurrency=settings.concurrency, max_retries=settings.max_retries)
        )
        self.harvested_at = datetime.now(UTC)
        self.client = build_client(
            settings.multimail_api_url,
            settings.multimail_api_key,
            timeout=settings.timeout_seconds,
            transport=self.transport,
        )
        self.client.event_hooks["request"] = [self._count_request]
        self._stats_lock = threading.Lock()
        self.pending_quarantine: list[tuple[str, str, str, str | None]] = []

    # -- bookkeeping ------------------------------------------------------------------
    def _count_request(self, request: httpx.Request) -> None:
        """Event hook, called in worker threads once per logical request (not per retry)."""
        parts = request.url.path.strip("/").split("/")
        with self._stats_lock:
            if len(parts) == 5 and parts[1] == "mailboxes" and parts[3] == "emails":
                self.result.detail_calls += 1
            else:
                self.result.list_calls += 1

    def _count(self, key: str, n: int) -> None:
        self.result.counts[key] = self.result.counts.get(key, 0) + n

    def _stamp(self, row: dict[str, Any]) -> dict[str, Any]:
        row["run_id"] = self.run_id
        row["harvested_at"] = self.harvested_at
        return row

    def _quarantine(
        self, endpoint: str, reason: str, raw: Any, record_id: str | None = None
    ) -> None:
        """Queue a bad record; it is written in the next batch's transaction.

        Called from the main thread and from the list producer (bad pages), hence the lock.
        """
        raw_text = raw if isinstance(raw, str) else canonical_json(raw)
        logger.warning("quarantined a record from %s: %s", endpoint, reason)
        with self._stats_lock:
            self.pending_quarantine.append((endpoint, reason, raw_text, record_id))

    def _flush_quarantine(self, source: str = multimail.SOURCE) -> None:
        with self._stats_lock:
            queued, self.pending_quarantine = self.pending_quarantine, []
        for endpoint, reason, raw_text, record_id in queued:
            self.store.quarantine(self.run_id, source, endpoint, reason, raw_text, record_id)
        self.result.quarantined += len(queued)

    def _on_bad_page(self, exc: PayloadError) -> None:
        self._quarantine(exc.url or "?", f"invalid page: {exc}", exc.raw_text or "")

    def _stage_failed(self, stage: str, exc: SourceError) -> None:
        if isinstance(exc, SourceAuthError):
            raise exc
        logger.error("%s: %s", stage, exc)
        self.result.errors.append(f"{stage}: {exc}")

    def _integrity_event(
        self,
        record_type: str,
        record_id: str,
        change: str,
        stored_sha: str | None,
        stored_raw: str | None,
        source_sha: str | None,
        source_raw: str | None,
    ) -> None:
        event_id = sha256_hex(f"{record_type}|{record_id}|{stored_sha or ''}|{source_sha or ''}")
        self.store.con.execute(
            "INSERT OR REPLACE INTO integrity_events VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?, ?)",
            [
                event_id,
                self.run_id,
                record_type,
                record_id,
                change,
                stored_sha,
                source_sha,
                stored_raw,
                source_raw,
            ],
        )
        self.result.integrity_events += 1
        logger.warning(
            "integrity: %s %s %s at the source since it was harvested",
            record_type,
            record_id,
            change,
        )

    # -- the run ----------------------------------------------------------------------
    def run(self) -> None:
        pool = ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="harvest"
        )
        self.pool = pool
        audit_walk: _AuditWalk | None = None
        try:
            with self.client:
                audit_walk = self._start_audit_walk()
                self._harvest_settings()
                mailboxes = self._harvest_collection(
                    multimail.MAILBOXES, "multimail_mailboxes", normalise_mailbox
                )
                newest = self.store.query(
                    "SELECT max(created_at) FROM multimail_emails WHERE direction = 'outbound'"
                )[0][0]
                self.window_start = (
                    newest - timedelta(days=self.settings.lookback_days) if newest else None
                )
                # --mailbox takes an id or an address (status shows both).
                self._harvest_mailboxes(
                    [
                        m
                        for m in mailboxes
                        if self.mailbox_ids is None or _mailbox_keys(m) & self.mailbox_ids
                    ]
                )
                if self.mailbox_ids:
                    known = set().union(*(_mailbox_keys(m) for m in mailboxes))
                    for selector in sorted(self.mailbox_ids - known):
                        self.result.errors.append(
                            f"mailbox {selector}: no mailbox with that id or address is listed "
                            "by GET /v1/mailboxes"
                        )
                self._harvest_pending()
                self._harvest_audit_log(audit_walk)
                self._enrich_intercom()
        finally:
            if audit_walk is not None:  # a failed run must not leave the walk paging
                audit_walk.stop.set()
                if audit_walk.thread is not None:
                    # The client is closed by now, so a request in flight ends at once; a
                    # retry back-off may not, and a connection in use must not be closed.
                    audit_walk.thread.join(timeout=5)
                if audit_walk.thread is None or not audit_walk.thread.is_alive():
                    audit_walk.cursor.close()
            # On Ctrl-C or an auth failure, queued detail reads are dropped, not waited for.
            pool.shutdown(wait=True, cancel_futures=True)
        self.result.retries = sum(
            t.retries
            for t in {id(t): t for t in (self.transport, self.intercom_transport)}.values()
            if isinstance(t, RetryTransport)
        )

    def _harvest_settings(self) -> None:
        try:
            response = self.client.get(multimail.ACCOUNT.path)
            raise_for_status(response, source="MultiMail", credential=multimail.CREDENTIAL)
            body = decode_json(response)
            try:
                row = self._stamp(normalise_account(body))
                with self.store.transaction():
                    self.store.upsert("multimail_account", [row])
                    self.store.set_cursor(multimail.SOURCE, "account", None, self.run_id)
                self._count("account", 1)
            except RecordError as exc:
                self._quarantine(multimail.ACCOUNT.path, str(exc), body)
                with self.store.transaction():
                    self._flush_quarantine()
            self._finish("account", self.result.counts.get("account", 0))
        except PayloadError as exc:
            self._quarantine(multimail.ACCOUNT.path, str(exc), exc.raw_text)
            with self.store.transaction():
                self._flush_quarantine()
            self._stage_failed("account", exc)
        except SourceError as exc:
            self._stage_failed("account", exc)
        self._harvest_collection(multimail.API_KEYS, "multimail_api_keys", normalise_api_key)
        self._harvest_collection(multimail.DOMAINS, "multimail_domains", normalise_domain)
        self._harvest_collection(multimail.WEBHOOKS, "multimail_webhooks", normalise_webhook)
        self._harvest_collection(
            multimail.SUPPRESSIONS, "multimail_suppressions", normalise_suppression
        )

    def _finish(self, stage: str, count: int) -> None:
        if self.progress is not None:
            self.progress.finish(stage, count)

    def _harvest_collection(
        self,
        endpoint: multimail.Endpoint,
        table: str,
        normaliser: Callable[[Any], dict[str, Any]],
        *,
        replace_all: bool = False,
    ) -> list[dict[str, Any]]:
        """A small collection in one transaction; `replace_all` for snapshots (pending queue)."""
        rows: list[dict[str, Any]] = []
        try:
            for page in paginate(
                self.client,
                endpoint.path,
                endpoint.paginator,
                params=endpoint.params,
                pk=endpoint.pk,
                on_bad_page=self._on_bad_page,
            ):
                rows.extend(self._normalise_page(page, normaliser, endpoint.path))
        except SourceError as exc:
            self._stage_failed(endpoint.resource, exc)
            with self.store.transaction():
                self._flush_quarantine()
            return []
        with self.store.transaction():
            if replace_all:
                self.store.con.execute(f"DELETE FROM {table}")
            self.store.upsert(table, rows)
            self._flush_quarantine()
            self.store.set_cursor(multimail.SOURCE, endpoint.resource, None, self.run_id)
        self._count(endpoint.resource, len(rows))
        self._finish(endpoint.resource, len(rows))
        return rows

    def _normalise_page(
        self, page: Page, normaliser: Callable[[Any], dict[str, Any]], endpoint: str
    ) -> list[dict[str, Any]]:
        rows = []
        for record in page.records:
            try:
                rows.append(self._stamp(normaliser(record)))
            except RecordError as exc:
                rid = (
                    record.get("id")
                    if isinstance(record, dict) and isinstance(record.get("id"), str)
                    else None
                )
                self._quarantine(endpoint, str(exc), record, rid)
        return rows

    # -- emails -----------------------------------------------------------------------
    def _stored_emails(self, mailbox_id: str) -> dict[str, StoredEmail]:
        rows = self.store.query(
            "SELECT id, is_final, created_at, raw_sha256, first_harvested_at FROM multimail_emails "
            "WHERE mailbox_id = ?",
            [mailbox_id],
        )
        return {r[0]: StoredEmail(r[1], r[2], r[3], r[4]) for r in rows}

    def _needs_detail(self, email_id: str, stored: Mapping[str, StoredEmail]) -> bool:
        known = stored.get(email_id)
        if known is None or not known.is_final:
            return True
        # Final mail is re-read only inside the lookback window, where late changes still show.
        return (
            self.window_start is not None
            and known.created_at is not None
            and known.created_at >= self.window_start
        )

    def _plan_listing(self, mailbox_id: str, direction: str) -> _ListingPlan:
        if self.since is not None or self.until is not None:
            # A filtered listing says nothing about mail outside the filter.
            return _ListingPlan(self.since, self.until, advances_watermark=False)
        mark = self.store.get_cursor(multimail.SOURCE, _watermark_key(mailbox_id, direction))
        if mark is None:
            return _ListingPlan(None, None, advances_watermark=True)
        # The lookback window is measured from the newest stored mail, as for re-reads; the
        # watermark term covers a server clock running ahead of ours.
        floor = datetime.fromisoformat(mark) - timedelta(days=self.settings.lookback_days)
        if self.window_start is not None:
            floor = min(floor, self.window_start)
        stale: tuple[str, ...] = ()
        if direction == "outbound":
            stale = tuple(
                r[0]
                for r in self.store.query(
                    "SELECT id FROM multimail_emails WHERE mailbox_id = ? AND direction = "
                    "'outbound' AND NOT is_final AND (created_at IS NULL OR created_at < ?) "
                    "ORDER BY id",
                    [mailbox_id, floor],
                )
            )
        return _ListingPlan(floor, None, advances_watermark=True, stored_not_final=stale)

    def _list_mailboxes(
        self,
        mailboxes: Sequence[Mapping[str, Any]],
        plans: Mapping[tuple[str, str], _ListingPlan],
        out: queue.Queue[_Listed],
        stop: threading.Event,
    ) -> None:
        """Producer thread: walk every mailbox's outbound then inbound list, page by page.

        Paging runs ahead of the detail reads (bounded by the queue), so list latency never
        leaves the worker pool idle, not even between mailboxes. Stored mail that is not
        final and older than the listing's window follows as pages of ids.
        """
        try:
            for mailbox in mailboxes:
                for direction in ("outbound", "inbound"):
                    key = (mailbox["id"], direction)
                    plan = plans[key]
                    endpoint = multimail.email_list_endpoint(
                        mailbox["id"],
                        direction,
                        date_after=plan.date_after,
                        date_before=plan.date_before,
                    )
                    try:
                        for page in paginate(
                            self.client,
                            endpoint.path,
                            endpoint.paginator,
                            params=endpoint.params,
                            on_bad_page=self._on_bad_page,
                        ):
                            if stop.is_set():
                                return
                            out.put(_Listed(key, page, None))
                    except SourceError as exc:
                        out.put(_Listed(key, None, exc))
                        continue
                    ids = plan.stored_not_final
                    for start in range(0, len(ids), multimail.EMAIL_PAGE_LIMIT):
                        if stop.is_set():
                            return
                        chunk = ids[start : start + multimail.EMAIL_PAGE_LIMIT]
                        out.put(_Listed(key, _stored_not_final_page(endpoint.path, chunk), None))
                    out.put(_Listed(key, None, None))
        except BaseException as exc:  # a bug here must surface in the main thread, not vanish
            out.put(_Listed(("", ""), None, exc))
        finally:
            out.put(_Listed(None, None, None))

    def _harvest_mailboxes(self, mailboxes: Sequence[Mapping[str, Any]]) -> None:
        """Outbound mail via read_email (bounded concurrency), inbound from summaries only."""
        stage_of = {m["id"]: f"mailbox {m.get('address') or m['id']}" for m in mailboxes}
        plans = {
            (m["id"], direction): self._plan_listing(m["id"], direction)
            for m in mailboxes
            for direction in ("outbound", "inbound")
        }
        stored: dict[str, dict[str, StoredEmail]] = {}
        batches: dict[tuple[str, str], _EmailBatch] = {}
        done: dict[str, int] = {}
        listed: queue.Queue[_Listed] = queue.Queue(maxsize=4)
        stop = threading.Event()
        producer = threading.Thread(
            target=self._list_mailboxes,
            args=(mailboxes, plans, listed, stop),
            name="harvest-lists",
            daemon=True,
        )
        # In arrival order: (listing key, page or None, its detail futures, end-of-listing error).
        in_flight: deque[
            tuple[
                tuple[str, str],
                Page | None,
                list[tuple[str, Future[tuple[int, Any]]]],
                BaseException | None,
            ]
        ] = deque()

        def settle(
            entry: tuple[
                tuple[str, str],
                Page | None,
                list[tuple[str, Future[tuple[int, Any]]]],
                BaseException | None,
            ],
        ) -> None:
            key, page, futures, error = entry
            mailbox_id, direction = key
            batch = batches[key]
            if page is not None:
                if direction == "outbound":
                    self._collect_outbound(page, futures, mailbox_id, stored[mailbox_id], batch)
                else:
                    self._collect_inbound(page, mailbox_id, stored[mailbox_id], batch)
                if self.progress is not None:
                    self.progress.advance(stage_of[mailbox_id], len(page.records))
                if len(batch.rows) < COMMIT_ROWS:
                    return
            # A full batch, or the end of a listing (complete or failed): commit what we have.
            if page is None and error is None and plans[key].advances_watermark:
                if batch.incomplete:
                    logger.warning(
                        "%s %s: some detail reads failed; the next run lists this mailbox in "
                        "full again",
                        stage_of[mailbox_id],
                        direction,
                    )
                else:
                    batch.watermark = self.harvested_at.isoformat()
            done[mailbox_id] = done.get(mailbox_id, 0) + self._commit_emails(
                batch, stored[mailbox_id]
            )
            if page is None:
                if isinstance(error, SourceError):
                    self._stage_failed(f"{stage_of[mailbox_id]} {direction}", error)
                if direction == "inbound":
                    self._finish(stage_of[mailbox_id], done.get(mailbox_id, 0))

        producer.start()
        try:
            while True:
                item = listed.get()
                if item.key is None:
                    break
                if item.page is None and item.error is not None and item.key == ("", ""):
                    raise item.error
                mailbox_id, direction = item.key
                if mailbox_id not in stored:
                    stored[mailbox_id] = self._stored_emails(mailbox_id)
                    if self.progress is not None:
                        self.progress.start(stage_of[mailbox_id], None)
                batches.setdefault(item.key, _EmailBatch(f"emails:{mailbox_id}:{direction}"))
                futures = (
                    self._submit_details(item.page, mailbox_id, stored[mailbox_id])
                    if item.page is not None and direction == "outbound"
                    else []
                )
                in_flight.append((item.key, item.page, futures, item.error))
                # One page of detail reads stays queued behind the one being settled, so the pool
                # never idles; older entries (and finished listings) settle in arrival order.
                while sum(1 for e in in_flight if e[2]) > 1 or (in_flight and not in_flight[0][2]):
                    settle(in_flight.popleft())
            while in_flight:
                settle(in_flight.popleft())
        except BaseException:
            stop.set()
            for _, _, futures, _ in in_flight:
                for _, fut in futures:
                    fut.cancel()
            raise
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    listed.get_nowait()
                except queue.Empty:
                    producer.join(timeout=0.05)

    def _submit_details(
        self, page: Page, mailbox_id: str, stored: Mapping[str, StoredEmail]
    ) -> list[tuple[str, Future[tuple[int, Any]]]]:
        futures = []
        for summary in page.records:
            email_id = summary.get("id") if isinstance(summary, dict) else None
            if not isinstance(email_id, str) or not email_id:
                self._quarantine(page.url, "email summary has no string id", summary)
                continue
            if self._needs_detail(email_id, stored):
                futures.append((email_id, self.pool.submit(self._read_email, mailbox_id, email_id)))
            else:
                self.result.skipped["detail_final_outside_window"] = (
                    self.result.skipped.get("detail_final_outside_window", 0) + 1
                )
        return futures

    def _read_email(self, mailbox_id: str, email_id: str) -> tuple[int, Any]:
        """Worker thread: one read_email call. Returns (status, body or PayloadError)."""
        response = self.client.get(multimail.email_detail_path(mailbox_id, email_id))
        if response.status_code == 404:
            return 404, response.text
        raise_for_status(response, source="MultiMail", credential=multimail.CREDENTIAL)
        try:
            return response.status_code, decode_json(response)
        except PayloadError as exc:
            return response.status_code, exc

    def _collect_outbound(
        self,
        page: Page,
        futures: list[tuple[str, Future[tuple[int, Any]]]],
        mailbox_id: str,
        stored: Mapping[str, StoredEmail],
        batch: _EmailBatch,
    ) -> None:
        """Wait for one page's detail reads and add their rows to the batch."""
        for email_id, fut in futures:
            detail_path = multimail.email_detail_path(mailbox_id, email_id)
            try:
                status, body = fut.result()
            except SourceAuthError:
                raise
            except SourceError as exc:
                # One email outlasting the retry budget must not lose the rest of the page.
                self.result.errors.append(f"email {email_id}: {exc}")
                batch.incomplete = True
                continue
            if status == 404:
                reason = (
                    "stored and not final, but read_email now answers 404"
                    if page.extra.get(STORED_NOT_FINAL)
                    else "listed but read_email answered 404"
                )
                self._quarantine(detail_path, reason, body, email_id)
                continue
            if isinstance(body, PayloadError):
                self._quarantine(detail_path, str(body), body.raw_text, email_id)
                continue
            try:
                row = normalise_email(
                    body,
                    mailbox_id=mailbox_id,
                    direction="outbound",
                    conversation_key=self.settings.intercom_conversation_tag,
                )
            except RecordError as exc:
                self._quarantine(detail_path, str(exc), body, email_id)
                continue
            if row["id"] != email_id:
                self._quarantine(
                    detail_path, f"read_email returned id {row['id']!r}", body, email_id
                )
                continue
            known = stored.get(email_id)
            if known is not None and known.is_final and known.raw_sha256 != row["raw_sha256"]:
                batch.changed.append((email_id, known.raw_sha256, row))
            row["first_harvested_at"] = known.first_harvested_at if known else self.harvested_at
            batch.rows.append(self._stamp(row))
        if not page.extra.get(STORED_NOT_FINAL):
            batch.cursor = _list_cursor(page)

    def _collect_inbound(
        self, page: Page, mailbox_id: str, stored: Mapping[str, StoredEmail], batch: _EmailBatch
    ) -> None:
        """Inbound rows come from list summaries only: read_email would mark them read."""
        for summary in page.records:
            try:
                row = normalise_email(
                    summary,
                    mailbox_id=mailbox_id,
                    direction="inbound",
                    conversation_key=self.settings.intercom_conversation_tag,
                )
            except RecordError as exc:
                self._quarantine(page.url, str(exc), summary)
                continue
            known = stored.get(row["id"])
            row["first_harvested_at"] = known.first_harvested_at if known else self.harvested_at
            batch.rows.append(self._stamp(row))
        batch.cursor = _list_cursor(page)

    def _commit_emails(self, batch: _EmailBatch, stored: dict[str, StoredEmail]) -> int:
        """Rows, integrity events, quarantined records and the list cursor: one transaction."""
        if (
            batch.cursor is None
            and batch.watermark is None
            and not batch.rows
            and not self.pending_quarantine
        ):
            return 0
        with self.store.transaction():
            for email_id, stored_sha, row in batch.changed:
                stored_raw = self.store.query(
                    "SELECT raw FROM multimail_emails WHERE id = ?", [email_id]
                )[0][0]
                self._integrity_event(
                    "email",
                    email_id,
                    "changed",
                    stored_sha,
                    stored_raw,
                    row["raw_sha256"],
                    row["raw"],
                )
            self.store.upsert("multimail_emails", batch.rows)
            self._flush_quarantine()
            if batch.cursor is not None:
                self.store.set_cursor(multimail.SOURCE, batch.cursor_key, batch.cursor, self.run_id)
            if batch.watermark is not None:
                mailbox_id, direction = batch.cursor_key.split(":", 1)[1].rsplit(":", 1)
                self.store.set_cursor(
                    multimail.SOURCE,
                    _watermark_key(mailbox_id, direction),
                    batch.watermark,
                    self.run_id,
                )
        self._remember(batch.rows, stored)
        count = len(batch.rows)
        direction = batch.cursor_key.rsplit(":", 1)[1]
        self._count(f"emails_{direction}", count)
        batch.rows, batch.changed, batch.cursor, batch.watermark = [], [], None, None
        return count

    def _remember(self, rows: Iterable[Mapping[str, Any]], stored: dict[str, StoredEmail]) -> None:
        for row in rows:
            stored[row["id"]] = StoredEmail(
                row["is_final"], row["created_at"], row["raw_sha256"], row["first_harvested_at"]
            )

    # -- pending queue ------------------------------------------------------------------
    def _harvest_pending(self) -> None:
        """A snapshot of the approval queue, replaced as a whole (one transaction).

        The queue needs the `oversight` scope, which a harvester key should not hold (it can
        approve mail); pending mail is in `multimail_emails` by status anyway. So a 403 here
        is a counted skip with a warning, not a failed run.
        """
        try:
            self._harvest_collection(
                multimail.PENDING, "multimail_pending", normalise_pending, replace_all=True
            )
        except SourceAuthError as exc:
            logger.warning("approval queue skipped: %s", exc)
            self.result.skipped["pending_no_oversight_scope"] = 1

    # -- audit log ----------------------------------------------------------------------
    def _start_audit_walk(self) -> _AuditWalk:
        """Page the audit log in a thread of its own while the mail is harvested.

        Its pages chain by an opaque cursor, so they cannot be fetched in parallel with each
        other; walking them beside the detail reads instead of after them took a 20,000-email
        harvest from 1.48x to about 1.16x of the concurrency-bound limit.
        """
        # Leftovers of a killed run are scratch: its entries were never moved or chained.
        self.store.con.execute(f"DELETE FROM {AUDIT_STAGING}")
        self.store.column_types(AUDIT_STAGING)  # fill the cache here, not in the walk thread
        walk = _AuditWalk(
            stored_ids={r[0] for r in self.store.query("SELECT id FROM multimail_audit_log")},
            cursor=self.store.con.cursor(),
        )
        walk.thread = threading.Thread(
            target=self._walk_audit_log,
            args=(walk,),
            kwargs={"full_scan": self.full_audit_scan, "top_up": False},
            name="harvest-audit-log",
            daemon=True,
        )
        walk.thread.start()
        return walk

    def _walk_audit_log(self, walk: _AuditWalk, *, full_scan: bool, top_up: bool) -> None:
        """Newest first until an entry already stored (or already staged, when topping up),
        or to the end on a full scan, staging every entry met. Runs in the walk's thread
        for the first pass; errors are left on the walk for the main thread."""
        endpoint = multimail.AUDIT_LOG
        newest_id: str | None = None
        pending: list[dict[str, Any]] = []
        try:
            pages = paginate(
                self.client,
                endpoint.path,
                endpoint.paginator,
                params=endpoint.params,
                on_bad_page=self._on_bad_page,
            )
            met_known = False
            for page in pages:
                if walk.stop.is_set():
                    pages.close()
                    return
                rows = self._normalise_page(page, normalise_audit_entry, endpoint.path)
                staged = self._staged_ids(walk, [r["id"] for r in rows]) if top_up else set()
                for row in rows:
                    newest_id = newest_id or row["id"]
                    if row["id"] in staged:
                        met_known = True
                        continue
                    row["is_new"] = row["id"] not in walk.stored_ids
                    met_known = met_known or not row["is_new"]
                    pending.append(row)
                if len(pending) >= AUDIT_STAGING_ROWS:
                    self._stage_audit_rows(walk, pending)
                    pending = []
                if met_known and not full_scan:
                    pages.close()
                    break
            else:
                walk.complete = True
            self._stage_audit_rows(walk, pending)
        except BaseException as exc:  # reported by the main thread, which owns the run
            walk.error = exc
            return
        walk.newest_id = newest_id or walk.newest_id

    def _staged_ids(self, walk: _AuditWalk, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = walk.cursor.execute(
            f"SELECT id FROM {AUDIT_STAGING} WHERE id IN (SELECT unnest($ids))", {"ids": ids}
        ).fetchall()
        return {r[0] for r in rows}

    def _stage_audit_rows(self, walk: _AuditWalk, rows: list[dict[str, Any]]) -> None:
        """One autocommitted insert through the walk's own connection (scratch, not evidence)."""
        if not rows:
            return
        walk.cursor.register("_ak_audit_page", self.store.arrow_table(AUDIT_STAGING, rows))
        try:
            cols = ", ".join(f'"{c}"' for c in rows[0])
            walk.cursor.execute(
                f"INSERT OR IGNORE INTO {AUDIT_STAGING} ({cols}) SELECT {cols} FROM _ak_audit_page"
            )
        finally:
            walk.cursor.unregister("_ak_audit_page")

    def _harvest_audit_log(self, walk: _AuditWalk) -> None:
        """Finish the walk, top it up, then move every new entry in one transaction.

        The top-up pass starts after the mail is stored, so every message harvested has its
        audit entries too. All new entries land in one transaction, oldest first on the hash
        chain: a run killed half-way leaves nothing behind, so the next run cannot stop early
        at an entry a dead run stored and skip the older ones it never reached.
        """
        assert walk.thread is not None
        walk.thread.join()
        if walk.error is None:
            self._walk_audit_log(walk, full_scan=False, top_up=True)
        if walk.error is not None:
            if not isinstance(walk.error, SourceError):
                raise walk.error
            self._stage_failed("audit_log", walk.error)
            with self.store.transaction():
                self._flush_quarantine()
            return
        with self.store.transaction():
            changed = self.store.query(
                f"SELECT s.id, a.raw_sha256, a.raw, s.raw_sha256, s.raw FROM {AUDIT_STAGING} s "
                "JOIN multimail_audit_log a USING (id) "
                "WHERE NOT s.is_new AND s.raw_sha256 <> a.raw_sha256 ORDER BY s.id"
            )
            for entry_id, stored_sha, stored_raw, source_sha, source_raw in changed:
                self._integrity_event(
                    "audit_entry",
                    entry_id,
                    "changed",
                    stored_sha,
                    stored_raw,
                    source_sha,
                    source_raw,
                )
            if self.full_audit_scan and walk.complete:
                removed = self.store.query(
                    "SELECT a.id, a.raw_sha256, a.raw FROM multimail_audit_log a "
                    f"ANTI JOIN {AUDIT_STAGING} s USING (id) ORDER BY a.id"
                )
                for entry_id, stored_sha, stored_raw in removed:
                    self._integrity_event(
                        "audit_entry", entry_id, "removed", stored_sha, stored_raw, None, None
                    )
            added = self._chain_staged(walk)
            self.store.con.execute(f"DELETE FROM {AUDIT_STAGING}")
            self._flush_quarantine()
            self.store.set_cursor(multimail.SOURCE, "audit_log", walk.newest_id, self.run_id)
        self._count("audit_log", added)
        self._finish("audit_log", added)

    def _chain_staged(self, walk: _AuditWalk) -> int:
        """Append the staged new entries to the hash chain in (created_at, id) order, a batch
        at a time: the walk's connection streams them (committed), this transaction writes."""
        last = self.store.query(
            "SELECT chain_seq, chain_hash FROM multimail_audit_log ORDER BY chain_seq DESC LIMIT 1"
        )
        seq, prev_hash = (last[0][0], last[0][1]) if last else (0, GENESIS_HASH)
        # Streams (a relation's reader; an execute() result would be copied whole first).
        ordered = walk.cursor.sql(
            f"SELECT id, raw_sha256 FROM {AUDIT_STAGING} WHERE is_new ORDER BY created_at, id"
        ).to_arrow_reader(AUDIT_CHAIN_BATCH)
        columns = ", ".join(f'"{c}"' for c in AUDIT_LOG_COLUMNS)
        source = ", ".join(
            f'c."{c}"' if c in ("chain_seq", "chain_hash") else f's."{c}"'
            for c in AUDIT_LOG_COLUMNS
        )
        # Links first (small rows), then one insert joining them to the staged entries.
        self.store.con.execute(
            "CREATE OR REPLACE TEMP TABLE _ak_chain_links "
            "(id VARCHAR, chain_seq BIGINT, chain_hash VARCHAR)"
        )
        added = 0
        with ordered:
            for batch in ordered:
                ids, seqs, hashes = batch.column(0).to_pylist(), [], []
                for digest in batch.column(1).to_pylist():
                    seq += 1
                    prev_hash = sha256_hex(prev_hash + digest)
                    seqs.append(seq)
                    hashes.append(prev_hash)
                links = pa.table(
                    {"id": ids, "chain_seq": pa.array(seqs, pa.int64()), "chain_hash": hashes}
                )
                self.store.con.register("_ak_chain_batch", links)
                try:
                    self.store.con.execute(
                        "INSERT INTO _ak_chain_links SELECT * FROM _ak_chain_batch"
                    )
                finally:
                    self.store.con.unregister("_ak_chain_batch")
                added += len(ids)
        self.store.con.execute(
            f"INSERT INTO multimail_audit_log ({columns}) SELECT {source} "
            f"FROM {AUDIT_STAGING} s JOIN _ak_chain_links c USING (id)"
        )
        self.store.con.execute("DROP TABLE _ak_chain_links")
        return added

    # -- Intercom -----------------------------------------------------------------------
    def _enrich_intercom(self) -> None:
        """Fetch linked conversations, each from its own workspace's host with its token.

        Conversation ids are the table's key: a clash of ids across workspaces is not handled
        (Intercom ids are unique per workspace only; the later workspace's row would win).
        """
        by_workspace: dict[str | None, list[str]] = {}
        for cid, workspace in self.store.query(
            f"SELECT DISTINCT e.conversation_id, {WORKSPACE_SQL} AS workspace "
            "FROM multimail_emails e "
            "LEFT JOIN intercom_conversations c ON c.id = e.conversation_id "
            "WHERE e.conversation_id IS NOT NULL "
            "AND (c.id IS NULL OR (c.found AND c.state IS DISTINCT FROM 'closed')) "
            "ORDER BY 2 NULLS FIRST, 1"
        ):
            by_workspace.setdefault(workspace, []).append(cid)
        targets: list[tuple[IntercomWorkspace | None, list[str]]] = []
        no_token = 0
        if not self.settings.intercom_access_token:
            # Recorded even when nothing is linked: the summary says enrichment could not run.
            self.result.skipped["intercom_no_token"] = 0
        for name, wanted in by_workspace.items():
            workspace = self.settings.intercom_workspace(name) if name else None
            if name and workspace is None:
                logger.warning(
                    "Intercom enrichment skipped for %d conversations of workspace %r: "
                    "it has no [intercom.workspaces.%s] table in the config",
                    len(wanted),
                    name,
                    name,
                )
                no_token += len(wanted)
            elif not (workspace.access_token if workspace else self.settings.intercom_access_token):
                logger.warning(
                    "Intercom enrichment skipped for %d conversations%s: %s is not set",
                    len(wanted),
                    f" of workspace {name!r}" if workspace else "",
                    workspace.credential if workspace else intercom.CREDENTIAL,
                )
                no_token += len(wanted)
            else:
                targets.append((workspace, wanted))
        if no_token or "intercom_no_token" in self.result.skipped:
            self.result.skipped["intercom_no_token"] = no_token
        if not targets:
            if self.settings.intercom_access_token:
                self._finish("intercom", 0)
            return
        if self.progress is not None:
            self.progress.start("intercom", sum(len(wanted) for _, wanted in targets))
        fetched = sum(self._enrich_workspace(workspace, wanted) for workspace, wanted in targets)
        self._count("intercom_conversations", fetched)
        self._finish("intercom", fetched)

    def _enrich_workspace(self, workspace: IntercomWorkspace | None, wanted: list[str]) -> int:
        """One workspace's conversations through its own client; returns how many were stored."""
        credential = workspace.credential if workspace else intercom.CREDENTIAL
        fallback_app_id = workspace.app_id if workspace else self.settings.intercom_app_id
        default_region = intercom.region_from_url(self.settings.intercom_api_url)
        fallback_region = workspace.region if workspace else default_region
        client = intercom.build_intercom_client(
            self.settings, transport=self.intercom_transport, workspace=workspace
        )
        client.event_hooks["request"] = [self._count_intercom]
        gate = intercom.RateLimitGate()  # rate limits are per workspace
        fetched = 0
        with client:
            try:
                app = intercom.fetch_app(
                    client,
                    fallback_app_id=fallback_app_id,
                    fallback_region=fallback_region,
                    credential=credential,
                )
            except SourceError as exc:
                self._stage_failed("intercom" + (f" ({workspace.name})" if workspace else ""), exc)
                return 0
            for start in range(0, len(wanted), INTERCOM_BATCH):
                batch = wanted[start : start + INTERCOM_BATCH]
                fetch = partial(
                    intercom.fetch_conversation, client, gate=gate, credential=credential
                )
                futures = [(cid, self.pool.submit(fetch, cid)) for cid in batch]
                rows = []
                for cid, fut in futures:
                    endpoint = f"/conversations/{cid}"
                    try:
                        status, body = fut.result()
                    except SourceAuthError:
                        raise
                    except PayloadError as exc:
                        self._quarantine(endpoint, str(exc), exc.raw_text, cid)
                        continue
                    except SourceError as exc:
                        self.result.errors.append(f"intercom conversation {cid}: {exc}")
                        continue
                    try:
                        row = intercom.conversation_row(
                            cid,
                            status,
                            body,
                            app=app,
                            intercom_version=self.settings.intercom_version,
                            fetched_at=datetime.now(UTC),
                        )
                    except RecordError as exc:
                        self._quarantine(endpoint, str(exc), body, cid)
                        continue
                    rows.append(self._stamp(row))
                with self.store.transaction():
                    self.store.upsert("intercom_conversations", rows)
                    self._flush_quarantine(intercom.SOURCE)
                    self.store.set_cursor(intercom.SOURCE, "conversations", batch[-1], self.run_id)
                fetched += len(rows)
                if self.progress is not None:
                    self.progress.advance("intercom", len(batch))
        return fetched

    def _count_intercom(self, request: httpx.Request) -> None:
        with self._stats_lock:
            self.result.intercom_calls += 1


def _watermark_key(mailbox_id: str, direction: str) -> str:
    """Cursor holding when the last complete, unfiltered listing of this mailbox started."""
    return f"emails_listed:{mailbox_id}:{direction}"


def _stored_not_final_page(list_path: str, email_ids: Sequence[str]) -> Page:
    """A page of stored email ids to read again, in the shape the list producer sends."""
    return Page(
        records=[{"id": email_id} for email_id in email_ids],
        url=f"{list_path} (stored, not final)",
        status=200,
        cursor=None,
        number=0,
        extra={STORED_NOT_FINAL: True},
    )


def _list_cursor(page: Page) -> str:
    """Where a mailbox listing stands after this page (provenance: each run lists afresh)."""
    return canonical_json(
        {"complete": page.cursor is None, "next": page.cursor, "page": page.number}
    )


def content_digest(store: Store, tables: Sequence[str] = HARVESTED_TABLES) -> str:
    """SHA-256 over every harvested row's content, ignoring per-run stamps.

    Two stores with the same digest hold the same evidence even if different runs (or a
    killed run plus its rerun) produced it.
    """
    volatile = {"run_id", "harvested_at", "first_harvested_at", "fetched_at"}
    digest = hashlib.sha256()
    for table in sorted(tables):
        cols = [
            c
            for (c,) in store.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            )
            if c not in volatile
        ]
        col_sql = ", ".join(f'"{c}"' for c in cols)
        for row in store.query(f"SELECT {col_sql} FROM {table} ORDER BY id"):
            digest.update(f"{table}\t{canonical_json([str(v) for v in row])}\n".encode())
    return digest.hexdigest()


def require_api_key(settings: Settings) -> None:
    """ConfigError unless a MultiMail key is set (callers check before creating a store)."""
    if not settings.multimail_api_key:
        raise ConfigError(
            "MULTIMAIL_API_KEY is not set: export it (or MULTIMAIL_API_KEY_FILE) with a key "
            "that has read and admin scopes"
        )


def _mailbox_keys(mailbox: dict[str, Any]) -> set[str]:
    """What `--mailbox` may name a mailbox by: its id or its address, lower case."""
    return {str(v).strip().lower() for v in (mailbox.get("id"), mailbox.get("address")) if v}


def read_records_file(path: Path) -> Iterable[tuple[str, Any | None, str | None]]:
    """(location, record, error) per record of a JSON array, a JSON object (one record) or a
    JSONL file of read_email records. A UTF-8 byte-order mark is skipped (Windows tools
    write one); a file that is not UTF-8 text is refused with ConfigError."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ConfigError(f"{path} is a binary file, not JSON or JSONL records")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON or JSONL"
        ) from exc
    stripped = text.lstrip()
    if stripped.startswith("{"):
        # One pretty-printed record; a one-line record per line is JSONL, handled below.
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            yield f"{path}", record, None
            return
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            yield f"{path}", text, f"not valid JSON: {exc.msg} at line {exc.lineno}"
            return
        for i, record in enumerate(records):
            yield f"{path}[{i}]", record, None
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{lineno}", json.loads(line), None
        except json.JSONDecodeError as exc:
            yield f"{path}:{lineno}", line, f"line {lineno} is not valid JSON: {exc.msg}"


def import_emails(settings: Settings, store: Store, paths: Sequence[Path]) -> HarvestResult:
    """Load saved read_email records (either shape) into `multimail_emails`, a file per transaction.

    Records without a direction are taken as outbound (read_email exports are of sent
    mail). Bad records are quarantined under source `import` and counted.
    """
    run_id = new_run_id()
    store.start_run(run_id, "import", _json_safe({"files": [str(p) for p in paths]}))
    started = time.perf_counter()
    result = HarvestResult(run_id=run_id)
    now = datetime.now(UTC)
    try:
        for path in paths:
            rows: list[dict[str, Any]] = []
            bad: list[tuple[str, str, str]] = []
            for location, record, error in read_records_file(path):
                if error is None:
                    try:
                        row = normalise_email(
                            record, conversation_key=settings.intercom_conversation_tag
                        )
                    except RecordError as exc:
                        error = str(exc)
                if error is not None:
                    raw_text = record if isinstance(record, str) else canonical_json(record)
                    bad.append((location, error, raw_text))
                    continue
                row["direction"] = row["direction"] or "outbound"
                rows.append(row)
            ids = [r["id"] for r in rows]
            first_seen = (
                dict(
                    store.query(
                        "SELECT id, first_harvested_at FROM multimail_emails "
                        "WHERE list_contains(?, id)",
                        [ids],
                    )
                )
                if ids
                else {}
            )
            for row in rows:
                row["first_harvested_at"] = first_seen.get(row["id"], now)
                row["run_id"], row["harvested_at"] = run_id, now
            with store.transaction():
                store.upsert("multimail_emails", rows)
                for location, reason, raw_text in bad:
                    logger.warning("quarantined %s: %s", location, reason)
                    store.quarantine(run_id, "import", str(path), reason, raw_text)
            result.counts["emails_imported"] = result.counts.get("emails_imported", 0) + len(rows)
            result.quarantined += len(bad)
    except OSError as exc:
        result.outcome = "failed"
        store.finish_run(
            run_id, "failed", result.to_dict(), error=f"{exc.filename}: {exc.strerror}"
        )
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    result.outcome = "ok"
    result.duration = time.perf_counter() - started
    store.finish_run(run_id, "ok", result.to_dict())
    return result
