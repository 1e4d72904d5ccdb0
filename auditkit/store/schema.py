"""The store's schema: versioned migrations (the only DDL in auditkit), the list of
harvested tables, and the account column every scoped table carries.

Migration `0001_initial` is the source of truth for the harvested tables. Never edit a
migration that has shipped: add a new one. `Store` applies them on open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from auditkit.config_accounts import DEFAULT_ACCOUNT

# Columns every harvested table carries, after its typed columns.
PROVENANCE = """
    raw JSON NOT NULL,
    raw_sha256 VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    harvested_at TIMESTAMPTZ NOT NULL
"""


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


MIGRATIONS: list[Migration] = []


def migration(
    name: str,
) -> Callable[
    [Callable[[duckdb.DuckDBPyConnection], None]], Callable[[duckdb.DuckDBPyConnection], None]
]:
    """Register a migration; order of registration is order of application. Never edit one
    that has shipped: add a new one."""

    def register(
        fn: Callable[[duckdb.DuckDBPyConnection], None],
    ) -> Callable[[duckdb.DuckDBPyConnection], None]:
        MIGRATIONS.append(Migration(name, fn))
        return fn

    return register


@migration("0001_initial")
def _initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
    CREATE TABLE _auditkit_cursors (
        source VARCHAR NOT NULL, resource VARCHAR NOT NULL, value VARCHAR,
        run_id VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (source, resource));
    CREATE TABLE harvest_runs (
        run_id VARCHAR PRIMARY KEY, command VARCHAR NOT NULL,
        started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ,
        outcome VARCHAR NOT NULL,            -- running | ok | partial | failed
        params JSON, counts JSON, duration_seconds DOUBLE, error VARCHAR);
    CREATE TABLE quarantine (
        id VARCHAR PRIMARY KEY,              -- sha256(source|endpoint|raw_text)
        run_id VARCHAR NOT NULL, source VARCHAR NOT NULL, endpoint VARCHAR NOT NULL,
        record_id VARCHAR, reason VARCHAR NOT NULL, raw_text VARCHAR NOT NULL,
        quarantined_at TIMESTAMPTZ NOT NULL);
    CREATE TABLE integrity_events (
        -- id: sha256(record_type|record_id|stored_sha256|source_sha256)
        id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL, detected_at TIMESTAMPTZ NOT NULL,
        record_type VARCHAR NOT NULL,        -- audit_entry | email
        record_id VARCHAR NOT NULL,
        change VARCHAR NOT NULL,             -- changed | removed
        stored_sha256 VARCHAR, source_sha256 VARCHAR,
        stored_raw JSON, source_raw JSON);

    CREATE TABLE multimail_account (
        id VARCHAR PRIMARY KEY, name VARCHAR, slug VARCHAR, plan VARCHAR,
        oversight_email VARCHAR, physical_address VARCHAR,
        is_active BOOLEAN, sending_disabled BOOLEAN, {PROVENANCE});
    CREATE TABLE multimail_mailboxes (
        id VARCHAR PRIMARY KEY, address VARCHAR, display_name VARCHAR,
        oversight_mode VARCHAR, auto_cc VARCHAR, auto_bcc VARCHAR, signature_block VARCHAR,
        default_gate_timing VARCHAR, created_at TIMESTAMPTZ, is_active BOOLEAN, {PROVENANCE});
    CREATE TABLE multimail_api_keys (
        id VARCHAR PRIMARY KEY, name VARCHAR, prefix VARCHAR, scopes VARCHAR[],
        created_at TIMESTAMPTZ, last_used_at TIMESTAMPTZ, is_active BOOLEAN, {PROVENANCE});
    CREATE TABLE multimail_domains (
        id VARCHAR PRIMARY KEY, domain VARCHAR, status VARCHAR,
        dkim_verified BOOLEAN, spf_verified BOOLEAN, mx_verified BOOLEAN,
        return_path_verified BOOLEAN, created_at TIMESTAMPTZ, verified_at TIMESTAMPTZ,
        {PROVENANCE});
    CREATE TABLE multimail_webhooks (
        id VARCHAR PRIMARY KEY, url VARCHAR, events VARCHAR[], mailbox_id VARCHAR,
        created_at TIMESTAMPTZ, {PROVENANCE});   -- raw never holds signing_secret
    CREATE TABLE multimail_suppressions (
        id VARCHAR PRIMARY KEY, email_address VARCHAR, reason VARCHAR, mailbox_id VARCHAR,
        created_at TIMESTAMPTZ, {PROVENANCE});
    CREATE TABLE multimail_pending (
        id VARCHAR PRIMARY KEY, mailbox_id VARCHAR, direction VARCHAR, from_address VARCHAR,
        to_addresses VARCHAR[], subject VARCHAR, status VARCHAR, created_at TIMESTAMPTZ,
        {PROVENANCE});
    CREATE TABLE multimail_emails (
        id VARCHAR PRIMARY KEY,
        mailbox_id VARCHAR, direction VARCHAR,
        from_address VARCHAR, to_addresses VARCHAR[], cc_addresses VARCHAR[],
        subject VARCHAR, status VARCHAR,
        created_at TIMESTAMPTZ,              -- the API's received_at: when the message was created
        thread_id VARCHAR, body_markdown VARCHAR,
        has_attachments BOOLEAN, attachments JSON,
        delivered_at TIMESTAMPTZ, bounced_at TIMESTAMPTZ, bounce_type VARCHAR,
        approved_at TIMESTAMPTZ, approved_by VARCHAR,
        decision VARCHAR,                    -- approved | rejected | NULL (guide shape only)
        decision_note VARCHAR,
        dkim_verified BOOLEAN,               -- per-message flag (guide shape only)
        conversation_id VARCHAR,             -- Intercom conversation this email came from
        agent VARCHAR,                       -- tags.agent / metadata.agent when present
        tags JSON, metadata JSON,
        spam_score INTEGER, spam_verdict VARCHAR,
        source_shape VARCHAR NOT NULL,       -- v1 | guide
        is_final BOOLEAN NOT NULL,
        first_harvested_at TIMESTAMPTZ NOT NULL,
        {PROVENANCE});
    CREATE TABLE multimail_audit_log (
        id VARCHAR PRIMARY KEY, action VARCHAR, resource_type VARCHAR, resource_id VARCHAR,
        actor_key_id VARCHAR, metadata JSON, created_at TIMESTAMPTZ,
        chain_seq BIGINT NOT NULL,           -- order of first harvest (hash chain position)
        chain_hash VARCHAR NOT NULL,         -- sha256(previous chain_hash || raw_sha256)
        {PROVENANCE});
    CREATE TABLE intercom_conversations (
        id VARCHAR PRIMARY KEY,
        found BOOLEAN NOT NULL,              -- false: Intercom answered 404
        http_status INTEGER NOT NULL,
        state VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, closed_at TIMESTAMPTZ,
        contact_id VARCHAR, contact_email VARCHAR,
        admin_assignee_id VARCHAR, team_assignee_id VARCHAR,
        ai_agent_participated BOOLEAN, ai_resolution_state VARCHAR,
        resolved_by VARCHAR,                 -- ai_agent | teammate | NULL
        tags VARCHAR[], part_count INTEGER, parts_truncated BOOLEAN,
        region VARCHAR, app_id VARCHAR, inbox_url VARCHAR, intercom_version VARCHAR,
        fetched_at TIMESTAMPTZ NOT NULL,
        {PROVENANCE});
    """)


