"""The bulk load: rows → Arrow (typed like the target table) → one INSERT per batch.

Never `executemany`: a batch of 2,000 emails is one Arrow table and a handful of
statements. `Store.upsert` and `Store.commit_batch` call `upsert` here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from auditkit.errors import StoreError
from auditkit.store.accounts import ACCOUNT_COLUMN

if TYPE_CHECKING:
    from auditkit.store import Store

# The view name each batch is registered under while it loads.
BATCH_VIEW = "_auditkit_batch"

Rows: TypeAlias = pa.Table | Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Load:
    """Rows for one table in a batch (`Store.commit_batch`), upserted by `pk`.

    `replace_all` first empties the table (a snapshot, such as the approval queue);
    `replace_where=(column, values)` first deletes the rows whose column holds one of the
    values (results re-checked as a whole, such as a message's DKIM signatures).
    """

    table: str
    rows: Rows
    pk: str | Sequence[str] = "id"
    replace_all: bool = False
    replace_where: tuple[str, Sequence[Any]] | None = None

    def write(self, store: Store) -> int:
        if self.replace_all:
            store.delete_account_rows(self.table)
        if self.replace_where is not None:
            column, values = self.replace_where
            delete_where_in(store, self.table, column, values)
        return store.upsert(self.table, self.rows, self.pk)


_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BOOLEAN": pa.bool_(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "VARCHAR[]": pa.list_(pa.string()),
    "BLOB": pa.binary(),
}


def upsert(
    store: Store,
    table: str,
    rows: Rows,
    pk: str | Sequence[str] = "id",
) -> int:
    """Insert or replace rows by primary key, in bulk through Arrow (see `Store.upsert`)."""
    arrow = rows if isinstance(rows, pa.Table) else rows_to_arrow(store, table, rows)
    if arrow.num_rows == 0:
        return 0
    keys = [pk] if isinstance(pk, str) else list(pk)
    # -- accounts: the store's account joins every row and leads the key (store/accounts.py)
    arrow, keys = with_account(store, table, arrow, keys)
    target = store.base(table)  # the table itself: the unqualified name is a scoped view
    # -- end accounts
    con = store.con
    con.register(BATCH_VIEW, arrow)
    try:
        cols = ", ".join(f'"{c}"' for c in arrow.column_names)
        if _has_duplicate_keys(arrow, keys):
            # Keep the last occurrence of each key: number rows, keep max position.
            key_list = ", ".join(f'"{k}"' for k in keys)
            source = (
                f"SELECT {cols} FROM (SELECT *, row_number() OVER () AS _pos FROM {BATCH_VIEW}) "
                f"QUALIFY _pos = max(_pos) OVER (PARTITION BY {key_list})"
            )
        else:  # the common case; the window costs more than the insert itself
            source = f"SELECT {cols} FROM {BATCH_VIEW}"
        key_match = " AND ".join(f't."{k}" = b."{k}"' for k in keys)
        with store.atomic():
            existing = con.execute(
                f"SELECT count(*) FROM {target} t SEMI JOIN {BATCH_VIEW} b ON {key_match}"
            ).fetchall()[0][0]
            if not existing:
                con.execute(f"INSERT INTO {target} ({cols}) {source}")
            elif set(arrow.column_names) == set(store.column_types(table)):
                con.execute(f"DELETE FROM {target} t USING {BATCH_VIEW} b WHERE {key_match}")
                con.execute(f"INSERT INTO {target} ({cols}) {source}")
            else:
                con.execute(f"INSERT OR REPLACE INTO {target} ({cols}) {source}")
    finally:
        con.unregister(BATCH_VIEW)
    return arrow.num_rows


def with_account(
    store: Store, table: str, arrow: pa.Table, keys: list[str]
) -> tuple[pa.Table, list[str]]:
    """`arrow` with the store's account as a column, and `keys` led by it, when `table` is
    account-scoped; as given otherwise."""
    if not store.is_account_scoped(table) or ACCOUNT_COLUMN in keys:
        return arrow, keys
    if ACCOUNT_COLUMN not in arrow.column_names:
        arrow = arrow.append_column(
            ACCOUNT_COLUMN, pa.array([store.account] * arrow.num_rows, pa.string())
        )
    return arrow, [ACCOUNT_COLUMN, *keys]


def delete_where_in(store: Store, table: str, column: str, values: Sequence[Any]) -> None:
    """DELETE the store account's rows of `table` whose `column` is one of `values`
    (loaded through Arrow)."""
    view = "_auditkit_delete_keys"
    own = f"{ACCOUNT_COLUMN} = ? AND " if store.is_account_scoped(table) else ""
    store.con.register(view, pa.table({column: list(values)}))
    try:
        store.con.execute(
            f"DELETE FROM {store.base(table)} WHERE {own}"
            f'"{column}" IN (SELECT "{column}" FROM {view})',
            [store.account] if own else [],
        )
    finally:
        store.con.unregister(view)


def rows_to_arrow(store: Store, table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build an Arrow table typed like the target table, so nulls and lists load right."""
    if not rows:
        return pa.table({})
    cols = list(rows[0].keys())
    schema = _arrow_schema(store, table, cols)
    # from_pylist reads each row with .get(), so the mappings need no copying.
    return pa.Table.from_pylist(rows if isinstance(rows, list) else list(rows), schema=schema)


def _has_duplicate_keys(arrow: pa.Table, keys: Sequence[str]) -> bool:
    if len(keys) == 1:
        return bool(pc.count_distinct(arrow.column(keys[0]), mode="all").as_py() != arrow.num_rows)
    return arrow.group_by(list(keys)).aggregate([]).num_rows != arrow.num_rows


def _arrow_schema(store: Store, table: str, cols: Sequence[str]) -> pa.Schema:
    types = store.column_types(table)
    fields = []
    for c in cols:
        if c not in types:
            raise StoreError(f"table {table} has no column {c!r}")
        fields.append(pa.field(c, _ARROW_TYPES.get(types[c], pa.string())))
    return pa.schema(fields)
