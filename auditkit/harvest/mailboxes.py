"""The mail: every selected mailbox's listings, outbound detail through the read pool,
committed 2,000 rows at a time with the listing's cursor.

A thread pages the lists ahead (`listing.list_mailboxes`), `--concurrency` workers read
outbound detail (`read_email`), and the calling thread normalises and commits. Inbound
rows come from list summaries only: reading inbound detail would mark mail read. A listing
that completes unfiltered, with every detail read stored, commits its watermark.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from auditkit.config import Settings
from auditkit.errors import SourceAuthError, SourceError
from auditkit.harvest.listing import (
    DIRECTIONS,
    STORED_NOT_FINAL,
    Listed,
    ListingPlan,
    list_cursor,
    list_mailboxes,
    plan_listing,
)
from auditkit.harvest.recorder import RunRecorder, logger
from auditkit.normalise import RecordError, normalise_email
from auditkit.sources import multimail
from auditkit.sources.client import PayloadError, decode_json, raise_for_status
from auditkit.sources.paging import Page
from auditkit.store import Cursor, Store
from auditkit.store.books import watermark_cursor
from auditkit.store.harvest_state import (
    StoredEmail,
    newest_outbound_at,
    stored_email_raw,
    stored_emails,
)

# Rows per transaction. Each commit has a fixed cost (a WAL sync, the existence check), so
# 2,000 email rows per commit load ~1.8x faster than 500 (BENCHMARKS.md); a crash loses at
# most this much work, which the next run fetches again.
COMMIT_ROWS = 2000

DetailFutures = list[tuple[str, Future[tuple[int, Any]]]]


@dataclass(frozen=True)
class InFlight:
    """A listed page (or a listing's end) and its detail reads, waiting to be settled in
    arrival order."""

    listed: Listed
    futures: DetailFutures


@dataclass
class EmailBatch:
    """Collected rows of one mailbox listing waiting for their transaction."""

    mailbox_id: str
    direction: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    cursor: str | None = None
    # Set when the listing ends complete: the new watermark, committed with the last rows.
    watermark: Cursor | None = None
    # A detail read of this listing failed: the watermark must not move past that email.
    incomplete: bool = False

    @property
    def cursor_key(self) -> str:
        return f"emails:{self.mailbox_id}:{self.direction}"


def harvest_mailboxes(
    client: httpx.Client,
    pool: ThreadPoolExecutor,
    store: Store,
    books: RunRecorder,
    settings: Settings,
    mailboxes: Sequence[Mapping[str, Any]],
    *,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Outbound mail via read_email (bounded concurrency), inbound from summaries only."""
    newest = newest_outbound_at(store)
    window_start = newest - timedelta(days=settings.lookback_days) if newest else None
    _MailHarvest(client, pool, store, books, settings, window_start).run(
        mailboxes, since=since, until=until
    )


class _MailHarvest:
    """The mail stage's working state: what is stored per mailbox and the open batches."""

    def __init__(
        self,
        client: httpx.Client,
        pool: ThreadPoolExecutor,
        store: Store,
        books: RunRecorder,
        settings: Settings,
        window_start: datetime | None,
    ) -> None:
        self.client, self.pool, self.store, self.books = client, pool, store, books
        self.settings = settings
        # Final mail is re-read only inside this window, where late changes still show.
        self.window_start = window_start
        self.started: set[str] = set()  # mailboxes whose stage has begun
        self.batches: dict[tuple[str, str], EmailBatch] = {}
        self.done: dict[str, int] = {}
        self.stage_of: dict[str, str] = {}
        self.plans: dict[tuple[str, str], ListingPlan] = {}

    def run(
        self,
        mailboxes: Sequence[Mapping[str, Any]],
        *,
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.stage_of = {m["id"]: f"mailbox {m.get('address') or m['id']}" for m in mailboxes}
        self.plans = {
            (m["id"], direction): plan_listing(
                self.store,
                m["id"],
                direction,
                since=since,
                until=until,
                lookback_days=self.settings.lookback_days,
                window_start=self.window_start,
            )
            for m in mailboxes
            for direction in DIRECTIONS
        }
        listed: queue.Queue[Listed] = queue.Queue(maxsize=4)
        stop = threading.Event()
        lookup_con = self.store.cursor()  # the producer's own: it asks from its thread

        def stored_of(mailbox_id: str, page: Page) -> Mapping[str, StoredEmail]:
            return stored_emails(lookup_con, mailbox_id, _listed_ids(page))

        producer = threading.Thread(
            target=list_mailboxes,
            args=(self.client, self.books, mailboxes, self.plans, listed, stop, stored_of),
            name="harvest-lists",
            daemon=True,
        )
        in_flight: deque[InFlight] = deque()
        producer.start()
        try:
            while True:
                item = listed.get()
                if item.key is None:
                    break
                if item.page is None and item.error is not None and item.key == ("", ""):
                    raise item.error
                mailbox_id, direction = item.key
                if mailbox_id not in self.started:
                    self.started.add(mailbox_id)
                    self.books.start(self.stage_of[mailbox_id], None)
                self.batches.setdefault(item.key, EmailBatch(mailbox_id, direction))
                futures = (
                    self._submit_details(item.page, mailbox_id, item.stored)
                    if item.page is not None and direction == "outbound"
                    else []
                )
                in_flight.append(InFlight(item, futures))
                # One page of detail reads stays queued behind the one being settled, so the pool
                # never idles; older entries (and finished listings) settle in arrival order.
                while sum(1 for e in in_flight if e.futures) > 1 or (
                    in_flight and not in_flight[0].futures
                ):
                    self._settle(in_flight.popleft())
            while in_flight:
                self._settle(in_flight.popleft())
        except BaseException:
            stop.set()
            for entry in in_flight:
                for _, fut in entry.futures:
                    fut.cancel()
            raise
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    listed.get_nowait()
                except queue.Empty:
                    producer.join(timeout=0.05)
            lookup_con.close()

    def _settle(self, entry: InFlight) -> None:
        key, page, error = entry.listed.key, entry.listed.page, entry.listed.error
        assert key is not None  # the end-of-all marker is never queued
        mailbox_id, direction = key
        batch = self.batches[key]
        stage = self.stage_of[mailbox_id]
        if page is not None:
            if direction == "outbound":
                self._collect_outbound(page, entry.futures, entry.listed.stored, batch)
            else:
                self._collect_inbound(page, entry.listed.stored, batch)
            self.books.advance(stage, len(page.records))
            if len(batch.rows) < COMMIT_ROWS:
                return
        # A full batch, or the end of a listing (complete or failed): commit what we have.
        if page is None and error is None and self.plans[key].advances_watermark:
            if batch.incomplete:
                logger.warning(
                    "%s %s: some detail reads failed; the next run lists this mailbox in "
                    "full again",
                    stage,
                    direction,
                )
            else:
                batch.watermark = watermark_cursor(
                    mailbox_id, direction, self.books.harvested_at, self.books.run_id
                )
        self.done[mailbox_id] = self.done.get(mailbox_id, 0) + self._commit(batch)
        if page is None:
            if isinstance(error, SourceError):
                self.books.stage_failed(f"{stage} {direction}", error)
            if direction == "inbound":
                self.books.finish(stage, self.done.get(mailbox_id, 0))

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

    def _submit_details(
        self, page: Page, mailbox_id: str, stored: Mapping[str, StoredEmail]
    ) -> DetailFutures:
        futures = []
        for summary in page.records:
            email_id = summary.get("id") if isinstance(summary, dict) else None
            if not isinstance(email_id, str) or not email_id:
                self.books.quarantine(page.url, "email summary has no string id", summary)
                continue
            if self._needs_detail(email_id, stored):
                futures.append((email_id, self.pool.submit(self._read_email, mailbox_id, email_id)))
            else:
                self.books.skip("detail_final_outside_window")
        return futures

    def _read_email(self, mailbox_id: str, email_id: str) -> tuple[int, Any]:
        """Worker thread: one read_email call. Returns (status, body or PayloadError)."""
        response = self.client.get(multimail.email_detail_path(mailbox_id, email_id))
        if response.status_code == 404:
            return 404, response.text
        raise_for_status(response, source="MultiMail", credential=self.books.credential)
        try:
            return response.status_code, decode_json(response)
        except PayloadError as exc:
            return response.status_code, exc

    def _collect_outbound(
        self,
        page: Page,
        futures: DetailFutures,
        stored: Mapping[str, StoredEmail],
        batch: EmailBatch,
    ) -> None:
        """Wait for one page's detail reads and add their rows to the batch."""
        mailbox_id = batch.mailbox_id
        for email_id, fut in futures:
            detail_path = multimail.email_detail_path(mailbox_id, email_id)
            try:
                status, body = fut.result()
            except SourceAuthError:
                raise
            except SourceError as exc:
                # One email outlasting the retry budget must not lose the rest of the page.
                self.books.error(f"email {email_id}: {exc}")
                batch.incomplete = True
                continue
            if status == 404:
                reason = (
                    "stored and not final, but read_email now answers 404"
                    if page.extra.get(STORED_NOT_FINAL)
                    else "listed but read_email answered 404"
                )
                self.books.quarantine(detail_path, reason, body, email_id)
                continue
            if isinstance(body, PayloadError):
                self.books.quarantine(detail_path, str(body), body.raw_text, email_id)
                continue
            try:
                row = normalise_email(
                    body,
                    mailbox_id=mailbox_id,
                    direction="outbound",
                    conversation_key=self.settings.intercom_conversation_tag,
                )
            except RecordError as exc:
                self.books.quarantine(detail_path, str(exc), body, email_id)
                continue
            if row["id"] != email_id:
                self.books.quarantine(
                    detail_path, f"read_email returned id {row['id']!r}", body, email_id
                )
                continue
            known = stored.get(email_id)
            if known is not None and known.is_final and known.raw_sha256 != row["raw_sha256"]:
                batch.changed.append((email_id, known.raw_sha256, row))
            row["first_harvested_at"] = (
                known.first_harvested_at if known else self.books.harvested_at
            )
            batch.rows.append(self.books.stamp(row))
        if not page.extra.get(STORED_NOT_FINAL):
            batch.cursor = list_cursor(page)

    def _collect_inbound(
        self, page: Page, stored: Mapping[str, StoredEmail], batch: EmailBatch
    ) -> None:
        """Inbound rows come from list summaries only: read_email would mark them read."""
        for summary in page.records:
            try:
                row = normalise_email(
                    summary,
                    mailbox_id=batch.mailbox_id,
                    direction="inbound",
                    conversation_key=self.settings.intercom_conversation_tag,
                )
            except RecordError as exc:
                self.books.quarantine(page.url, str(exc), summary)
                continue
            known = stored.get(row["id"])
            row["first_harvested_at"] = (
                known.first_harvested_at if known else self.books.harvested_at
            )
            batch.rows.append(self.books.stamp(row))
        batch.cursor = list_cursor(page)

    def _commit(self, batch: EmailBatch) -> int:
        """Rows, integrity events, quarantined records and the list cursor: one transaction."""
        if (
            batch.cursor is None
            and batch.watermark is None
            and not batch.rows
            and not self.books.has_quarantined()
        ):
            return 0
        stored_raw = stored_email_raw(self.store, [email_id for email_id, _, _ in batch.changed])
        events = [
            self.books.integrity_event(
                "email",
                email_id,
                "changed",
                stored_sha,
                stored_raw[email_id],
                row["raw_sha256"],
                row["raw"],
            )
            for email_id, stored_sha, row in batch.changed
        ]
        cursors = (
            [] if batch.cursor is None else [self.books.cursor(batch.cursor_key, batch.cursor)]
        )
        if batch.watermark is not None:
            cursors.append(batch.watermark)
        with self.books.quarantined() as quarantine:
            self.store.commit_batch(
                "multimail_emails",
                batch.rows,
                integrity=events,
                quarantine=quarantine,
                cursors=cursors,
            )
        count = len(batch.rows)
        self.books.count(f"emails_{batch.direction}", count)
        batch.rows, batch.changed, batch.cursor, batch.watermark = [], [], None, None
        return count


def _listed_ids(page: Page) -> list[str]:
    """The page's email ids (a record without one is quarantined when its page settles)."""
    return [r["id"] for r in page.records if isinstance(r, dict) and isinstance(r.get("id"), str)]