@migration("0002_sent_mail_archive")
def _sent_mail_archive(con: duckdb.DuckDBPyConnection) -> None:
    # Copies of sent messages (journal mailbox / .eml exports) and independent DKIM results.
    con.execute("""
    CREATE TABLE archive_messages (
        sha256 VARCHAR PRIMARY KEY,          -- of the raw message bytes
        source_path VARCHAR NOT NULL,        -- file (and mbox index / Maildir key) it came from
        message_id_header VARCHAR, multimail_id_header VARCHAR,
        email_id VARCHAR,                    -- matched email id; NULL: unmatched or ambiguous
        match_method VARCHAR NOT NULL,       -- header | heuristic | ambiguous | none
        match_candidates VARCHAR[],
        from_address VARCHAR, to_addresses VARCHAR[], subject VARCHAR, date_header TIMESTAMPTZ,
        identity_header VARCHAR,             -- X-MultiMail-Identity
        agent_header VARCHAR,                -- X-MultiMail-Agent
        agent_identity_header VARCHAR,       -- X-Agent-Identity
        body_sha256 VARCHAR,
        body_matches_approved BOOLEAN,       -- NULL when there is nothing to compare with
        body_diff_summary VARCHAR,
        size_bytes BIGINT NOT NULL,
        raw_compressed BLOB NOT NULL,        -- zlib-compressed raw bytes
        run_id VARCHAR NOT NULL, harvested_at TIMESTAMPTZ NOT NULL);
    CREATE TABLE archive_dkim_results (
        sha256 VARCHAR NOT NULL, signature_index INTEGER NOT NULL,
        domain VARCHAR, selector VARCHAR,
        result VARCHAR NOT NULL,             -- pass | fail | none | temperror | permerror
        reason VARCHAR,
        aligned_with_from BOOLEAN,
        key_record_id VARCHAR,               -- dkim_key_records.id used for the check
        verified_at TIMESTAMPTZ NOT NULL, run_id VARCHAR NOT NULL,
        PRIMARY KEY (sha256, signature_index));
    CREATE TABLE dkim_key_records (
        id VARCHAR PRIMARY KEY,              -- sha256(selector|domain|record_text)
        selector VARCHAR NOT NULL, domain VARCHAR NOT NULL, record_text VARCHAR,
        fetched_at TIMESTAMPTZ NOT NULL,
        resolver VARCHAR,                    -- resolver address, or 'keys-file:<path>'
        source VARCHAR NOT NULL);            -- dns | keys-file
    """)


