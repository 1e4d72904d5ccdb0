"""Digests over harvested content: which rows a pack was built from (`snapshot_digest`), and
whether two stores hold the same evidence whatever runs produced it (`content_digest`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from auditkit.errors import StoreError
from auditkit.store.canonical import canonical_json
from auditkit.store.schema import HARVESTED_TABLES

if TYPE_CHECKING:
    from auditkit.store import Store

# Per-run stamps: the content digest leaves them out.
VOLATILE_COLUMNS = frozenset({"run_id", "harvested_at", "first_harvested_at", "fetched_at"})


def snapshot_digest(store: Store, tables: Iterable[str]) -> str:
    """SHA-256 over, per table in name order, the table name and then one line
    "\\n<id>\\t<raw_sha256>" per row in id order: identifies exactly which harvested
    content a pack was built from.

    The lines are built by DuckDB and hashed straight from Arrow's string buffers, so a
    million-row store costs a fraction of a second instead of a Python loop per row.
    """
    h = hashlib.sha256()
    for table in sorted(tables):
        h.update(table.encode())
        reader = store.con.sql(
            f"SELECT concat(chr(10), id, chr(9), raw_sha256) AS line FROM {table} ORDER BY id"
        ).to_arrow_reader(100_000)
        for batch in reader:
            _hash_string_column(h, batch.column(0))
    return h.hexdigest()


def content_digest(store: Store, tables: Sequence[str] = HARVESTED_TABLES) -> str:
    """SHA-256 over every harvested row's content, ignoring per-run stamps.

    Two stores with the same digest hold the same evidence even if different runs (or a
    killed run plus its rerun) produced it.
    """
    digest = hashlib.sha256()
    for table in sorted(tables):
        # The columns as the store's account sees them (its scoped view: no account column).
        visible = store.con.execute(f"SELECT * FROM {table} LIMIT 0").description
        cols = [d[0] for d in visible if d[0] not in VOLATILE_COLUMNS]
        col_sql = ", ".join(f'"{c}"' for c in cols)
        for row in store.query(f"SELECT {col_sql} FROM {table} ORDER BY id"):
            digest.update(f"{table}\t{canonical_json([str(v) for v in row])}\n".encode())
    return digest.hexdigest()


def _hash_string_column(h: Any, column: pa.Array) -> None:
    """Feed the concatenated values of a null-free string column to `h` without copies."""
    column = column.cast(pa.large_string()) if pa.types.is_string(column.type) else column
    if column.null_count:
        raise StoreError("snapshot digest: a row has no id or raw_sha256")
    offsets = column.buffers()[1]
    data = column.buffers()[2]
    if data is None or len(column) == 0:
        return
    import numpy as np  # pyarrow depends on numpy; only needed here

    bounds = np.frombuffer(offsets, dtype=np.int64)[column.offset : column.offset + len(column) + 1]
    h.update(memoryview(data)[int(bounds[0]) : int(bounds[-1])])
