"""Several MultiMail accounts in one store: the `account` column and the scoped connection.

Every account-scoped table (each harvested table, and the harvest's books: cursors, runs,
quarantine, integrity events, the audit walk's staging, the sent-mail archive) carries an
`account` column first, and its primary key starts with it, so two accounts' identical ids
never collide. `ensure_account_columns` adds both to any such table that lacks them,
rebuilding it in the caller's transaction (it lives in `schema`, with the other DDL); it
runs after every migration, so a table a later migration creates gets the column without
knowing about accounts.

Readers never name the column. A `Store` opened for an account installs, on each of its
connections, a TEMP view per scoped table with the table's own name:

    CREATE TEMP VIEW multimail_emails AS
        SELECT * EXCLUDE (account) FROM "store".main.multimail_emails WHERE account = 'eu'

DuckDB resolves an unqualified name to the temp catalog before the database's own, so all
existing control, report and harvest SQL runs unchanged, sees exactly the single-account
layout it was written for, and cannot see another account's rows. Writes name the base
table (`base_table`) and add the account themselves (`store.upsert`, `books`,
`audit_chain`).
"""

from __future__ import annotations

import duckdb

from auditkit.config_accounts import DEFAULT_ACCOUNT, check_account_name
from auditkit.errors import StoreError
from auditkit.store.schema import (
    ACCOUNT_COLUMN,
    BOOKKEEPING_TABLES,
    HARVESTED_TABLES,
    account_scoped_tables,
    database_columns,
    database_name,
    ensure_account_columns,
)

__all__ = [
    "ACCOUNT_COLUMN",
    "BOOKKEEPING_TABLES",
    "DEFAULT_ACCOUNT",
    "account_scoped_tables",
    "check_account_name",
    "database_name",
    "ensure_account_columns",
]


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def base_table(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The database's own table, qualified past any scoped view of the same name
    (`main.t` alone would still find the temp view: DuckDB searches temp.main first)."""
    return f'"{database_name(con)}".main."{table}"'


def install_scope(con: duckdb.DuckDBPyConnection, account: str) -> None:
    """Shadow each account-scoped table with a TEMP view of `account`'s rows, without the
    account column (see the module docstring). A table that predates accounts (a store
    opened read-only before its first migrating write) holds only DEFAULT_ACCOUNT's rows:
    it is read as it is for that account and refused for any other."""
    database = database_name(con)
    columns = database_columns(con, database)
    for table in account_scoped_tables():
        cols = columns.get(table)
        if cols is None:
            continue
        if not any(c[0] == ACCOUNT_COLUMN for c in cols):
            if account != DEFAULT_ACCOUNT:
                raise StoreError(
                    f"this store predates accounts and holds only the {DEFAULT_ACCOUNT!r} "
                    f"account; run `auditkit harvest` once to migrate it before reading "
                    f"account {account!r}"
                )
            continue
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * EXCLUDE ({ACCOUNT_COLUMN}) "
            f'FROM "{database}".main.{table} WHERE {ACCOUNT_COLUMN} = {sql_literal(account)}'
        )


def stored_accounts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every account with a row in the store's runs or harvested tables, sorted."""
    database = database_name(con)
    columns = database_columns(con, database)
    parts = [
        f"SELECT DISTINCT {ACCOUNT_COLUMN} FROM {base_table(con, t)}"
        for t in ("harvest_runs", *HARVESTED_TABLES)
        if any(c[0] == ACCOUNT_COLUMN for c in columns.get(t, []))
    ]
    if not parts:
        return [DEFAULT_ACCOUNT]
    rows = con.execute(" UNION ".join(parts) + " ORDER BY 1").fetchall()
    return [r[0] for r in rows] or [DEFAULT_ACCOUNT]
