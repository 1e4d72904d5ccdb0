"""The store's books: cursors and listing watermarks, quarantine, integrity events, run
records, and the summary `auditkit status` prints.

The record types here (`Cursor`, `Quarantined`, `IntegrityEvent`) are what a caller hands
`Store.commit_batch`, which writes them in the same transaction as the rows they describe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from auditkit.store.canonical import canonical_json, sha256_hex
from auditkit.store.schema import HARVESTED_TABLES

if TYPE_CHECKING:
    from auditkit.store import Store

# The source name MultiMail cursors are kept under (`sources.multimail.SOURCE`).
WATERMARK_SOURCE = "multimail"
# What `auditkit status` counts: every harvested table, then the two the auditor reads.
STATUS_TABLES = (*HARVESTED_TABLES, "quarantine", "integrity_events")


@dataclass(frozen=True)
class Cursor:
    """Where a listing of `source`'s `resource` stands (`_auditkit_cursors`)."""

    source: str
    resource: str
    value: str | None
    run_id: str


@dataclass(frozen=True)
class Quarantined:
    """A record the harvester could not use, kept with why (`quarantine`)."""

    run_id: str
    source: str
    endpoint: str
    reason: str
    raw_text: str
    record_id: str | None = None


@dataclass(frozen=True)
class IntegrityEvent:
    """A stored record that changed or vanished at the source (`integrity_events`)."""

    run_id: str
    record_type: str  # audit_entry | email
    record_id: str
    change: str  # changed | removed
    stored_sha256: str | None
    stored_raw: str | None
    source_sha256: str | None
    source_raw: str | None

    @property
    def id(self) -> str:
        """The same change seen twice is one event."""
        return sha256_hex(
            f"{self.record_type}|{self.record_id}|{self.stored_sha256 or ''}|"
            f"{self.source_sha256 or ''}"
        )


# -- cursors and watermarks ----------------------------------------------------------------


def get_cursor(con: duckdb.DuckDBPyConnection, source: str, resource: str) -> str | None:
    rows = con.execute(  # fetchall, not fetchone: see Store.count
        "SELECT value FROM _auditkit_cursors WHERE source = ? AND resource = ?",
        [source, resource],
    ).fetchall()
    return rows[0][0] if rows else None


def write_cursor(store: Store, cursor: Cursor) -> None:
    store.con.execute(
        f"INSERT OR REPLACE INTO {store.base('_auditkit_cursors')} "
        "(account, source, resource, value, run_id, updated_at) VALUES (?, ?, ?, ?, ?, now())",
        [store.account, cursor.source, cursor.resource, cursor.value, cursor.run_id],
    )


def watermark_key(mailbox_id: str, direction: str) -> str:
    """Cursor holding when the last complete, unfiltered listing of this mailbox started."""
    return f"emails_listed:{mailbox_id}:{direction}"


def listing_watermark(store: Store, mailbox_id: str, direction: str) -> datetime | None:
    """When the last complete, unfiltered listing of this mailbox started; None if never."""
    mark = get_cursor(store.con, WATERMARK_SOURCE, watermark_key(mailbox_id, direction))
    return None if mark is None else datetime.fromisoformat(mark)


def watermark_cursor(mailbox_id: str, direction: str, started: datetime, run_id: str) -> Cursor:
    """The watermark a complete listing commits with its last rows: the run's start."""
    return Cursor(
        WATERMARK_SOURCE, watermark_key(mailbox_id, direction), started.isoformat(), run_id
    )


# -- quarantine and integrity events -------------------------------------------------------


def write_quarantine(store: Store, record: Quarantined) -> None:
    """Keep a record we could not use, with why; the same bad record twice is stored once."""
    # The text may hold what made it bad (e.g. a lone surrogate): keep it as escapes.
    raw_text = record.raw_text.encode("utf-8", "backslashreplace").decode("utf-8")
    qid = sha256_hex(f"{record.source}|{record.endpoint}|{raw_text}")
    store.con.execute(
        f"INSERT OR REPLACE INTO {store.base('quarantine')} (account, id, run_id, source, "
        "endpoint, record_id, reason, raw_text, quarantined_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
        [
            store.account,
            qid,
            record.run_id,
            record.source,
            record.endpoint,
            record.record_id,
            record.reason,
            raw_text,
        ],
    )


def write_integrity_event(store: Store, event: IntegrityEvent) -> None:
    store.con.execute(
        f"INSERT OR REPLACE INTO {store.base('integrity_events')} (account, id, run_id, "
        "detected_at, record_type, record_id, change, stored_sha256, source_sha256, "
        "stored_raw, source_raw) VALUES (?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?)",
        [
            store.account,
            event.id,
            event.run_id,
            event.record_type,
            event.record_id,
            event.change,
            event.stored_sha256,
            event.source_sha256,
            event.stored_raw,
            event.source_raw,
        ],
    )


