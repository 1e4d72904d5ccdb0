"""Several MultiMail accounts in one store: the `account` column and the scoped connection.

Every account-scoped table (each harvested table, and the harvest's books: cursors, runs,
quarantine, integrity events, the audit walk's staging, the sent-mail archive) carries an
`account` column first, and its primary key starts with it, so two accounts' identical ids
never collide. `ensure_account_columns` adds both to any such table that lacks them,
rebuilding it in the caller's transaction; it runs after every migration, so a table a
later migration creates gets the column without knowing about accounts.

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
from auditkit.store.schema import HARVESTED_TABLES

__all__ = ["ACCOUNT_COLUMN", "DEFAULT_ACCOUNT", "check_account_name"]

ACCOUNT_COLUMN = "account"

# The harvest's books, per account like the rows they describe. Not _auditkit_migrations:
# a migration is the file's, not an account's.
BOOKKEEPING_TABLES = (
    "_auditkit_cursors",
    "harvest_runs",
    "quarantine",
    "integrity_events",
    "_auditkit_audit_walk",
    "archive_messages",
    "archive_dkim_results",
    "dkim_key_records",
)


def account_scoped_tables() -> tuple[str, ...]:
    """Every table that carries `account`: HARVESTED_TABLES (read now, so a table added
    to that one list is scoped too) and the books."""
    return (*HARVESTED_TABLES, *BOOKKEEPING_TABLES)


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def base_table(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The database's own table, qualified past any scoped view of the same name
    (`main.t` alone would still find the temp view: DuckDB searches temp.main first)."""
    return f'"{database_name(con)}".main."{table}"'


def database_name(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


def _columns(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, list[tuple[str, ...]]]:
    """table → [(column, type, nullable, default)] of the database's own tables."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for table, column, data_type, nullable, default in con.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
        "ORDER BY table_name, column_index",
        [database],
    ).fetchall():
        out.setdefault(table, []).append((column, data_type, nullable, default))
    return out


def ensure_account_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Give every account-scoped table that lacks it an `account` column (existing rows:
    DEFAULT_ACCOUNT) leading its primary key. Returns the tables rebuilt.

    DuckDB cannot change a primary key in place, so each table is rebuilt: created anew
    with the column first, filled from the old one, dropped and renamed. Call inside a
    transaction (`Store.migrate` does): a failure leaves the store as it was.
    """
    database = database_name(con)
    columns = _columns(con, database)
    rebuilt = []
    for table in account_scoped_tables():
        cols = columns.get(table)
        if cols is None or any(c[0] == ACCOUNT_COLUMN for c in cols):
            continue
        keys = [
            k
            for (k,) in con.execute(
                "SELECT unnest(constraint_column_names) FROM duckdb_constraints() "
                "WHERE database_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [database, table],
            ).fetchall()
        ]
        defs = [f"{ACCOUNT_COLUMN} VARCHAR NOT NULL"]
        for name, data_type, nullable, default in cols:
            spec = f'"{name}" {data_type}'
            if nullable is False:
                spec += " NOT NULL"
            if default is not None:
                spec += f" DEFAULT {default}"
            defs.append(spec)
        if keys:
            defs.append("PRIMARY KEY (" + ", ".join([ACCOUNT_COLUMN, *keys]) + ")")
        names = ", ".join(f'"{c[0]}"' for c in cols)
        old, new = base_table(con, table), base_table(con, f"{table}__accounts")
        con.execute(f"CREATE TABLE {new} ({', '.join(defs)})")
        con.execute(
            f"INSERT INTO {new} ({ACCOUNT_COLUMN}, {names}) "
            f"SELECT {sql_literal(DEFAULT_ACCOUNT)}, {names} FROM {old}"
        )
        con.execute(f"DROP TABLE {old}")
        con.execute(f'ALTER TABLE {new} RENAME TO "{table}"')
        rebuilt.append(table)
    return rebuilt


def install_scope(con: duckdb.DuckDBPyConnection, account: str) -> None:
    """Shadow each account-scoped table with a TEMP view of `account`'s rows, without the
    account column (see the module docstring). A table that predates accounts (a store
    opened read-only before its first migrating write) holds only DEFAULT_ACCOUNT's rows:
    it is read as it is for that account and refused for any other."""
    database = database_name(con)
    columns = _columns(con, database)
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
    columns = _columns(con, database)
    parts = [
        f"SELECT DISTINCT {ACCOUNT_COLUMN} FROM {base_table(con, t)}"
        for t in ("harvest_runs", *HARVESTED_TABLES)
        if any(c[0] == ACCOUNT_COLUMN for c in columns.get(t, []))
    ]
    if not parts:
        return [DEFAULT_ACCOUNT]
    rows = con.execute(" UNION ".join(parts) + " ORDER BY 1").fetchall()
    return [r[0] for r in rows] or [DEFAULT_ACCOUNT]
