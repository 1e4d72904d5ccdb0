"""What an export writes: which store tables, how each is partitioned, and the SQL that
reads a table's rows as they are exported.

Every table an auditor or a distributed engine needs to rerun the controls is exported:
the harvested tables, the sent-mail archive and its DKIM results and key records, and the
books a reviewer reads beside them (harvest runs, quarantined records, integrity events).
Findings are not stored (controls compute them from these tables), so there is no findings
table to export. Left out: `_auditkit_migrations`, `_auditkit_cursors` (where the next
harvest resumes) and `_auditkit_audit_walk` (a harvest's scratch, always empty between
runs): bookkeeping of this store, meaningless in another engine.

Each exported table is partitioned by `account` (identity) and by the month of its natural
time column (Iceberg's `month` transform: year and month, e.g. 2026-07, in UTC). A store
table without an `account` column exports the constant account name `default`, the name a
single-account store uses. Two columns are changed or added on the way out:

- JSON columns become strings (Iceberg has no JSON type; engines parse them with their own
  JSON functions), and `account` is appended when the store has none;
- `row_sha256`: SHA-256 of the row's other exported values (DuckDB's `to_json` of the row).
  A later export compares it with the store's rows to add only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

ACCOUNT = "account"
DEFAULT_ACCOUNT = "default"
ROW_DIGEST = "row_sha256"


@dataclass(frozen=True)
class ExportTable:
    """One store table as exported: `time_column` is the partition month's source, `key`
    the column (the primary key, or its first column) rows are matched and deleted by."""

    name: str
    time_column: str
    key: str
    why: str  # why this time column, for the README's table and --help

    def columns(self, con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
        """The store table's (column, type) pairs in table order: the table in the store's
        own database, not the TEMP view of the same name that scopes a Store to one account
        (an export holds every account, with its `account` column)."""
        return [
            (str(name), str(kind))
            for name, kind in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_catalog = current_database() AND table_schema = 'main' "
                "AND table_name = ? ORDER BY ordinal_position",
                [self.name],
            ).fetchall()
        ]

    def base_sql(self, con: duckdb.DuckDBPyConnection, source: str) -> str:
        """SELECT of the table's rows as exported, without the digest: JSON as text, and the
        constant `account` last when the store table has no such column. `source` is the
        table's qualified name (`Store.base`): every account's rows."""
        columns = self.columns(con)
        parts = [
            f"CAST({quote(name)} AS VARCHAR) AS {quote(name)}" if kind == "JSON" else quote(name)
            for name, kind in columns
        ]
        if ACCOUNT not in {name for name, _ in columns}:
            parts.append(f"'{DEFAULT_ACCOUNT}' AS {ACCOUNT}")
        return f"SELECT {', '.join(parts)} FROM {source}"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def with_digest(rows_sql: str) -> str:
    """`rows_sql`'s rows with `row_sha256` appended: the digest of every value in the row.
    to_json escapes strings and renders blobs, timestamps (UTC session) and lists
    unambiguously, so equal digests mean equal rows."""
    return (
        f"SELECT src.*, sha256(CAST(to_json(src) AS VARCHAR)) AS {ROW_DIGEST} FROM ({rows_sql}) src"
    )


EXPORT_TABLES = (
    ExportTable("multimail_account", "harvested_at", "id", "the account has no time of its own"),
    ExportTable("multimail_mailboxes", "created_at", "id", "when the mailbox was created"),
    ExportTable("multimail_api_keys", "created_at", "id", "when the key was created"),
    ExportTable("multimail_domains", "created_at", "id", "when the domain was added"),
    ExportTable("multimail_webhooks", "created_at", "id", "when the webhook was created"),
    ExportTable("multimail_suppressions", "created_at", "id", "when the address was suppressed"),
    ExportTable("multimail_pending", "created_at", "id", "when the message was created"),
    ExportTable("multimail_emails", "created_at", "id", "when the message was created"),
    ExportTable("multimail_audit_log", "created_at", "id", "when the entry was written"),
    ExportTable(
        "intercom_conversations",
        "created_at",
        "id",
        "when the conversation started (none for a 404: null partition)",
    ),
    ExportTable("multimail_usage_daily", "date", "id", "the day MultiMail counted (UTC)"),
    ExportTable(
        "multimail_webhook_deliveries", "created_at", "id", "when the delivery was created"
    ),
    ExportTable("multimail_source_coverage", "harvested_at", "id", "when the source was last read"),
    ExportTable(
        "archive_messages",
        "harvested_at",
        "sha256",
        "when the copy was read (the Date header is set by the sender, so not trusted)",
    ),
    ExportTable("archive_dkim_results", "verified_at", "sha256", "when the signature was verified"),
    ExportTable("dkim_key_records", "fetched_at", "id", "when the key record was fetched"),
    # What the harvest has read in full (PC-001 reads it: a mailbox never listed in full
    # makes its differences inconclusive), keyed (source, resource).
    ExportTable("_auditkit_cursors", "updated_at", "resource", "when the cursor last moved"),
    ExportTable("harvest_runs", "started_at", "run_id", "when the run started"),
    ExportTable("quarantine", "quarantined_at", "id", "when the record was quarantined"),
    ExportTable("integrity_events", "detected_at", "id", "when the change was detected"),
)
