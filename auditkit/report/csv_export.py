"""The pack's CSV files: fixed column lists, RFC 4180 output, formula neutralisation.

Every CSV is UTF-8, comma-separated, `\\r\\n` line ends, fields quoted only when they contain
a comma, quote or line break (the csv module's QUOTE_MINIMAL, quotes doubled), rows sorted,
timestamps ISO-8601 UTC with a trailing `Z`, lists joined with `"; "`, JSON as canonical
JSON (sorted keys, no whitespace). Text cells that a spreadsheet would read as a formula
(starting with `=`, `+`, `-`, `@`, tab or carriage return) get a leading `'`.

The large files (messages, decisions, audit log) are written by DuckDB itself, `COPY (query)
TO file`, with the neutralising, timestamp formatting and sorting done in the query's SQL:
no row passes through Python (a million-row ledger is written at DuckDB's speed, several
hundred thousand rows a second, instead of one Python string per row). `COPY_OPTIONS` make
DuckDB's writer give the csv module's QUOTE_MINIMAL bytes: quote a field only when it holds
a comma, quote, CR or LF, double the quotes, `\r\n` line ends, NULL and the empty string both
written as nothing. tests/report/test_csv_copy.py renders adversarial content and the sample
quarter through the earlier Python writer and through COPY and compares the bytes. The small
findings file goes through the csv module.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from auditkit.errors import ReportError
from auditkit.evidence_sql import ENTRY_ORDER_SQL
from auditkit.report.messages import bind
from auditkit.store import Store
from auditkit.vocabulary import Vocabulary

# messages.csv, one row per outbound message in scope, sorted by (created_at, message_id):
#   message_id, mailbox_id, from, to, cc, subject, status, created_at,
#   approved_by, approver_kind, approved_at, decision, decided_by, decided_at, decision_note,
#   delivered_at, bounced_at, bounce_type, oversight_mode_at_send, oversight_mode_source,
#   agent, sent_by_key_id, intercom_conversation_id, intercom_conversation_url,
#   intercom_resolved_by, dkim_status, dkim_source, raw_sha256, finding_ids
MESSAGE_FIELDS: tuple[str, ...] = (
    "message_id",
    "mailbox_id",
    "from",
    "to",
    "cc",
    "subject",
    "status",
    "created_at",
    "approved_by",
    "approver_kind",
    "approved_at",
    "decision",
    "decided_by",
    "decided_at",
    "decision_note",
    "delivered_at",
    "bounced_at",
    "bounce_type",
    "oversight_mode_at_send",
    "oversight_mode_source",
    "agent",
    "sent_by_key_id",
    "intercom_conversation_id",
    "intercom_conversation_url",
    "intercom_resolved_by",
    "dkim_status",
    "dkim_source",
    "raw_sha256",
    "finding_ids",
)
"""Columns of messages.csv, in order.

