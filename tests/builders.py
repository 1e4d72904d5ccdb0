"""The one row builder of the tests: typed rows with provenance, written to a real store;
and `ScratchStore`, the empty store they are written to.

`with_provenance` fills the NOT NULL columns every harvested row carries (raw, its hash,
run id, harvest time); `StoreBuilder` writes one row per call with sane defaults, so a
test states only the columns that matter to it.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from auditkit.store import Store, canonical_json, sha256_hex

HARVESTED = datetime(2026, 10, 2, 9, 0, tzinfo=UTC)


def with_provenance(
    row: dict[str, Any], run_id: str = "run-1", harvested_at: datetime = HARVESTED
) -> dict[str, Any]:
    """`row` plus raw (canonical JSON of the row), raw_sha256, run_id and harvested_at."""
    raw = canonical_json(
        {k: v.isoformat() if isinstance(v, datetime | date) else v for k, v in row.items()}
    )
    return {
        **row,
        "raw": raw,
        "raw_sha256": sha256_hex(raw),
        "run_id": run_id,
        "harvested_at": harvested_at,
    }


def ts(text: str) -> datetime:
    """'2026-08-03 10:00' → aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class StoreBuilder:
    """Writes one typed row per call with sane defaults, so a test states only the
    columns that matter to it. On a `ScratchStore` the rows land together the moment
    anything reads or writes the store through its connection (see `defer_upsert`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seq = 0

    def _write(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        stored = with_provenance(row, run_id="run_test")
        if isinstance(self.store, ScratchStore):
            self.store.defer_upsert(table, stored)
        else:  # a store file another process may open next: written now
            self.store.upsert(table, [stored])
        return row

    def account(self, **kw: Any) -> dict[str, Any]:
        row = {
            "id": "acct_1",
            "name": "Northwind Supply Co.",
            "slug": "northwind",
            "plan": "pro",
            "oversight_email": "ops@northwind.example",
            "physical_address": (
                "Northwind Supply Co., 1200 Harbor Boulevard, Suite 400, Oakland, CA 94607"
            ),
            "is_active": True,
            "sending_disabled": False,
        }
        return self._write("multimail_account", {**row, **kw})

    def mailbox(self, **kw: Any) -> dict[str, Any]:
        row = {
            "id": "mbx_1",
            "address": "support@northwind.example",
            "display_name": "Support",
            "oversight_mode": "gated_send",
            "signature_block": None,
            "created_at": ts("2026-01-01 00:00"),
            "is_active": True,
        }
        return self._write("multimail_mailboxes", {**row, **kw})

    def domain(self, **kw: Any) -> dict[str, Any]:
        row = {
            "id": "dom_1",
            "domain": "northwind.example",
            "status": "active",
            "dkim_verified": True,
            "spf_verified": True,
            "created_at": ts("2026-01-01 00:00"),
        }
        return self._write("multimail_domains", {**row, **kw})

    def email(self, id: str, **kw: Any) -> dict[str, Any]:
        row = {
            "id": id,
            "mailbox_id": "mbx_1",
            "direction": "outbound",
            "from_address": "support@northwind.example",
            "to_addresses": ["customer@example.com"],
            "cc_addresses": [],
            "subject": "About your order",
            "status": None,
            "created_at": ts("2026-08-03 10:00"),
            "thread_id": f"thr_{id}",
            "body_markdown": "Your order #123 has shipped.",
            "delivered_at": ts("2026-08-03 10:05"),
            "approved_at": None,
            "approved_by": None,
            "decision": None,
            "dkim_verified": None,
            "conversation_id": None,
            "agent": None,
            "tags": None,
            "source_shape": "v1",
            "is_final": True,
            "first_harvested_at": HARVESTED,
        }
        row.update(kw)
        if isinstance(row.get("tags"), dict):
            row["tags"] = json.dumps(row["tags"])
        return self._write("multimail_emails", row)

    def audit(self, id: str, action: str, resource_id: str, **kw: Any) -> dict[str, Any]:
        self._seq += 1
        metadata = kw.pop("metadata", None)
        row = {
            "id": id,
            "action": action,
            "resource_type": action.split(".")[0],
            "resource_id": resource_id,
            "actor_key_id": None,
            "metadata": json.dumps(metadata) if metadata is not None else None,
            "created_at": ts("2026-08-03 10:01"),
            "chain_seq": self._seq,
            "chain_hash": f"h{self._seq}",
        }
        return self._write("multimail_audit_log", {**row, **kw})

    def api_key(self, id: str, scopes: Sequence[str], **kw: Any) -> dict[str, Any]:
        row = {
            "id": id,
            "name": f"key {id}",
            "prefix": "mm_live_abc",
            "scopes": list(scopes),
            "created_at": ts("2026-01-01 00:00"),
            "last_used_at": None,
            "is_active": True,
        }
        return self._write("multimail_api_keys", {**row, **kw})

    def suppression(self, id: str, address: str, created_at: datetime, **kw: Any) -> dict[str, Any]:
        row = {
            "id": id,
            "email_address": address,
            "reason": "unsubscribe",
            "mailbox_id": None,
            "created_at": created_at,
        }
        return self._write("multimail_suppressions", {**row, **kw})

    def conversation(self, id: str, found: bool = True, **kw: Any) -> dict[str, Any]:
        row = {
            "id": id,
            "found": found,
            "http_status": 200 if found else 404,
            "fetched_at": HARVESTED,
        }
        return self._write("intercom_conversations", {**row, **kw})

    def integrity(self, record_type: str, record_id: str, change: str = "changed") -> None:
        self.store.con.execute(
            f"INSERT INTO {self.store.base('integrity_events')} "
            "VALUES (?, ?, 'run_2', ?, ?, ?, ?, 'a', 'b', NULL, NULL)",
            [
                self.store.account,
                sha256_hex(f"{record_type}|{record_id}|{change}"),
                HARVESTED,
                record_type,
                record_id,
                change,
            ],
        )

    # -- population sources (PC-001) ------------------------------------------------------
    def usage(self, day: date, event_type: str, count: int) -> dict[str, Any]:
        row = {"id": f"{day}|{event_type}", "date": day, "event_type": event_type, "count": count}
        return self._write("multimail_usage_daily", row)

    def delivery(self, id: str, event_type: str, created_at: datetime) -> dict[str, Any]:
        row = {
            "id": id,
            "event_type": event_type,
            "url": "https://hooks.example/events",
            "status": "delivered",
            "attempts": 1,
            "response_status": 200,
            "created_at": created_at,
            "last_attempt_at": created_at,
        }
        return self._write("multimail_webhook_deliveries", row)

    def webhook(self, id: str, events: Sequence[str], mailbox_id: str | None = None) -> None:
        row = {
            "id": id,
            "url": "https://hooks.example/events",
            "events": list(events),
            "mailbox_id": mailbox_id,
            "created_at": ts("2026-01-01 00:00"),
        }
        self._write("multimail_webhooks", row)

    def coverage(
        self,
        source: str,
        *,
        covered_from: datetime | None = None,
        covered_to: datetime | None = None,
        http_status: int | None = None,
        reason: str | None = None,
        harvested_at: datetime = HARVESTED,
    ) -> None:
        """What a harvest could read of `source`: a range, or (with `http_status`) why not."""
        row = {
            "id": source,
            "available": http_status is None,
            "http_status": http_status,
            "reason": reason,
            "covered_from": covered_from,
            "covered_to": covered_to,
        }
        self.store.upsert(
            "multimail_source_coverage",
            [with_provenance(row, run_id="run_test", harvested_at=harvested_at)],
        )


class ScratchStore(Store):
    """A private, fully migrated store file that is deleted when closed: what tests use in
    place of `Store(":memory:")`.

    Migrating a new store takes ~0.16 s (six migrations, then every account-scoped table
    rebuilt with its `account` column), and hundreds of tests each want one. So each
    process migrates one template and every scratch store starts as a copy of it (~0.04 s
    to open). The migrations themselves are tested on new stores in tests/store. The copies
    live in /dev/shm when it has room (see `_scratch_root`): DuckDB syncs its WAL on every
    commit, and a file in memory makes that free, as it was for `:memory:`."""

    def __init__(self, **kwargs: Any) -> None:
        # table -> (the rows' columns, the rows), in the order first written: see defer_upsert
        self._deferred: dict[str, tuple[tuple[str, ...], list[dict[str, Any]]]] = {}
        folder = Path(tempfile.mkdtemp(prefix="auditkit-scratch-", dir=_scratch_root()))
        self._folder = folder
        try:
            path = folder / "store.duckdb"
            shutil.copyfile(_template(), path)
            super().__init__(path, **kwargs)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    @property  # type: ignore[override]
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection, after the deferred builder rows are written: every read and
        write of the store goes through it, so none can miss a row a test built."""
        if self._deferred:
            self._write_deferred()
        return self._con

    @con.setter
    def con(self, value: duckdb.DuckDBPyConnection) -> None:
        self._con = value

    def defer_upsert(self, table: str, row: dict[str, Any]) -> None:
        """Queue a builder row, to be upserted with the others of its table in one batch.

        One upsert costs ~9 ms however few rows it carries, and a control test builds dozens
        of rows one call at a time. Each table's rows keep their order (the last of a key
        wins, as with one upsert per row); a row whose columns differ from its table's
        queued rows writes the queue first, since one batch has one set of columns."""
        queued = self._deferred.get(table)
        if queued is not None and queued[0] != tuple(row):
            self._write_deferred()
            queued = None
        if queued is None:
            self._deferred[table] = (tuple(row), [row])
        else:
            queued[1].append(row)

    def _write_deferred(self) -> None:
        queued, self._deferred = self._deferred, {}
        for table, (_columns, rows) in queued.items():
            self.upsert(table, rows)

    def close(self) -> None:
        try:
            if self._deferred:  # rows nothing read: written anyway, so a bad one still fails
                self._write_deferred()
            super().close()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)


def _scratch_root() -> str | None:
    """/dev/shm if it is writable with 1 GiB free, else the system temp folder: a container
    often gives /dev/shm only 64 MB, which a harvested test store could fill."""
    shm = Path("/dev/shm")
    try:
        roomy = os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 1 << 30
    except OSError:
        roomy = False
    return str(shm) if roomy else None


@functools.cache
def _template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="auditkit-template-", dir=_scratch_root()))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "store.duckdb"
    Store(path).close()
    return path
