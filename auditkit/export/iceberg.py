"""Export the store's tables as Apache Iceberg tables, adding only what changed.

Per table, in one Iceberg transaction (one atomic catalog commit):

1. the store's rows are read with their `row_sha256` (tables.with_digest) into a temporary
   DuckDB table of keys, digests and partition times;
2. the exported table's `account`, key, time and `row_sha256` columns are scanned (Parquet
   column projection, deletes applied by pyiceberg) into another;
3. a key is *stale* when the export holds a row of it that the store does not hold (changed
   or removed since) or holds one row twice; stale keys are deleted from the partitions they
   sit in (pyiceberg rewrites just those files), and every store row of a stale key, or not
   in the export, is appended, one partition at a time, streamed in bounded chunks.

Nothing to delete or add: no commit, so no new snapshot. A crash before the commit leaves
the catalog as it was (files already written are orphans no snapshot references), and the
next run finds the same differences again: the result equals a clean export. After each
commit the table's record count is checked against the store's.

pyiceberg (the `export` extra) is imported only here and only when an export runs.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from auditkit import __version__
from auditkit.errors import ConfigError, ExportError, one_line
from auditkit.export.settings import CATALOG_NAME, CatalogTarget
from auditkit.export.tables import ACCOUNT, EXPORT_TABLES, ROW_DIGEST, ExportTable, with_digest
from auditkit.store import Store

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table, Transaction


# Rows fetched from DuckDB per Arrow batch, and the Arrow bytes gathered before pyiceberg
# writes them as Parquet: the chunk, not the table, bounds an export's memory.
BATCH_ROWS = 20_000
CHUNK_BYTES = 128 * 1024 * 1024
# Namespace property: the MultiMail account ids whose stores were exported into it.
NAMESPACE_ACCOUNTS = "auditkit.accounts"
MISSING_EXTRA = (
    "auditkit export needs pyiceberg with SQLAlchemy: pip install 'auditkit[export]' "
    "(or pip install 'pyiceberg[sql-sqlite]')"
)


@dataclass
class TableExport:
    """What one table's export did."""

    table: str
    rows: int  # in the store, and so in the exported table afterwards
    added: int = 0
    removed: int = 0
    snapshot_id: int | None = None  # None: nothing changed, no commit
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "added": self.added,
            "removed": self.removed,
            "committed": self.snapshot_id is not None,
            "snapshot_id": self.snapshot_id,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ExportSummary:
    target: CatalogTarget
    tables: list[TableExport] = field(default_factory=list)

    @property
    def committed(self) -> list[TableExport]:
        return [t for t in self.tables if t.snapshot_id is not None]

    def one_line(self) -> str:
        added = sum(t.added for t in self.tables)
        removed = sum(t.removed for t in self.tables)
        return (
            f"exported {len(self.tables)} tables to {self.target.describe()}: "
            f"{len(self.committed)} changed ({added:,} rows added, {removed:,} removed), "
            f"{len(self.tables) - len(self.committed)} unchanged"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.public_dict(),
            "tables": [t.to_dict() for t in self.tables],
        }


def open_catalog(target: CatalogTarget) -> Catalog:
    """The pyiceberg catalog `target` names (ConfigError when pyiceberg is not installed)."""
    try:
        from pyiceberg.catalog import load_catalog
        from pyiceberg.exceptions import NamespaceAlreadyExistsError
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None
    properties: dict[str, str | None] = {"type": target.kind, "uri": target.uri}
    if target.warehouse is not None:
        properties["warehouse"] = target.warehouse
    if target.kind == "rest":
        properties["token"] = target.token
        properties["credential"] = target.credential
    elif target.password is not None:
        from sqlalchemy.engine import make_url

        url = make_url(target.uri).set(password=target.password)
        properties["uri"] = url.render_as_string(hide_password=False)
    if target.local_dir is not None:
        target.local_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    properties = {k: v for k, v in properties.items() if v is not None}
    try:
        catalog = load_catalog(CATALOG_NAME, **properties)
        try:
            catalog.create_namespace_if_not_exists(target.namespace)
        except NamespaceAlreadyExistsError:  # created by a concurrent exporter
            pass
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None
    except Exception as exc:  # pyiceberg, SQLAlchemy and HTTP errors have no common base
        raise ExportError(
            f"catalog {target.describe()} cannot be opened: {_reason(exc, target)}"
        ) from exc
    return catalog