@migration("0003_audit_walk_staging")
def _audit_walk_staging(con: duckdb.DuckDBPyConnection) -> None:
    # Scratch for the harvester's audit-log walk: entries land here page by page (so a large
    # first harvest does not hold them in memory) and move into multimail_audit_log, on the
    # hash chain, in one transaction at the end. Every harvest empties it first.
    con.execute("""
    CREATE TABLE _auditkit_audit_walk (
        id VARCHAR PRIMARY KEY,
        is_new BOOLEAN NOT NULL,             -- false: stored before (changed/removed checks)
        action VARCHAR, resource_type VARCHAR, resource_id VARCHAR, actor_key_id VARCHAR,
        metadata JSON, created_at TIMESTAMPTZ,
        raw JSON NOT NULL, raw_sha256 VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
        harvested_at TIMESTAMPTZ NOT NULL);
    """)


@migration("0004_population_sources")
def _population_sources(con: duckdb.DuckDBPyConnection) -> None:
    # MultiMail's own counts of the population, for PC-001 (population completeness): daily
    # usage per event type, and the webhook delivery history. `multimail_source_coverage`
    # says, per source, what a harvest could read: the range it asked for, or why the
    # endpoint was unavailable (403 without the scope, 404), so the control can say
    # not_applicable with that reason instead of reading an empty table as "zero".
    con.execute(f"""
    CREATE TABLE multimail_usage_daily (
        id VARCHAR PRIMARY KEY,              -- '<date>|<event_type>'
        date DATE NOT NULL, event_type VARCHAR NOT NULL, count BIGINT NOT NULL,
        {PROVENANCE});
    CREATE TABLE multimail_webhook_deliveries (
        id VARCHAR PRIMARY KEY, event_type VARCHAR, url VARCHAR, status VARCHAR,
        attempts INTEGER, response_status INTEGER,
        created_at TIMESTAMPTZ, last_attempt_at TIMESTAMPTZ, {PROVENANCE});
    CREATE TABLE multimail_source_coverage (
        id VARCHAR PRIMARY KEY,              -- the source: usage_daily | webhook_deliveries
        available BOOLEAN NOT NULL,
        http_status INTEGER,                 -- the refusal's status when unavailable
        reason VARCHAR,                      -- why unavailable (one line, no secrets)
        covered_from TIMESTAMPTZ,            -- usage: the range asked for [from, to)
        covered_to TIMESTAMPTZ,
        {PROVENANCE});
    """)


