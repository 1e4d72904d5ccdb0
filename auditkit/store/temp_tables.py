"""Small temp tables from Python lists: settings, policies and findings that queries join on.

Why not `con.register(name, arrow_table)`: registering (or scanning) a Python object makes
DuckDB import pandas to see whether it is a DataFrame, about half a second of CPU that a
one-message evidence pack would otherwise pay for a table of a few rows. A temp table
built from list parameters with `unnest` needs neither pandas nor pyarrow, works on a
read-only store, and is typed even when it is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb


def create_temp_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    columns: Mapping[str, tuple[str, Sequence[Any]]],
) -> None:
    """CREATE OR REPLACE TEMP TABLE `name` with one row per list position: `columns` maps
    each column name (from code, never from data) to its DuckDB type and its values."""
    lengths = {len(values) for _, values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"temp table {name}: columns of different lengths {sorted(lengths)}")
    select = ", ".join(
        f'unnest(CAST($c{i} AS {sql_type}[])) AS "{column}"'
        for i, (column, (sql_type, _)) in enumerate(columns.items())
    )
    params = {f"c{i}": list(values) for i, (_, values) in enumerate(columns.values())}
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {select}", params)


def drop_temp_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS temp.{name}")