def _reason(exc: BaseException, target: CatalogTarget) -> str:
    """An exception's message as one line, with any secret of `target` blanked out."""
    text = f"{type(exc).__name__}: {exc}"
    for secret in (target.token, target.credential, target.password):
        if secret:
            text = text.replace(secret, "***")
    return one_line(text)


def export_store(
    store: Store,
    target: CatalogTarget,
    *,
    tables: Sequence[ExportTable] = EXPORT_TABLES,
    progress: Callable[[TableExport], None] | None = None,
) -> ExportSummary:
    """Export `tables` of `store` into the catalog `target`, each table atomically.

    A local export (`--out`) creates its files owner-only, like the store and the packs:
    they hold the same personal data."""
    if target.local_dir is None:
        return _export_tables(store, target, tables, progress)
    previous = os.umask(0o077)
    try:
        return _export_tables(store, target, tables, progress)
    finally:
        os.umask(previous)


def _export_tables(
    store: Store,
    target: CatalogTarget,
    tables: Sequence[ExportTable],
    progress: Callable[[TableExport], None] | None,
) -> ExportSummary:
    catalog = open_catalog(target)
    _claim_namespace(store, catalog, target)
    summary = ExportSummary(target)
    for spec in tables:
        t0 = time.perf_counter()
        try:
            result = _export_table(store, catalog, target.namespace, spec)
        except (ConfigError, ExportError):
            raise
        except Exception as exc:
            raise ExportError(
                f"exporting {spec.name} to {target.describe()} failed: {_reason(exc, target)}"
            ) from exc
        finally:
            _drop_work_tables(store)
        result.seconds = time.perf_counter() - t0
        summary.tables.append(result)
        if progress is not None:
            progress(result)
    return summary


def _claim_namespace(store: Store, catalog: Catalog, target: CatalogTarget) -> None:
    """Refuse to export into a namespace that holds another store's accounts.

    An export makes the namespace's tables equal to the store, so a store that lacks an
    account the namespace holds (another store's, or an empty store) would delete that
    account's rows. The namespace records the MultiMail account ids exported into it."""
    accounts = {
        str(r[0])
        for r in store.query(
            f"SELECT DISTINCT id FROM {store.base('multimail_account')} WHERE id IS NOT NULL"
        )
    }
    try:
        properties = catalog.load_namespace_properties(target.namespace)
    except Exception as exc:
        raise ExportError(
            f"namespace {target.namespace} cannot be read: {_reason(exc, target)}"
        ) from exc
    held = {a for a in properties.get(NAMESPACE_ACCOUNTS, "").split(",") if a}
    if missing := sorted(held - accounts):
        raise ExportError(
            f"namespace {target.namespace} holds the export of MultiMail account(s) "
            f"{', '.join(missing)}, which this store does not hold, and exporting would delete "
            "their rows: export each store into its own namespace (--namespace)"
        )
    if accounts - held:
        catalog.update_namespace_properties(
            target.namespace, updates={NAMESPACE_ACCOUNTS: ",".join(sorted(accounts | held))}
        )


_WORK_TABLES = ("_export_store", "_export_exported", "_export_stale", "_export_add")


def _drop_work_tables(store: Store) -> None:
    store.con.execute("DROP VIEW IF EXISTS temp._export_removed")
    for name in _WORK_TABLES:
        store.con.execute(f"DROP TABLE IF EXISTS temp.{name}")