@migration("0005_accounts")
def _accounts(con: duckdb.DuckDBPyConnection) -> None:
    # Several MultiMail accounts in one store (store/accounts.py): an `account` column
    # leading each scoped table's key; existing rows become the 'default' account's.
    # Store.migrate runs this again after every later migration, for the tables it adds.
    ensure_account_columns(con)


@migration("0006_audit_walk_staging_unkeyed")
def _audit_walk_staging_unkeyed(con: duckdb.DuckDBPyConnection) -> None:
    # The staging table loses its primary key: emptying 3M staged entries took 80 s of ART
    # index deletes (a heap table: instant), and a key made each staged page an index
    # insert. A source that repeats an entry in one walk is de-duplicated where staged rows
    # are read (store/audit_chain.py). Staged rows are scratch, never evidence (every
    # harvest empties the table first, and until this version the chain was appended in one
    # transaction, so no run can have left it half-appended): the table is made anew, and
    # `ensure_account_columns` adds its account column as for every table.
    con.execute("DROP TABLE _auditkit_audit_walk")
    con.execute("""
    CREATE TABLE _auditkit_audit_walk (
        id VARCHAR NOT NULL,
        is_new BOOLEAN NOT NULL,             -- false: stored before (changed/removed checks)
        action VARCHAR, resource_type VARCHAR, resource_id VARCHAR, actor_key_id VARCHAR,
        metadata JSON, created_at TIMESTAMPTZ,
        raw JSON NOT NULL, raw_sha256 VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
        harvested_at TIMESTAMPTZ NOT NULL);
    """)


# Every table filled from a source (bookkeeping tables excluded): digests, pack snapshots
# and status counts all use this one list.
HARVESTED_TABLES = (
    "multimail_account",
    "multimail_mailboxes",
    "multimail_api_keys",
    "multimail_domains",
    "multimail_webhooks",
    "multimail_suppressions",
    "multimail_pending",
    "multimail_emails",
    "multimail_audit_log",
    "intercom_conversations",
    "multimail_usage_daily",
    "multimail_webhook_deliveries",
    "multimail_source_coverage",
)


def applied_migrations(con: duckdb.DuckDBPyConnection, *, read_only: bool) -> list[str]:
    """Names of the migrations recorded in the store (a writer creates the record table)."""
    if not read_only:
        con.execute(
            "CREATE TABLE IF NOT EXISTS _auditkit_migrations ("
            "name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        )
    try:
        rows = con.execute("SELECT name FROM _auditkit_migrations ORDER BY name").fetchall()
    except duckdb.CatalogException:
        return []
    return [r[0] for r in rows]


# -- accounts ---------------------------------------------------------------------------------

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


def database_name(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute("SELECT current_database()").fetchall()  # not fetchone: Store.count
    return str(rows[0][0])


def database_columns(
    con: duckdb.DuckDBPyConnection, database: str
) -> dict[str, list[tuple[str, ...]]]:
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
    columns = database_columns(con, database)
    missing = [
        table
        for table in account_scoped_tables()
        if table in columns and all(c[0] != ACCOUNT_COLUMN for c in columns[table])
    ]
    if not missing:
        return []
    # One catalogue query for every table: asked per table, it was a fifth of the time a
    # new store takes to create (~36 ms of ~200 ms).
    primary_keys: dict[str, list[str]] = {}
    for table, key_columns in con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = ? AND constraint_type = 'PRIMARY KEY'",
        [database],
    ).fetchall():
        primary_keys[table] = list(key_columns)
    rebuilt = []
    for table in missing:
        cols = columns[table]
        keys = primary_keys.get(table, [])
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
        old, new = f'"{database}".main."{table}"', f'"{database}".main."{table}__accounts"'
        con.execute(f"CREATE TABLE {new} ({', '.join(defs)})")
        # A new store's tables are all empty: asking is cheaper than an INSERT of nothing.
        if con.execute(f"SELECT EXISTS (SELECT 1 FROM {old})").fetchall()[0][0]:
            con.execute(
                f"INSERT INTO {new} ({ACCOUNT_COLUMN}, {names}) SELECT ?, {names} FROM {old}",
                [DEFAULT_ACCOUNT],
            )
        con.execute(f"DROP TABLE {old}")
        con.execute(f'ALTER TABLE {new} RENAME TO "{table}"')
        rebuilt.append(table)
    return rebuilt
