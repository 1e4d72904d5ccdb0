"""The audit-log walk and its hash chain.

A thread of its own pages the audit log (newest first, cursor-chained, so one page at a
time) while the mail is harvested, staging what it reads in the store's staging table
through its own connection, so memory holds a page, not the log. After the mail, the walk is
topped up from the newest entry; then the new entries stream out of the staging table oldest
first onto the hash chain, a bounded batch per transaction, and a last transaction records
integrity events (stored entries that changed or, after a full scan, vanished), the cursor,
and empties the staging table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import httpx
import pyarrow as pa

from auditkit.errors import SourceError
from auditkit.harvest.account import normalise_page
from auditkit.harvest.recorder import RunRecorder
from auditkit.normalise import normalise_audit_entry
from auditkit.sources import multimail
from auditkit.sources.paging import paginate
from auditkit.store import Store, sha256_hex
from auditkit.store import audit_chain as staging
from auditkit.store.audit_chain import INCONSISTENT

logger = logging.getLogger("auditkit.harvest")

# Rows per staging insert, and entries per chain transaction.
AUDIT_STAGING_ROWS = 5000
AUDIT_CHAIN_BATCH = 10_000


@dataclass
class AuditWalk:
    """The audit-log walk: what it knows, its own store connection, and how it ended."""

    con: duckdb.DuckDBPyConnection  # the walk's own connection: it writes from its thread
    full_scan: bool  # read the whole log (asked for, or a dead run left the chain half-done)
    complete: bool = False  # a pass read the log to its end
    newest_id: str | None = None
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


def start_audit_walk(
    client: httpx.Client, store: Store, books: RunRecorder, *, full_scan: bool
) -> AuditWalk:
    """Page the audit log in a thread of its own while the mail is harvested.

    Its pages chain by an opaque cursor, so they cannot be fetched in parallel with each
    other; walking them beside the detail reads instead of after them took a 20,000-email
    harvest from 1.48x to about 1.16x of the concurrency-bound limit.
    """
    if not full_scan and staging.chain_left_half_appended(store):
        # A run killed between chain batches stored the oldest of its new entries. Whether
        # the newest of those is met before every entry it missed depends on the log's
        # order, which MultiMail does not document: read the whole log this once.
        logger.warning(
            "audit log: the last run stopped while appending entries to the hash chain; "
            "this run reads the whole audit log to finish it"
        )
        full_scan = True
    staging.reset_staging(store)
    walk = AuditWalk(con=store.cursor(), full_scan=full_scan)
    walk.thread = threading.Thread(
        target=_walk,
        args=(client, store, books, walk),
        kwargs={"full_scan": full_scan, "top_up": False},
        name="harvest-audit-log",
        daemon=True,
    )
    walk.thread.start()
    return walk


def stop_audit_walk(walk: AuditWalk) -> None:
    """End the walk however the run ends: a failed run must not leave it paging."""
    walk.stop.set()
    if walk.thread is not None:
        # The client is closed by now, so a request in flight ends at once; a retry
        # back-off may not, and a connection in use must not be closed.
        walk.thread.join(timeout=5)
    if walk.thread is None or not walk.thread.is_alive():
        walk.con.close()


def _walk(
    client: httpx.Client,
    store: Store,
    books: RunRecorder,
    walk: AuditWalk,
    *,
    full_scan: bool,
    top_up: bool,
) -> None:
    """Newest first until an entry already stored (or already staged, when topping up),
    or to the end on a full scan, staging every entry met. Runs in the walk's thread
    for the first pass; errors are left on the walk for the main thread."""
    endpoint = multimail.AUDIT_LOG
    newest_id: str | None = None
    pending: list[dict[str, Any]] = []
    try:
        pages = paginate(
            client,
            endpoint.path,
            endpoint.paginator,
            params=endpoint.params,
            on_bad_page=books.on_bad_page,
            credential=books.credential,
        )
        met_known = False
        for page in pages:
            if walk.stop.is_set():
                pages.close()
                return
            rows = normalise_page(books, page, normalise_audit_entry, endpoint.path)
            ids = [r["id"] for r in rows]
            staged = staging.staged_ids(walk.con, ids) if top_up else set()
            stored = staging.stored_ids(walk.con, ids)
            for row in rows:
                newest_id = newest_id or row["id"]
                if row["id"] in staged:
                    met_known = True
                    continue
                row["is_new"] = row["id"] not in stored
                met_known = met_known or not row["is_new"]
                pending.append(row)
            if page.differing_repeats:
                # Another version of an entry already met: staged beside the first, so that
                # finish_audit_walk reports both versions rather than keep one unsaid.
                repeats = normalise_page(
                    books, replace(page, records=page.differing_repeats), normalise_audit_entry,
                    endpoint.path,
                )  # fmt: skip
                stored = staging.stored_ids(walk.con, [r["id"] for r in repeats])
                pending += [{**r, "is_new": r["id"] not in stored} for r in repeats]
            if len(pending) >= AUDIT_STAGING_ROWS:
                staging.stage_rows(store, walk.con, pending)
                pending = []
            if met_known and not full_scan:
                pages.close()
                break
        else:
            walk.complete = True
        staging.stage_rows(store, walk.con, pending)
    except BaseException as exc:  # reported by the main thread, which owns the run
        walk.error = exc
        return
    walk.newest_id = newest_id or walk.newest_id


def finish_audit_walk(
    client: httpx.Client, store: Store, books: RunRecorder, walk: AuditWalk
) -> None:
    """Finish the walk, top it up, then chain the new entries and close the books.

    The top-up pass starts after the mail is stored, so every message harvested has its
    audit entries too. New entries go onto the hash chain oldest first, `AUDIT_CHAIN_BATCH`
    per transaction, so memory stays bounded however long the log is. The staging table is
    emptied, with the cursor and integrity events, only by the last transaction: a run
    killed between batches leaves its staged entries partly chained, and the next run sees
    that and reads the whole log (`start_audit_walk`), so no entry the dead run missed is
    skipped, and the chain continues exactly where a clean run's would be.
    """
    assert walk.thread is not None
    walk.thread.join()
    if walk.error is None:
        _walk(client, store, books, walk, full_scan=False, top_up=True)
    if walk.error is not None:
        if not isinstance(walk.error, SourceError):
            raise walk.error
        books.stage_failed("audit_log", walk.error)
        with books.quarantined() as quarantine:
            store.commit_batch(quarantine=quarantine)
        return
    events = [
        books.integrity_event(
            "audit_entry", entry_id, change, stored_sha, stored_raw, source_sha, source_raw
        )
        for change, entries in (
            ("changed", staging.changed_entries(store)),
            (INCONSISTENT, staging.inconsistent_entries(store)),
        )
        for entry_id, stored_sha, stored_raw, source_sha, source_raw in entries
    ]
    if walk.full_scan and walk.complete:
        events += [
            books.integrity_event(
                "audit_entry", entry_id, "removed", stored_sha, stored_raw, None, None
            )
            for entry_id, stored_sha, stored_raw in staging.unstaged_entries(store)
        ]
    added = chain_new_entries(store, walk)
    with books.quarantined() as quarantine:
        store.commit_batch(
            also=[staging.EmptyStaging()],
            integrity=events,
            quarantine=quarantine,
            cursors=[books.cursor("audit_log", walk.newest_id)],
        )
    books.count("audit_log", added)
    books.finish("audit_log", added)


def chain_new_entries(store: Store, walk: AuditWalk) -> int:
    """Append the staged new entries to the hash chain, `AUDIT_CHAIN_BATCH` per
    transaction; returns how many. The staging table is left as it is (the caller's last
    transaction empties it)."""
    added = 0
    for entries in _chained(walk, *staging.chain_tail(store)):
        added += store.commit_batch(also=[staging.ChainAppend(entries)])
    return added


def _chained(walk: AuditWalk, seq: int, prev_hash: str) -> Iterator[pa.Table]:
    """The staged new entries in (created_at, id) order, a batch at a time, with chain_seq
    and chain_hash = sha256(previous chain_hash || raw_sha256) added: the walk's connection
    streams them (committed), the caller's transactions write."""
    ordered = staging.new_entries_in_chain_order(walk.con, AUDIT_CHAIN_BATCH)
    with ordered:
        for batch in ordered:
            seqs, hashes = [], []
            for digest in batch.column("raw_sha256").to_pylist():
                seq += 1
                prev_hash = sha256_hex(prev_hash + digest)
                seqs.append(seq)
                hashes.append(prev_hash)
            yield (
                pa.Table.from_batches([batch])
                .append_column("chain_seq", pa.array(seqs, pa.int64()))
                .append_column("chain_hash", pa.array(hashes, pa.string()))
            )
