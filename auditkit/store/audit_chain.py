"""The audit log's staging table and hash chain, on the store's side.

The harvester's audit-log walk stages every entry it reads in `_auditkit_audit_walk`
(through a connection of its own, from its own thread), then one transaction compares the
staged copies of stored entries with what is stored, appends the new entries to
`multimail_audit_log` on the hash chain and empties the staging table. The chain itself
(sha256 of the previous chain_hash and the entry's raw_sha256) is computed by the harvester;
this module reads and writes the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
GENESIS_HASH = "0" * 64  # the chain_hash "before" the first audit entry


def reset_staging(store: Store) -> None:
    """Empty the staging table (leftovers of a killed run are scratch: never chained) and
    fill the column-type cache from the store's thread, before the walk's thread needs it."""
    store.delete_account_rows(STAGING)
    store.column_types(STAGING)


def stored_entry_ids(store: Store) -> set[str]:
    return {r[0] for r in store.query("SELECT id FROM multimail_audit_log")}


def staged_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    """Which of `ids` are staged already (asked through the walk's own connection)."""
    if not ids:
        return set()
    rows = con.execute(
        f"SELECT id FROM {STAGING} WHERE id IN (SELECT unnest($ids))", {"ids": ids}
    ).fetchall()
    return {r[0] for r in rows}


def stage_rows(
    store: Store, con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]]
) -> None:
    """One autocommitted insert through the walk's own connection (scratch, not evidence),
    for the store's account (the walk's connection is `store.cursor()`, scoped like it)."""
    if not rows:
        return
    con.register("_ak_audit_page", store.arrow_table(STAGING, rows))
    try:
        cols = ", ".join(f'"{c}"' for c in rows[0])
        con.execute(
            f"INSERT OR IGNORE INTO {store.base(STAGING)} (account, {cols}) "
            f"SELECT ?, {cols} FROM _ak_audit_page",
            [store.account],
        )
    finally:
        con.unregister("_ak_audit_page")


def changed_entries(store: Store) -> list[tuple[Any, ...]]:
    """(id, stored sha, stored raw, source sha, source raw) of staged entries that differ."""
    return store.query(
        f"SELECT s.id, a.raw_sha256, a.raw, s.raw_sha256, s.raw FROM {STAGING} s "
        "JOIN multimail_audit_log a USING (id) "
        "WHERE NOT s.is_new AND s.raw_sha256 <> a.raw_sha256 ORDER BY s.id"
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
    """(id, raw_sha256) of the staged new entries in (created_at, id) order, streamed
    (a relation's reader; an execute() result would be copied whole first)."""
    return con.sql(
        f"SELECT id, raw_sha256 FROM {STAGING} WHERE is_new ORDER BY created_at, id"
    ).to_arrow_reader(batch_rows)


@dataclass(frozen=True)
class ChainAppend:
    """A batch's write (`Store.commit_batch(also=[...])`): the staged entries named by
    `links` (tables of id, chain_seq, chain_hash, streamed) moved into multimail_audit_log
    on the hash chain, and the staging table emptied."""

    links: Iterable[pa.Table]

    def write(self, store: Store) -> int:
        return append_chained(store, self.links)


def append_chained(store: Store, links: Iterable[pa.Table]) -> int:
    """Move the staged entries named by `links` (tables of id, chain_seq, chain_hash) into
    multimail_audit_log and empty the staging table; returns how many were added.

    Call inside a transaction (`ChainAppend` in a `commit_batch`). Links first (small
    rows), then one insert joining them to the staged entries.
    """
    con = store.con
    columns = ", ".join(f'"{c}"' for c in AUDIT_LOG_COLUMNS)
    source = ", ".join(
        f'c."{c}"' if c in ("chain_seq", "chain_hash") else f's."{c}"' for c in AUDIT_LOG_COLUMNS
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ak_chain_links "
        "(id VARCHAR, chain_seq BIGINT, chain_hash VARCHAR)"
    )
    added = 0
    for batch in links:
        con.register("_ak_chain_batch", batch)
        try:
            con.execute("INSERT INTO _ak_chain_links SELECT * FROM _ak_chain_batch")
        finally:
            con.unregister("_ak_chain_batch")
        added += batch.num_rows
    # Read through the scoped staging view (this account's entries), written to the table.
    con.execute(
        f"INSERT INTO {store.base('multimail_audit_log')} (account, {columns}) "
        f"SELECT ?, {source} FROM {STAGING} s JOIN _ak_chain_links c USING (id)",
        [store.account],
    )
    con.execute("DROP TABLE _ak_chain_links")
    store.delete_account_rows(STAGING)
    return added