def _export_table(store: Store, catalog: Catalog, namespace: str, spec: ExportTable) -> TableExport:
    con = store.con
    base = spec.base_sql(con, store.base(spec.name))
    key, when = spec.key, spec.time_column
    # The store's side: one digest per row (the only pass over every value of every row).
    con.execute(
        f"CREATE TEMP TABLE _export_store AS SELECT {ACCOUNT}, {key} AS k, {when} AS t, "
        f"{ROW_DIGEST} FROM ({with_digest(base)})"
    )
    rows = _count(con, "_export_store")
    schema = con.sql(f"SELECT * FROM ({with_digest(base)}) LIMIT 0").to_arrow_table().schema
    table = _table(catalog, (namespace, spec.name), schema, spec)

    # The export's side: four columns of the current snapshot.
    con.execute(
        f"CREATE TEMP TABLE _export_exported ({ACCOUNT} VARCHAR, k VARCHAR, t TIMESTAMPTZ, "
        f"{ROW_DIGEST} VARCHAR)"
    )
    if table.current_snapshot() is not None:
        columns = (ACCOUNT, key, when, ROW_DIGEST)
        con.register("_export_scan", table.scan(selected_fields=columns).to_arrow_batch_reader())
        try:
            con.execute(
                f"INSERT INTO _export_exported SELECT {ACCOUNT}, {key}, {when}, {ROW_DIGEST} "
                "FROM _export_scan"
            )
        finally:
            con.unregister("_export_scan")

    # Stale keys: the export holds a row of theirs the store does not, or one row twice.
    con.execute(f"""
        CREATE TEMP TABLE _export_stale AS
        SELECT DISTINCT {ACCOUNT}, k FROM (
            SELECT e.{ACCOUNT}, e.k FROM _export_exported e ANTI JOIN _export_store s
              ON s.{ACCOUNT} IS NOT DISTINCT FROM e.{ACCOUNT} AND s.k IS NOT DISTINCT FROM e.k
             AND s.{ROW_DIGEST} = e.{ROW_DIGEST}
            UNION ALL
            SELECT {ACCOUNT}, k FROM _export_exported
            GROUP BY {ACCOUNT}, k, {ROW_DIGEST} HAVING count(*) > 1)
    """)
    # Rows to append: every store row of a stale key, and every row the export lacks.
    con.execute(f"""
        CREATE TEMP TABLE _export_add AS
        SELECT s.* FROM _export_store s
        WHERE EXISTS (SELECT 1 FROM _export_stale g
                      WHERE g.{ACCOUNT} IS NOT DISTINCT FROM s.{ACCOUNT}
                        AND g.k IS NOT DISTINCT FROM s.k)
           OR NOT EXISTS (SELECT 1 FROM _export_exported e
                          WHERE e.{ACCOUNT} IS NOT DISTINCT FROM s.{ACCOUNT}
                            AND e.k IS NOT DISTINCT FROM s.k
                            AND e.{ROW_DIGEST} = s.{ROW_DIGEST})
    """)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _export_removed AS SELECT e.* FROM _export_exported e "
        f"SEMI JOIN _export_stale g ON g.{ACCOUNT} IS NOT DISTINCT FROM e.{ACCOUNT} "
        "AND g.k IS NOT DISTINCT FROM e.k"
    )
    result = TableExport(spec.name, rows, added=_count(con, "_export_add"))
    result.removed = _count(con, "_export_removed")
    evolve = _new_columns(table, schema)
    if not (result.added or result.removed or evolve):
        return result

    with table.transaction() as tx:
        if evolve:
            with tx.update_schema() as update:
                update.union_by_name(schema)
        if result.removed:
            tx.delete(_stale_filter(store, spec))
        if result.added:
            _append(store, tx, spec, base)
    table = table.refresh()
    snapshot = table.current_snapshot()
    total = int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else -1
    if total != rows:
        raise ExportError(
            f"{spec.name}: the exported table holds {total:,} rows after the commit, the store "
            f"{rows:,}; export again (a rerun repairs the difference)"
        )
    result.snapshot_id = snapshot.snapshot_id if snapshot else None
    return result


def _count(con: Any, table: str) -> int:
    # fetchall, not fetchone: DuckDB refuses new work while a result is partly fetched.
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def _table(catalog: Catalog, ident: tuple[str, str], schema: pa.Schema, spec: ExportTable) -> Table:
    """The exported table, created with its partition spec when it does not exist yet."""
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
    from pyiceberg.transforms import MonthTransform

    try:
        return catalog.load_table(ident)
    except NoSuchTableError:
        pass
    try:
        with catalog.create_table_transaction(
            ident,
            schema=schema,
            properties={"auditkit.partition-time-column": spec.time_column},
        ) as tx:
            with tx.update_spec() as update:
                update.add_identity(ACCOUNT)
                update.add_field(spec.time_column, MonthTransform(), f"{spec.time_column}_month")
    except TableAlreadyExistsError:  # a concurrent exporter created it first
        pass
    return catalog.load_table(ident)


