"""The audit log's staging table and hash chain, on the store's side.

The harvester's audit-log walk stages every entry it reads in `_auditkit_audit_walk`
(through a connection of its own, from its own thread). At the end, the staged new entries
stream out oldest first and are appended to `multimail_audit_log` on the hash chain a
bounded batch per transaction; a last transaction records the integrity events (staged
copies of stored entries that differ from them) and empties the staging table. The chain
itself (sha256 of the previous chain_hash and the entry's raw_sha256) is computed by the
harvester; this module reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

if TYPE_CHECKING:
    from auditkit.store import Store

STAGING = "_auditkit_audit_walk"
# Columns of multimail_audit_log, in the order the chained insert names them.
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
CHAIN_COLUMNS = ("chain_seq", "chain_hash")
# What a staged entry carries onto the chain: every column of multimail_audit_log but the two
# the chain adds.
STAGED_COLUMNS = tuple(c for c in AUDIT_LOG_COLUMNS if c not in CHAIN_COLUMNS)
GENESIS_HASH = "0" * 64  # the chain_hash "before" the first audit entry
# The staged entries, one row per id. The staging table has no key (see migration 0006): a
# source that repeats an entry within one walk (a page boundary that shifted) stages it
# twice, and its copies are one entry. The copy kept is the first by raw_sha256, whatever
# order the pages came in.
STAGED = (
    f"(SELECT * FROM {STAGING} QUALIFY row_number() OVER (PARTITION BY id ORDER BY raw_sha256) = 1)"
)


def reset_staging(store: Store) -> None:
    """Empty the staging table (leftovers of a killed run are scratch: never chained) and
    fill the column-type cache from the store's thread, before the walk's thread needs it."""
    store.delete_account_rows(STAGING)
    store.column_types(STAGING)


def chain_left_half_appended(store: Store) -> bool:
    """Did a run die between its chain batches? Its staged new entries are then partly in
    multimail_audit_log already (the staging table is emptied only by the last batch)."""
    return bool(
        store.query(
            f"SELECT count(*) FROM {STAGING} s SEMI JOIN multimail_audit_log a USING (id) "
            "WHERE s.is_new"
        )[0][0]
    )


def staged_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    """Which of `ids` are staged already (asked through the walk's own connection)."""
    return _present(con, STAGING, ids)


def stored_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    """Which of `ids` are in multimail_audit_log (asked a page at a time: a store's millions
    of entry ids are not held in memory)."""
    return _present(con, "multimail_audit_log", ids)


def _present(con: duckdb.DuckDBPyConnection, table: str, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    rows = con.execute(
        f"SELECT id FROM {table} WHERE id IN (SELECT unnest($ids))", {"ids": ids}
    ).fetchall()
    return {r[0] for r in rows}


def stage_rows(
    store: Store, con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]
) -> None:
    """One autocommitted insert through the walk's own connection (scratch, not evidence),
    for the store's account (the walk's connection is `store.cursor()`, scoped like it)."""
    if rows:
        _append(store, con, STAGING, store.arrow_table(STAGING, rows))


def _append(store: Store, con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    """Insert `data`'s rows into `table` for the store's account through `con`: a plain
    append (staged entries are scratch; chained ones are new by construction)."""
    con.register("_ak_append", data)
    try:
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        con.execute(
            f"INSERT INTO {store.base(table)} (account, {cols}) SELECT ?, {cols} FROM _ak_append",
            [store.account],
        )
    finally:
        con.unregister("_ak_append")


def changed_entries(store: Store) -> list[tuple[Any, ...]]:
    """(id, stored sha, stored raw, source sha, source raw) of staged entries that differ."""
    return store.query(
        f"SELECT s.id, a.raw_sha256, a.raw, s.raw_sha256, s.raw FROM {STAGED} s "
        "JOIN multimail_audit_log a USING (id) "
        "WHERE NOT s.is_new AND s.raw_sha256 <> a.raw_sha256 ORDER BY s.id"
    )


# The integrity change of an entry the source gave in two versions within one walk.
INCONSISTENT = "inconsistent"


def inconsistent_entries(store: Store) -> list[tuple[Any, ...]]:
    """(id, kept sha, kept raw, other sha, other raw) for each other version of an entry the
    walk staged in more than one version; the kept one is the copy STAGED chooses."""
    return store.query(
        f"WITH versions AS (SELECT id, raw_sha256, any_value(raw) AS raw FROM {STAGING} "
        f"  WHERE id IN (SELECT id FROM {STAGING} GROUP BY id HAVING count(*) > 1) "
        "  GROUP BY id, raw_sha256) "
        f"SELECT k.id, k.raw_sha256, k.raw, v.raw_sha256, v.raw FROM versions v "
        f"JOIN {STAGED} k USING (id) WHERE v.raw_sha256 <> k.raw_sha256 "
        "ORDER BY k.id, v.raw_sha256"
    )


def unstaged_entries(store: Store) -> list[tuple[Any, ...]]:
    """(id, stored sha, stored raw) of stored entries a complete walk never met."""
    return store.query(
        "SELECT a.id, a.raw_sha256, a.raw FROM multimail_audit_log a "
        f"ANTI JOIN {STAGING} s USING (id) ORDER BY a.id"
    )


def chain_tail(store: Store) -> tuple[int, str]:
    """(chain_seq, chain_hash) of the last chained entry, or (0, GENESIS_HASH)."""
    last = store.query(
        "SELECT chain_seq, chain_hash FROM multimail_audit_log ORDER BY chain_seq DESC LIMIT 1"
    )
    return (last[0][0], last[0][1]) if last else (0, GENESIS_HASH)


def new_entries_in_chain_order(
    con: duckdb.DuckDBPyConnection, batch_rows: int
) -> pa.RecordBatchReader:
    """The staged new entries (`STAGED_COLUMNS`) in (created_at, id) order, streamed a batch
    at a time (a relation's reader; an execute() result would be copied whole first). The
    sort is DuckDB's, which spills past the memory limit."""
    columns = ", ".join(f'"{c}"' for c in STAGED_COLUMNS)
    return con.sql(
        f"SELECT {columns} FROM {STAGED} WHERE is_new ORDER BY created_at, id"
    ).to_arrow_reader(batch_rows)


@dataclass(frozen=True)
class ChainAppend:
    """A batch's write (`Store.commit_batch(also=[...])`): staged entries with their
    chain_seq and chain_hash (an Arrow table with `AUDIT_LOG_COLUMNS`) appended to
    multimail_audit_log."""

    entries: pa.Table

    def write(self, store: Store) -> int:
        _append(store, store.con, "multimail_audit_log", self.entries)
        return int(self.entries.num_rows)


@dataclass(frozen=True)
class EmptyStaging:
    """A batch's write: the staging table emptied (the walk's last batch)."""

    def write(self, store: Store) -> int:
        store.delete_account_rows(STAGING)
        return 0
