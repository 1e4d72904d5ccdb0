"""The DuckDB store: the one place auditkit reads and writes evidence.

`Store` is a DuckDB connection with the migrations applied (`schema`). Harvesters hand it
batches through `commit_batch`, which writes the rows, their cursors, quarantined records
and integrity events in one transaction, so a crash can never move a cursor past data that
did not land; controls and reports only read.

    schema.py         migrations (the only DDL) and HARVESTED_TABLES
    upsert.py         the bulk load through Arrow
    books.py          cursors and watermarks, quarantine, integrity events, runs, status
    harvest_state.py  what the harvester asks before fetching (stored mail, conversations)
    audit_chain.py    the audit walk's staging table and the hash-chained append
    digests.py        snapshot and content digests
    accounts.py       the account column and the connection scoped to one account

pyarrow loads only when rows are loaded or digested (`upsert`, `digests` are imported on
first use): reading the store, as `auditkit status` and the controls do, needs DuckDB alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from auditkit.errors import ConfigError, StoreError, StoreInUseError
from auditkit.store import accounts, books
from auditkit.store.accounts import DEFAULT_ACCOUNT
from auditkit.store.books import Cursor, IntegrityEvent, Quarantined, StoreStatus, store_status
from auditkit.store.canonical import canonical_json, sha256_hex
from auditkit.store.processes import describe_process, lock_holder, process_command
from auditkit.store.schema import HARVESTED_TABLES, MIGRATIONS, Migration, applied_migrations
from auditkit.store.spill import SpillFolder

if TYPE_CHECKING:
    import pyarrow as pa

    from auditkit.config import Settings
    from auditkit.store.digests import content_digest
    from auditkit.store.upsert import Load, Rows

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_THRESHOLD",
    "HARVESTED_TABLES",
    "MIGRATIONS",
    "Cursor",
    "IntegrityEvent",
    "Load",
    "Rows",
    "TableWrite",
    "READER_MEMORY_LIMIT",
    "WRITER_MEMORY_LIMIT",
    "Migration",
    "Quarantined",
    "Store",
    "StoreStatus",
    "canonical_json",
    "content_digest",
    "describe_process",
    "lock_holder",
    "process_command",
    "sha256_hex",
    "store_status",
]

# Names re-exported from the modules that need pyarrow, resolved on first use (PEP 562).
_ARROW_EXPORTS = {
    "Load": "auditkit.store.upsert",
    "Rows": "auditkit.store.upsert",
    "content_digest": "auditkit.store.digests",
}


def __getattr__(name: str) -> Any:
    module = _ARROW_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


# How much WAL a writer accumulates before DuckDB folds it into the data file.
CHECKPOINT_THRESHOLD = "256MB"
# DuckDB's buffer pool for a writer (harvest, import, archive, run) unless `[store]
# memory_limit` says otherwise. DuckDB's own default is 80% of RAM, and a writer keeps every
# block it appended cached until then: a first harvest grew by ~2.4 KB per message. A batch
# needs far less; past the limit DuckDB evicts to the data file or spills to the temp
# folder.
WRITER_MEMORY_LIMIT = "512MB"
# The same for a reader (check, report, evidence, export, status). Left to DuckDB's default,
# the controls over a 10M-message year took 9.8 GB; under 1GB they spill, 151 s instead of
# 102 s, and the process stays under 2 GB with the findings it holds (BENCHMARKS.md).
READER_MEMORY_LIMIT = "1GB"


class TableWrite(Protocol):
    """One table's part of a batch: `Load` (rows upserted by key) or
    `audit_chain.ChainAppend` (staged audit entries appended on the hash chain)."""

    def write(self, store: Store) -> int: ...


class Store:
    """One DuckDB connection with migrations applied. Use as a context manager.

    `read_only=True` opens without taking the writer lock (reports, checks); a second
    writer process fails fast with StoreInUseError instead of waiting.

    A store holds one or more MultiMail accounts; a `Store` object reads and writes one,
    `account` (see `accounts`): its connection, and every `cursor()`, sees only that
    account's rows under the tables' own names, and its writes carry the account.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        read_only: bool = False,
        account: str = DEFAULT_ACCOUNT,
        memory_limit: str | None = None,
        temp_directory: Path | str | None = None,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.account = accounts.check_account_name(account)
        self._column_types: dict[str, dict[str, str]] = {}
        self._in_transaction = False
        if self.path != ":memory:":
            parent = Path(self.path).resolve().parent
            if not parent.is_dir():
                raise StoreError(f"store directory {parent} does not exist")
            if read_only and not Path(self.path).exists():
                raise StoreError(f"store {self.path} does not exist: run `auditkit harvest` first")
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreInUseError(
                    f"store {self.path} is in use by {lock_holder(str(exc))}; DuckDB lets one "
                    "process open a store file at a time (readers included, so status and "
                    "check wait for a harvest too): try again when it has finished"
                ) from exc
            raise StoreError(f"store {self.path} cannot be opened: {exc}") from exc
        except duckdb.Error as exc:
            raise StoreError(
                f"store {self.path} cannot be opened (corrupt or not a DuckDB file): {exc}"
            ) from exc
        if self.path != ":memory:" and not read_only:
            # Evidence and harvested mail are personal data: owner-only.
            for suffix in ("", ".wal"):
                p = Path(self.path + suffix)
                if p.exists():
                    os.chmod(p, 0o600)
        self._spill: SpillFolder | None = None
        try:
            self.con.execute("SET TimeZone = 'UTC'")
            if not read_only:
                # The default 16 MB makes a harvest checkpoint (rewrite and fsync the data
                # file) every few thousand emails; each commit is still durable in the WAL,
                # and DuckDB checkpoints on close. Measured: bulk inserts ~1.5x faster.
                self.con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            self._set_resources(memory_limit, temp_directory)
            if not read_only:
                self.migrate()
            else:
                self.applied_migrations()
            self._database = accounts.database_name(self.con)
            accounts.install_scope(self.con, self.account)
        except (StoreError, ConfigError):
            self.close()
            raise
        except duckdb.Error as exc:
            # A truncated or damaged file can open and then fail on the first read.
            self.close()
            raise StoreError(
                f"store {self.path} cannot be read (corrupt or truncated): {exc}"
            ) from exc

    @classmethod
    def for_settings(cls, settings: Settings, *, read_only: bool = False) -> Store:
        """The store `settings` names, scoped to its account, with its `[store]` memory limit
        and temp folder: how every command opens it (export, which reads every account, is
        the one exception)."""
        return cls(
            settings.db_path,
            read_only=read_only,
            account=settings.account,
            **settings.store_options(),
        )

    def _set_resources(self, memory_limit: str | None, temp_directory: Path | str | None) -> None:
        """DuckDB's memory limit and spill folder, chosen here rather than left to DuckDB.

        Spills (sorts, joins and evicted blocks past the limit) go to a private owner-only
        folder, removed on close: inside `temp_directory` when given, else beside a
        writable store file (the same disk, as DuckDB would choose), else in the system's
        temp folder. Each store gets its own, so two processes never share spill files, and
        opening one removes the folders killed processes left there (`store/spill.py`).
        """
        limit = memory_limit or (READER_MEMORY_LIMIT if self.read_only else WRITER_MEMORY_LIMIT)
        try:
            self.con.execute("SET memory_limit = ?", [limit])
        except duckdb.Error as exc:
            raise ConfigError(
                f"store memory limit {limit!r} is not a size DuckDB accepts (e.g. 512MB, 2GB)"
            ) from exc
        base: Path | None = None
        if temp_directory is not None:
            base = Path(temp_directory)
        elif not self.read_only and self.path != ":memory:":
            base = Path(self.path).resolve().parent
        try:
            if temp_directory is not None:
                Path(temp_directory).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._spill = SpillFolder(base)
        except OSError as exc:
            raise StoreError(f"temp directory {base} cannot be used: {exc}") from exc
        if self._spill.swept:
            logger.info(
                "removed %d spill folder(s) that killed auditkit processes left in %s",
                len(self._spill.swept),
                self._spill.path.parent,
            )
        self.con.execute("SET temp_directory = ?", [str(self._spill.path)])

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()
        if self._spill is not None:
            self._spill.remove()
            self._spill = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN … COMMIT, or ROLLBACK on any exception (which is re-raised)."""
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")
        finally:
            self._in_transaction = False

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction unless the caller already holds one (DuckDB does not nest them)."""
        if self._in_transaction:
            yield
        else:
            with self.transaction():
                yield

    # -- migrations ------------------------------------------------------------------
    def applied_migrations(self) -> list[str]:
        return applied_migrations(self.con, read_only=self.read_only)

    def pending_migrations(self) -> list[str]:
        applied = set(self.applied_migrations())
        return [m.name for m in MIGRATIONS if m.name not in applied]

    def migrate(self) -> list[str]:
        """Apply pending migrations, each in one transaction with the row recording it.

        Each one is followed, in its transaction, by `ensure_account_columns`, so a table a
        migration creates is account-scoped before anything writes to it."""
        done = []
        applied = set(self.applied_migrations())
        for m in MIGRATIONS:
            if m.name in applied:
                continue
            try:
                with self.transaction() as con:
                    m.apply(con)
                    accounts.ensure_account_columns(con)
                    con.execute("INSERT INTO _auditkit_migrations VALUES (?, now())", [m.name])
            except duckdb.Error as exc:
                raise StoreError(f"migration {m.name} failed on {self.path}: {exc}") from exc
            done.append(m.name)
        self._column_types.clear()
        return done

    # -- accounts ----------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own (another thread, or temp tables kept private), scoped to
        this store's account like `con` (temp views belong to one connection)."""
        con = self.con.cursor()
        con.execute("SET TimeZone = 'UTC'")
        accounts.install_scope(con, self.account)
        return con

    def base(self, table: str) -> str:
        """`table` itself, every account's rows, for writes (reads use the scoped name)."""
        return f'"{self._database}".main."{table}"'

    def is_account_scoped(self, table: str) -> bool:
        return accounts.ACCOUNT_COLUMN in self.column_types(table)

    def delete_account_rows(self, table: str) -> None:
        """Empty `table` for this store's account only (a snapshot about to be replaced)."""
        if self.is_account_scoped(table):
            self.con.execute(
                f"DELETE FROM {self.base(table)} WHERE {accounts.ACCOUNT_COLUMN} = ?",
                [self.account],
            )
        else:
            self.con.execute(f"DELETE FROM {self.base(table)}")

    def scope_to(self, account: str) -> None:
        """Read (and write) `account` from now on, on `con` and later cursors (status)."""
        self.account = accounts.check_account_name(account)
        accounts.install_scope(self.con, self.account)

    def stored_accounts(self) -> list[str]:
        """Every account the store holds rows of (DEFAULT_ACCOUNT when it holds none)."""
        return accounts.stored_accounts(self.con)

    # -- writes ------------------------------------------------------------------------
    def commit_batch(
        self,
        table: str | None = None,
        rows: Rows = (),
        *,
        pk: str | Sequence[str] = "id",
        replace_all: bool = False,
        also: Sequence[TableWrite] = (),
        cursors: Sequence[Cursor] = (),
        quarantine: Sequence[Quarantined] = (),
        integrity: Sequence[IntegrityEvent] = (),
    ) -> int:
        """Write one batch in one transaction: its rows, then the records it quarantined and
        the cursors that say how far it got; integrity events first.

        This is the store's one write rule: rows, quarantine and cursor land together or
        not at all, so a run killed at any point leaves no cursor past data that did not
        land. `table`/`rows` are upserted as `upsert` does (`replace_all` empties the table
        first: a snapshot); `also` adds more tables' writes to the same transaction; a batch
        may be bookkeeping only. Inside a caller's `transaction()` it joins that one.
        Returns the number of rows written, all tables together.
        """
        from auditkit.store.upsert import Load

        writes: list[TableWrite] = []
        if table is not None:
            writes.append(Load(table, rows, pk, replace_all=replace_all))
        writes.extend(also)
        written = 0
        with self.atomic():
            for event in integrity:
                books.write_integrity_event(self, event)
            for write in writes:
                written += write.write(self)
            for record in quarantine:
                books.write_quarantine(self, record)
            for cursor in cursors:
                books.write_cursor(self, cursor)
        return written

    def upsert(self, table: str, rows: Rows, pk: str | Sequence[str] = "id") -> int:
        """Insert or replace rows by primary key, in bulk through Arrow.

        Rows are de-duplicated by key first (last one wins). Keys not yet stored take a plain
        INSERT; full rows whose keys exist are deleted and re-inserted. DuckDB's INSERT OR
        REPLACE is ~4x slower than INSERT for new keys and ~50x slower for existing ones, so
        it is kept only for partial rows, where it must keep the columns not given. Column
        names come from code, never from payloads. On its own the call is one transaction;
        `commit_batch` is how rows land together with their cursor.
        """
        from auditkit.store.upsert import upsert

        return upsert(self, table, rows, pk)

    def column_types(self, table: str) -> dict[str, str]:
        """Column name → DuckDB type of `table` (cached; only migrations change them)."""
        # One catalogue query per table: it used to cost more than the insert it served.
        types = self._column_types.get(table)
        if types is None:
            # The database's own table (account column included), not its scoped view.
            types = dict(
                self.con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() "
                    "WHERE database_name = current_database() AND schema_name = 'main' "
                    "AND table_name = ? ORDER BY column_index",
                    [table],
                ).fetchall()
            )
            self._column_types[table] = types
        return types

    def arrow_table(self, table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
        """Rows as an Arrow table typed like `table`, for callers loading through their own
        cursor (call `column_types(table)` first from the store's thread to fill the cache)."""
        from auditkit.store.upsert import rows_to_arrow

        return rows_to_arrow(self, table, rows)

    def get_cursor(self, source: str, resource: str) -> str | None:
        return books.get_cursor(self.con, source, resource)

    def set_cursor(self, source: str, resource: str, value: str | None, run_id: str) -> None:
        """Move one cursor on its own (a harvest moves them with `commit_batch`)."""
        books.write_cursor(self, Cursor(source, resource, value, run_id))

    def quarantine(
        self,
        run_id: str,
        source: str,
        endpoint: str,
        reason: str,
        raw_text: str,
        record_id: str | None = None,
    ) -> None:
        """Keep a record we could not use, with why; the same bad record twice is stored once."""
        books.write_quarantine(
            self, Quarantined(run_id, source, endpoint, reason, raw_text, record_id)
        )

    # -- runs --------------------------------------------------------------------------
    def start_run(self, run_id: str, command: str, params: Mapping[str, Any]) -> None:
        books.start_run(self, run_id, command, params)

    def finish_run(
        self, run_id: str, outcome: str, counts: Mapping[str, Any], error: str | None = None
    ) -> None:
        books.finish_run(self, run_id, outcome, counts, error)

    def fail_interrupted_runs(self) -> None:
        """Mark 'running' runs failed: with the writer lock held, their process is gone."""
        books.fail_interrupted_runs(self)

    # -- reads -------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def count(self, table: str) -> int:
        # fetchall, never fetchone, on the store's connections: DuckDB 2.0 keeps a fetchone()
        # result open, and `register` (the bulk load) refuses a connection with one open.
        rows = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()
        return int(rows[0][0]) if rows else 0

    def status(self) -> StoreStatus:
        """Counts, freshness, listings and recent runs: what `auditkit status` shows."""
        return store_status(self)

    def snapshot_digest(self, tables: Iterable[str]) -> str:
        """Which harvested content a pack was built from (see `digests.snapshot_digest`)."""
        from auditkit.store.digests import snapshot_digest

        return snapshot_digest(self, tables)