def _new_columns(table: Table, schema: pa.Schema) -> list[str]:
    """Store columns the exported table lacks (a migration added them since)."""
    have = {f.name for f in table.schema().fields}
    return [name for name in schema.names if name not in have]


def _month_bounds(store: Store, sql: str) -> list[tuple[str | None, datetime | None, list[str]]]:
    return [(a, m, keys) for a, m, keys in store.con.execute(sql).fetchall()]


def _stale_filter(store: Store, spec: ExportTable) -> BooleanExpression:
    """Rows of the stale keys, partition by partition: pyiceberg then opens only the files
    of the partitions that hold them."""
    from pyiceberg.expressions import (
        And,
        EqualTo,
        GreaterThanOrEqual,
        In,
        IsNull,
        LessThan,
        Or,
    )

    groups = _month_bounds(
        store,
        f"SELECT {ACCOUNT}, date_trunc('month', t) AS m, list(DISTINCT k ORDER BY k) "
        "FROM _export_removed GROUP BY ALL ORDER BY ALL",
    )
    parts: list[BooleanExpression] = []
    for account, month, keys in groups:
        where: list[BooleanExpression] = [
            EqualTo(ACCOUNT, account) if account is not None else IsNull(ACCOUNT)
        ]
        if month is None:
            where.append(IsNull(spec.time_column))
        else:
            where.append(GreaterThanOrEqual(spec.time_column, month.isoformat()))
            where.append(LessThan(spec.time_column, _next_month(month).isoformat()))
        where.append(In(spec.key, keys))
        parts.append(And(*where))
    return parts[0] if len(parts) == 1 else Or(*parts)


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _append(store: Store, tx: Transaction, spec: ExportTable, base: str) -> None:
    """Append the rows in `_export_add`, one partition at a time, as one snapshot."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    con = store.con
    partitions = con.execute(
        f"SELECT DISTINCT {ACCOUNT}, date_trunc('month', t) AS m FROM _export_add ORDER BY ALL"
    ).fetchall()
    counter = itertools.count(0)
    with tx.update_snapshot(
        snapshot_properties={"auditkit.version": __version__}
    ).fast_append() as append:
        for account, month in partitions:
            # The digest is computed again only for the rows of candidate keys.
            rows_sql = with_digest(
                f"SELECT b.* FROM ({base}) b SEMI JOIN _export_add a "
                f"ON a.{ACCOUNT} IS NOT DISTINCT FROM b.{ACCOUNT} "
                f"AND a.k IS NOT DISTINCT FROM CAST(b.{spec.key} AS VARCHAR) "
                f"AND a.{ACCOUNT} IS NOT DISTINCT FROM ? "
                f"AND date_trunc('month', a.t) IS NOT DISTINCT FROM ?"
            )
            sql = (
                f"SELECT r.* FROM ({rows_sql}) r SEMI JOIN _export_add a "
                f"ON a.{ACCOUNT} IS NOT DISTINCT FROM r.{ACCOUNT} "
                f"AND a.k IS NOT DISTINCT FROM CAST(r.{spec.key} AS VARCHAR) "
                f"AND a.{ROW_DIGEST} = r.{ROW_DIGEST}"
            )
            reader = con.sql(sql, params=[account, month]).to_arrow_reader(BATCH_ROWS)
            for chunk in _chunks(reader):
                for data_file in _dataframe_to_data_files(
                    table_metadata=tx.table_metadata,
                    df=chunk,
                    io=tx._table.io,
                    write_uuid=append.commit_uuid,
                    counter=counter,
                ):
                    append.append_data_file(data_file)


def _chunks(reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
    """Arrow tables of about CHUNK_BYTES each from `reader`."""
    batches: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        batches.append(batch)
        size += batch.nbytes
        if size >= CHUNK_BYTES:
            yield pa.Table.from_batches(batches, schema=reader.schema)
            batches, size = [], 0
    if batches:
        yield pa.Table.from_batches(batches, schema=reader.schema)
