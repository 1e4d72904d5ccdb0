"""Read an export back: the data files of each table's current snapshot (pyiceberg's scan
plan), and DuckDB views over them, so the controls' SQL runs on exported data as it runs on
the store.

DuckDB here cannot load its `iceberg` extension (it downloads from DuckDB's own extension
server, which this machine does not reach), so it reads the Parquet files pyiceberg plans.
That is exact for what auditkit writes: its deletes rewrite files (copy-on-write), so a
current snapshot has no delete files; a table another engine changed with delete files is
refused rather than read wrong. `hive_partitioning = false`: the files sit in Hive-style
folders (`account=default/created_at_month=2026-07/`), and DuckDB would otherwise add those
folder names as extra columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import duckdb

from auditkit.errors import ExportError
from auditkit.export.tables import EXPORT_TABLES, ROW_DIGEST, quote
from auditkit.store import Store

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

EXPORTED_NAMES = tuple(table.name for table in EXPORT_TABLES)


def data_files(table: Table) -> list[str]:
    """Paths of the Parquet files holding `table`'s current rows (local paths as paths)."""
    paths = []
    for task in table.scan().plan_files():
        if task.delete_files:
            raise ExportError(
                f"{table.name()} has delete files (written by another engine); read it with an "
                "Iceberg reader (pyiceberg, Spark, Trino), not its data files alone"
            )
        path = task.file.file_path
        paths.append(unquote(urlsplit(path).path) if path.startswith("file:") else path)
    return sorted(paths)


def create_views(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    namespace: str,
    *,
    tables: Iterable[str] = EXPORTED_NAMES,
    types: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, list[str]]:
    """A view per exported table in `con`, named as the store table, over the table's data
    files. `types` (table → column → DuckDB type) selects and casts columns, e.g. the store's
    own types to turn exported JSON text back into JSON; without it every exported column
    but `row_sha256` is shown. A table with no rows becomes an empty table of its columns.
    Returns each table's files."""
    files_of: dict[str, list[str]] = {}
    for name in tables:
        table = catalog.load_table((namespace, name))
        files = data_files(table)
        files_of[name] = files
        wanted = (types or {}).get(name)
        if wanted is None:
            columns = [f.name for f in table.schema().fields if f.name != ROW_DIGEST]
            select = ", ".join(quote(c) for c in columns)
        else:
            select = ", ".join(
                f"CAST({quote(c)} AS {kind}) AS {quote(c)}" for c, kind in wanted.items()
            )
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(
                f"CREATE OR REPLACE VIEW {quote(name)} AS SELECT {select} "
                f"FROM read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"
            )
        else:
            empty = table.schema().as_arrow().empty_table()
            con.register("_export_empty", empty)
            try:
                con.execute(
                    f"CREATE OR REPLACE TABLE {quote(name)} AS SELECT {select} FROM _export_empty"
                )
            finally:
                con.unregister("_export_empty")
    return files_of


def store_over_export(catalog: Catalog, namespace: str) -> Store:
    """An in-memory `Store` whose tables are views over the export (`create_views`, with the
    store's own column types), so `run_controls` and the pack read an export as they read a
    store. The caller closes it."""
    store = Store(":memory:")
    try:
        types = {t.name: dict(t.columns(store.con)) for t in EXPORT_TABLES}
        for name in types:  # the Store's account-scoping TEMP view, then the table itself
            store.con.execute(f"DROP VIEW IF EXISTS temp.main.{quote(name)}")
            store.con.execute(f"DROP TABLE {quote(name)}")
        create_views(store.con, catalog, namespace, types=types)
    except BaseException:
        store.close()
        raise
    return store