# -- runs ----------------------------------------------------------------------------------


def start_run(store: Store, run_id: str, command: str, params: Mapping[str, Any]) -> None:
    store.con.execute(
        f"INSERT INTO {store.base('harvest_runs')} "
        "(account, run_id, command, started_at, outcome, params) "
        "VALUES (?, ?, ?, now(), 'running', ?)",
        [store.account, run_id, command, canonical_json(params)],
    )


def finish_run(
    store: Store,
    run_id: str,
    outcome: str,
    counts: Mapping[str, Any],
    error: str | None = None,
) -> None:
    store.con.execute(
        f"UPDATE {store.base('harvest_runs')} SET finished_at = now(), outcome = ?, counts = ?, "
        "error = ?, duration_seconds = epoch(now() - started_at) "
        "WHERE account = ? AND run_id = ?",
        [outcome, canonical_json(counts), error, store.account, run_id],
    )


def data_as_of(store: Store, fallback: datetime) -> datetime:
    """When the store's data was read: the end of its latest harvest (or import) run, else
    the latest harvested_at of its mail, else `fallback`. Packs and controls use it instead
    of the wall clock, so the same store gives the same evidence whenever it is asked."""
    row = store.query(
        "SELECT max(coalesce(finished_at, started_at)) FROM harvest_runs WHERE outcome <> 'running'"
    )[0][0]
    if row is None:
        row = store.query("SELECT max(harvested_at) FROM multimail_emails")[0][0]
    return (row or fallback).astimezone(UTC)


def fail_interrupted_runs(store: Store) -> None:
    """Only one writer can hold the store, so a 'running' row belongs to a dead process,
    whichever account it harvested."""
    store.con.execute(
        f"UPDATE {store.base('harvest_runs')} SET outcome = 'failed', finished_at = now(), "
        "error = 'interrupted: the process ended before the run finished' WHERE outcome = 'running'"
    )


# -- status --------------------------------------------------------------------------------

RUN_FIELDS = ("run_id", "command", "started_at", "finished_at", "outcome", "duration_seconds")


@dataclass(frozen=True)
class StoreStatus:
    """What `auditkit status` shows: record counts, freshness, listings, recent runs."""

    counts: dict[str, int]
    last_successful_harvest: datetime | None
    # (run_id, command, started_at, finished_at, outcome, duration_seconds), newest first
    runs: list[tuple[Any, ...]]
    # (mailbox id, address, when its outbound mail was last listed in full or None)
    mailboxes: list[tuple[str, str | None, str | None]]

    def hours_since_last_successful_harvest(self, now: datetime) -> float | None:
        last = self.last_successful_harvest
        return None if last is None else (now - last).total_seconds() / 3600

    def to_dict(self, store: str, now: datetime) -> dict[str, Any]:
        """The `status --json` document."""
        age_hours = self.hours_since_last_successful_harvest(now)
        last = self.last_successful_harvest
        return {
            "store": store,
            "counts": self.counts,
            "last_successful_harvest": last.isoformat() if last else None,
            "hours_since_last_successful_harvest": None
            if age_hours is None
            else round(age_hours, 2),
            "runs": [dict(zip(RUN_FIELDS, r, strict=True)) for r in self.runs],
            "mailboxes": [
                {"id": i, "address": a, "outbound_listed_in_full_at": v}
                for i, a, v in self.mailboxes
            ],
        }


def store_status(store: Store, *, recent_runs: int = 10) -> StoreStatus:
    counts = {t: store.count(t) for t in STATUS_TABLES}
    runs = store.query(
        f"SELECT {', '.join(RUN_FIELDS)} FROM harvest_runs ORDER BY started_at DESC LIMIT ?",
        [recent_runs],
    )
    last_ok = store.query("SELECT max(finished_at) FROM harvest_runs WHERE outcome = 'ok'")[0][0]
    # Whether each mailbox's outbound mail has been listed in full once (the harvester's
    # watermark): until then every harvest lists it in full again.
    listings = store.query(
        "SELECT m.id, m.address, c.value FROM multimail_mailboxes m LEFT JOIN _auditkit_cursors c "
        "ON c.source = ? AND c.resource = 'emails_listed:' || m.id || ':outbound' "
        "ORDER BY m.address, m.id",
        [WATERMARK_SOURCE],
    )
    return StoreStatus(counts, last_ok, list(runs), [(i, a, v) for i, a, v in listings])