- message_id, mailbox_id: MultiMail ids. from, to, cc: addresses (lists joined with "; ").
- subject, status: as harvested (status is MultiMail's, e.g. pending_send_approval, rejected).
- created_at: the API's received_at, when the agent created the message.
- approved_by, approved_at: the approval fields of the read_email record.
- approver_kind: person (an email address), key (an API key id), session (an approval-page
  session) or unknown: who approved, from approved_by, else the approval entry's key.
- decision: approved | rejected | cancelled | pending | none (sent with no decision on record).
- decided_by, decided_at, decision_note: the latest approve/reject/cancel audit-log entry
  (reviewer, time) and the decision note or audit reason.
- delivered_at, bounced_at, bounce_type: delivery outcome.
- oversight_mode_at_send, oversight_mode_source: the mailbox's mode when the message was
  created, from the audit log's mode changes (audit_log) or the mailbox's current mode
  (current_mailbox) when no change is on record.
- agent, sent_by_key_id: the agent tag and the API key of the email's send audit entry.
- intercom_conversation_id, intercom_conversation_url, intercom_resolved_by: the linked
  conversation, its inbox link, and ai_agent | teammate | unresolved | not_found |
  not_verified (never fetched) | not_linked.
- dkim_status, dkim_source: pass | fail | unknown, from archive (independent verification of
  an archived copy), message (the record's dkim_verified flag), domain (the sending domain's
  current DKIM status) or none.
- raw_sha256: SHA-256 of the stored canonical JSON record.
- finding_ids: "; "-joined ids (control:target_type:target_id) of findings about the message.
"""

DECISION_FIELDS: tuple[str, ...] = (
    "audit_id",
    "chain_seq",
    "created_at",
    "action",
    "decision",
    "email_id",
    "reviewer",
    "reason",
    "actor_key_id",
    "email_mailbox_id",
    "email_from",
    "email_to",
    "email_subject",
    "email_status",
    "email_created_at",
    "email_approved_by",
    "email_approved_at",
    "email_sent_by_key_id",
    "raw_sha256",
)
"""Columns of decisions.csv: approve/reject/cancel audit entries joined to their emails,
sorted by (created_at, chain_seq, audit_id). Email columns are empty when the entry names an
email that is not in the store."""

FINDING_FIELDS: tuple[str, ...] = (
    "finding_id",
    "control_id",
    "control_title",
    "severity",
    "state",
    "target_type",
    "target_id",
    "reason",
    "evidence",
    "waiver_justification",
    "waiver_approver",
    "waiver_expires",
)
"""Columns of findings.csv, sorted by (control_id, target_type, target_id); evidence is the
full canonical JSON (the PDF caps it)."""

AUDIT_LOG_FIELDS: tuple[str, ...] = (
    "audit_id",
    "chain_seq",
    "created_at",
    "action",
    "resource_type",
    "resource_id",
    "actor_key_id",
    "metadata",
    "raw_sha256",
    "chain_hash",
    "run_id",
    "harvested_at",
)
"""Columns of audit_log.csv, sorted by chain_seq (harvest order, the hash-chain order)."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# DuckDB's CSV writer set to the csv module's excel dialect with QUOTE_MINIMAL. DuckDB quotes
# a field holding the delimiter, the quote, CR or LF; with COMMENT '' it no longer also
# quotes one holding '#'. It quotes a value equal to NULLSTR (so '' would come out as `""`):
# the query maps '' to NULL first, which the csv module writes as nothing too.
COPY_OPTIONS = (
    "FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"', "
    "NEW_LINE e'\\r\\n', NULLSTR '', COMMENT ''"
)


def neutralise(value: Any) -> Any:
    """Prefix text a spreadsheet would evaluate as a formula with `'`; other values pass."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _sql_iso(expr: str) -> str:
    """ISO-8601 UTC text for a TIMESTAMPTZ (the store session runs in UTC); microseconds only
    when present."""
    expr = f"({expr})"
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL "
        f"ELSE strftime(CAST({expr} AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S') || "
        f"CASE WHEN epoch_us({expr}) % 1000000 = 0 THEN '' "
        f"ELSE strftime(CAST({expr} AS TIMESTAMP), '.%f') END || 'Z' END"
    )


def _sql_safe(expr: str) -> str:
    """The neutralise() rule in SQL, so streamed columns never pass through Python per cell."""
    expr = f"({expr})"
    return (
        f"CASE WHEN left({expr}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
        f"THEN '''' || {expr} ELSE {expr} END"
    )


def _sql_list(expr: str) -> str:
    return f"array_to_string({expr}, '; ')"


def copy_csv_sql(select_sql: str, fields: Sequence[str], path: Path) -> str:
    """`COPY` of a query whose text columns are `fields` into the CSV file `path`, in the
    query's row order, the header first."""
    columns = ", ".join(f'nullif(q."{f}", \'\') AS "{f}"' for f in fields)
    target = str(path).replace("'", "''")
    return f"COPY (SELECT {columns} FROM ({select_sql}) q) TO '{target}' ({COPY_OPTIONS})"


def message_csv_sql(table: str) -> str:
    """Project the materialised message table onto MESSAGE_FIELDS as CSV-ready text."""
    ts = {"created_at", "approved_at", "decided_at", "delivered_at", "bounced_at"}
    source = {"from": "from_address", "to": "to_addresses", "cc": "cc_addresses"}
    cols = []
    for field in MESSAGE_FIELDS:
        col = f'm."{source.get(field, field)}"'
        if field in ts:
            expr = _sql_iso(col)
        elif field in ("to", "cc"):
            expr = _sql_safe(_sql_list(col))
        else:
            expr = _sql_safe(f"CAST({col} AS VARCHAR)")
        cols.append(f'{expr} AS "{field}"')
    return f"SELECT {', '.join(cols)} FROM {table} m ORDER BY m.pos"


def _open_csv(path: Path) -> tuple[io.TextIOWrapper, Any]:
    fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by caller)
    writer = csv.writer(fh, dialect="excel", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    return fh, writer


def write_query_csv(
    store: Store, path: Path, fields: Sequence[str], sql: str, params: Mapping[str, Any]
) -> int:
    """Write a query whose columns are exactly `fields` (text, in order) into a CSV file in
    the query's row order, by DuckDB's COPY; returns the number of data rows."""
    description = store.con.sql(
        f"SELECT * FROM ({sql}) LIMIT 0", params=bind(sql, params)
    ).description
    columns = [d[0] for d in description]
    if columns != list(fields):
        raise ReportError(f"CSV query columns {columns} do not match {list(fields)}")
    # Only text passes through as written: COPY would format any other type its own way.
    if untyped := [d[0] for d in description if str(d[1]) not in ("VARCHAR", "STRING")]:
        raise ReportError(f"CSV query columns {untyped} are not text")
    copy = copy_csv_sql(sql, fields, path)
    # Bound by the query's own parameters: the path is a literal, never a parameter.
    rows = store.con.execute(copy, bind(sql, params)).fetchall()  # not fetchone: Store.count
    return int(rows[0][0]) if rows else 0


def write_rows_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write small in-memory rows (findings) with neutralisation applied in Python."""
    fh, writer = _open_csv(path)
    n = 0
    with fh:
        writer.writerow(fields)
        for row in rows:
            writer.writerow([neutralise(row.get(f)) for f in fields])
            n += 1
    return n


def decisions_csv_sql(selected_sql: str, vocabulary: Vocabulary, *, period_pack: bool) -> str:
    """Period packs: every decision entry created in the period. Message/recipient packs:
    the decisions on the selected emails, and only their send entries are looked up (not
    every email's in the store: a one-message pack on a million-message store)."""
    s = _sql_safe
    i = _sql_iso
    approved, rejected, cancelled = (
        vocabulary.predicate(m, "a.") for m in ("approved", "rejected", "cancelled")
    )
    return f"""
    WITH sel AS ({selected_sql}),
    sends AS (SELECT resource_id AS email_id, arg_min(actor_key_id, {ENTRY_ORDER_SQL}) AS sent_by
              FROM multimail_audit_log WHERE {vocabulary.predicate("email_sent")}
              {"" if period_pack else "AND resource_id IN (SELECT id FROM sel)"}
              GROUP BY resource_id)
    SELECT {s("a.id")} AS audit_id, CAST(a.chain_seq AS VARCHAR) AS chain_seq,
           {i("a.created_at")} AS created_at,
           {s("a.action")} AS action,
           CASE WHEN {approved} THEN 'approved' WHEN {rejected} THEN 'rejected' ELSE 'cancelled' END
               AS decision,
           {s("a.resource_id")} AS email_id,
           {s("a.metadata->>'reviewer'")} AS reviewer, {s("a.metadata->>'reason'")} AS reason,
           {s("a.actor_key_id")} AS actor_key_id,
           {s("e.mailbox_id")} AS email_mailbox_id, {s("e.from_address")} AS email_from,
           {s(_sql_list("e.to_addresses"))} AS email_to, {s("e.subject")} AS email_subject,
           {s("e.status")} AS email_status, {i("e.created_at")} AS email_created_at,
           {s("e.approved_by")} AS email_approved_by, {i("e.approved_at")} AS email_approved_at,
           {s("sn.sent_by")} AS email_sent_by_key_id, a.raw_sha256 AS raw_sha256
    FROM multimail_audit_log a
    LEFT JOIN multimail_emails e ON e.id = a.resource_id
    LEFT JOIN sends sn ON sn.email_id = a.resource_id
    WHERE ({approved} OR {rejected} OR {cancelled})
      AND (a.resource_id IN (SELECT id FROM sel)
           OR ($use_period AND NOT $use_recipient AND a.created_at >= $start AND a.created_at < $end
               AND (e.id IS NULL OR e.direction = 'outbound')))
    ORDER BY a.created_at NULLS LAST, a.chain_seq, a.id
    """


def audit_log_csv_sql(selected_sql: str, vocabulary: Vocabulary, *, period_pack: bool) -> str:
    """Period packs: every entry created in the period. Message/recipient packs: entries about
    the selected emails plus mode changes of their mailboxes."""
    s = _sql_safe
    i = _sql_iso
    # Chosen here rather than by a CASE on parameters, so DuckDB plans only the filter used.
    where = (
        "a.created_at >= $start AND a.created_at < $end"
        if period_pack
        else f"""a.resource_id IN (SELECT id FROM sel)
                 OR ({vocabulary.predicate("mode_changed", "a.")}
                     AND a.resource_id IN (SELECT mailbox_id FROM sel))"""
    )
    return f"""
    WITH sel AS ({selected_sql})
    SELECT {s("a.id")} AS audit_id, CAST(a.chain_seq AS VARCHAR) AS chain_seq,
           {i("a.created_at")} AS created_at,
           {s("a.action")} AS action, {s("a.resource_type")} AS resource_type,
           {s("a.resource_id")} AS resource_id, {s("a.actor_key_id")} AS actor_key_id,
           {s("CAST(a.metadata AS VARCHAR)")} AS metadata, a.raw_sha256 AS raw_sha256,
           a.chain_hash AS chain_hash, {s("a.run_id")} AS run_id,
           {i("a.harvested_at")} AS harvested_at
    FROM multimail_audit_log a
    WHERE {where}
    ORDER BY a.chain_seq, a.id
    """
