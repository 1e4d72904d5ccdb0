"""Read the store into plain data for an evidence pack: the message relation (SQL), summary
figures, the control results and the per-message evidence pages.

Everything here reads; nothing renders. The message relation is one SQL statement so that
`messages.csv` can stream it from DuckDB in Arrow batches, while the HTML/PDF context only
ever holds aggregates plus a bounded number of messages (flagged ones and a seeded sample).

Derived columns and where they come from:

- ``decision``: ``rejected``/``cancelled`` from the email status; else the guide-shape
  ``decision`` field; else ``approved`` when ``approved_by``/``approved_at`` are set; else the
  latest approve/reject/cancel audit entry for the email; else ``pending`` while the email
  waits (pending_scan, pending_send_approval, scheduled); else ``none`` (sent with no
  approval decision on record, e.g. a monitored or autonomous mailbox). The audit-log facts
  (latest decision, sending key) come from ``evidence_sql.email_audit_sql``, the pass
  the controls make.
- ``oversight_mode_at_send``/``oversight_mode_source``: ``evidence_sql.mode_at_send_sql``,
  the same reconstruction OVS-001 uses (``audit_log`` or ``current_mailbox``).
- ``dkim_status``/``dkim_source``: ``evidence_sql.dkim_status_sql``, the same ranking
  ID-001 uses: ``archive`` (independent verification of an archived copy) over ``message``
  (the record's flag) over ``domain`` (the sending domain's DKIM status or the MultiMail
  default domain); ``unknown``/``none`` otherwise. Controls and pack cannot disagree.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from auditkit import __version__
from auditkit.config import Settings
from auditkit.controls import ControlResults
from auditkit.controls.settings import vocabulary_for
from auditkit.evidence_sql import (  # the derivations controls and pack share
    addressed_to_sql,
    approver_kind_sql,
    dkim_status_sql,
    email_audit_sql,
    from_email_sql,
    located_sql,
    mode_at_send_sql,
)
from auditkit.findings import ControlResult, Finding, Period
from auditkit.multimail_terms import WAITING_STATUSES
from auditkit.store import HARVESTED_TABLES, Store, canonical_json
from auditkit.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

# Tables whose (id, raw_sha256) pairs identify the harvested content a pack was built from.
SNAPSHOT_TABLES = HARVESTED_TABLES

# What the shared DKIM ranking and mode reconstruction need of each selected message.
SELECTED_COLUMNS = ", ".join(
    f"e.{c}"
    for c in (
        "id",
        "mailbox_id",
        "direction",
        "from_address",
        "to_addresses",
        "cc_addresses",
        "subject",
        "status",
        "created_at",
        "approved_by",
        "approved_at",
        "decision",
        "decision_note",
        "delivered_at",
        "bounced_at",
        "bounce_type",
        "agent",
        "conversation_id",
        "dkim_verified",
        "raw_sha256",
    )
)
SELECTED_KEYS_SQL = (
    "SELECT id, mailbox_id, created_at, dkim_verified, "
    f"{from_email_sql('from_address')} AS from_email FROM sel"
)

INTERCOM_APP_HOSTS = {"eu": "app.eu.intercom.com", "au": "app.au.intercom.com"}
DEFAULT_INTERCOM_APP_HOST = "app.intercom.com"

# Bounds that keep the PDF's size and render time independent of the population size.
MAX_FLAGGED_MESSAGE_PAGES = 200
MAX_BODY_CHARS = 20_000
MAX_EVIDENCE_CHARS = 300


def finding_id(finding: Finding) -> str:
    """Stable across runs and packs: the control and the target it is about."""
    return f"{finding.control_id}:{finding.target_type}:{finding.target_id}"


@dataclass(frozen=True)
class Scope:
    """Which outbound messages a pack covers: a period, explicit ids, or one recipient."""

    period: Period
    message_ids: tuple[str, ...] | None = None
    recipient: str | None = None

    @property
    def kind(self) -> str:
        if self.message_ids is not None:
            return "messages"
        return "recipient" if self.recipient is not None else "period"

    def describe(self) -> str:
        if self.kind == "messages":
            ids = self.message_ids or ()
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            return f"{len(ids)} selected outbound message(s): {shown}"
        if self.kind == "recipient":
            return (
                f"outbound messages to or copied to {self.recipient} created in {self.period.label}"
            )
        return f"every outbound message created in {self.period.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message_ids": list(self.message_ids) if self.message_ids is not None else None,
            "recipient": self.recipient,
        }


def scope_params(scope: Scope) -> dict[str, Any]:
    return {
        "use_period": scope.kind != "messages",
        "start": scope.period.start_at,
        "end": scope.period.end_before,
        "use_ids": scope.message_ids is not None,
        "ids": list(scope.message_ids or ()),
        "use_recipient": scope.recipient is not None,
        "recipient": (scope.recipient or "").strip().lower(),
    }


def selected_sql(scope: Scope) -> str:
    """The selected outbound emails; only the filters the scope uses, so DuckDB never
    evaluates a recipient lambda over a million rows it does not need. Recipients match
    bare addresses or "Name <address>"."""
    where = ["e.direction = 'outbound'"]
    if scope.kind != "messages":
        where.append("e.created_at >= $start AND e.created_at < $end")
    if scope.message_ids is not None:
        where.append("list_contains($ids, e.id)")
    if scope.recipient is not None:
        where.append(addressed_to_sql("e.to_addresses", "e.cc_addresses", "$recipient"))
    # Only the columns the pack derives from: `sel` is referenced several times, so DuckDB
    # materialises it, and `e.*` would drag every body and raw record of the quarter along.
    return f"SELECT {SELECTED_COLUMNS} FROM multimail_emails e WHERE " + " AND ".join(where)


def message_relation_sql(scope: Scope, findings_view: str | None, vocabulary: Vocabulary) -> str:
    """Every selected message with its derived columns, one row each (unordered: MessageTable
    numbers them by (created_at, message_id)). `findings_view` is a registered (message_id, finding_ids) table."""
    findings_join = f"LEFT JOIN {findings_view} fv ON fv.message_id = s.id" if findings_view else ""
    finding_col = "fv.finding_ids" if findings_view else "CAST(NULL AS VARCHAR)"
    return f"""
    WITH sel AS ({selected_sql(scope)}),
    email_audit AS ({email_audit_sql(vocabulary, "SELECT id FROM sel", latest_decision=True)}),
    audit_decisions AS (
        SELECT ea.email_id, ea.latest_decision AS audit_decision, ea.sender_key AS sent_by_key_id,
               ea.approver_key, ea.approval_entry_id,
               coalesce(l.metadata->>'reviewer', l.actor_key_id) AS decided_by,
               l.created_at AS decided_at, l.metadata->>'reason' AS audit_reason
        FROM email_audit ea
        LEFT JOIN (SELECT id, actor_key_id, created_at, metadata FROM multimail_audit_log
                   WHERE id IN (SELECT latest_decision_entry_id FROM email_audit)) l
               ON l.id = ea.latest_decision_entry_id),
    -- The mode in force uses the same mailbox the controls use (From-address fallback).
    located AS ({located_sql("(" + SELECTED_KEYS_SQL + ")")}),
    mode_at AS ({mode_at_send_sql("SELECT id, mailbox_id, created_at FROM located", vocabulary)}),
    dkim AS ({dkim_status_sql(SELECTED_KEYS_SQL)})
    SELECT
        s.id AS message_id, s.mailbox_id, mb.address AS mailbox_address,
        s.from_address, s.to_addresses, s.cc_addresses, s.subject, s.status,
        s.created_at, s.approved_by,
        {
        approver_kind_sql(
            "lower(trim(coalesce(s.approved_by, ad.approver_key)))",
            "ad.approver_key",
            "ad.approval_entry_id",
        )
    } AS approver_kind,
        s.approved_at,
        CASE
            WHEN s.status = 'rejected' THEN 'rejected'
            WHEN s.status = 'cancelled' THEN 'cancelled'
            WHEN s.decision IN ('approved', 'rejected') THEN s.decision
            WHEN s.approved_by IS NOT NULL OR s.approved_at IS NOT NULL THEN 'approved'
            WHEN ad.audit_decision IS NOT NULL THEN ad.audit_decision
            WHEN s.status IN {WAITING_STATUSES!r} THEN 'pending'
            ELSE 'none'
        END AS decision,
        ad.decided_by, ad.decided_at,
        coalesce(s.decision_note, ad.audit_reason) AS decision_note,
        s.delivered_at, s.bounced_at, s.bounce_type,
        ma.mode AS oversight_mode_at_send, ma.source AS oversight_mode_source,
        s.agent, ad.sent_by_key_id,
        s.conversation_id AS intercom_conversation_id,
        CASE
            WHEN s.conversation_id IS NULL THEN NULL
            WHEN c.inbox_url LIKE 'https://%' THEN c.inbox_url
            WHEN coalesce(c.app_id, $app_id) IS NOT NULL THEN
                'https://' || CASE lower(c.region) WHEN 'eu' THEN '{INTERCOM_APP_HOSTS["eu"]}'
                                                  WHEN 'au' THEN '{INTERCOM_APP_HOSTS["au"]}'
                                                  ELSE '{DEFAULT_INTERCOM_APP_HOST}' END
                || '/a/inbox/' || coalesce(c.app_id, $app_id) || '/inbox/conversation/' || s.conversation_id
        END AS intercom_conversation_url,
        CASE
            WHEN s.conversation_id IS NULL THEN 'not_linked'
            WHEN c.id IS NULL THEN 'not_verified'
            WHEN NOT c.found THEN 'not_found'
            ELSE coalesce(c.resolved_by, 'unresolved')
        END AS intercom_resolved_by,
        dk.status AS dkim_status, dk.source_kind AS dkim_source,
        s.raw_sha256,
        {finding_col} AS finding_ids
    FROM sel s
    LEFT JOIN multimail_mailboxes mb ON mb.id = s.mailbox_id
    LEFT JOIN audit_decisions ad ON ad.email_id = s.id
    LEFT JOIN mode_at ma ON ma.email_id = s.id
    LEFT JOIN intercom_conversations c ON c.id = s.conversation_id
    LEFT JOIN dkim dk ON dk.id = s.id
    {findings_join}
    """


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def bind(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `params` that `sql` names: DuckDB rejects unused named parameters."""
    used = set(_PARAM.findall(sql))
    return {k: v for k, v in params.items() if k in used}


def fetch_all(store: Store, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run and drain a query (DuckDB refuses new work while a result is half-read)."""
    return store.con.execute(sql, bind(sql, params)).fetchall()


def message_params(scope: Scope, settings: Settings) -> dict[str, Any]:
    return {**scope_params(scope), "app_id": settings.intercom_app_id}


def selected_message_ids(store: Store, settings: Settings, scope: Scope) -> list[str]:
    """Ids of the outbound messages a pack of `scope` covers."""
    return [
        r[0]
        for r in fetch_all(
            store, f"SELECT id FROM ({selected_sql(scope)})", message_params(scope, settings)
        )
    ]


def recipient_message_ids(
    store: Store, settings: Settings, period: Period, recipient: str
) -> list[str]:
    """The outbound messages of `period` to (or copied to) `recipient`, as a recipient pack selects them."""
    return selected_message_ids(store, settings, Scope(period=period, recipient=recipient))


MESSAGES_TABLE = "_auditkit_report_messages"
FINDINGS_VIEW = "_auditkit_report_findings"


def findings_table(findings: Sequence[Finding]) -> pa.Table:
    """(message_id, finding_ids) for every message with at least one finding."""
    by_message: dict[str, list[str]] = {}
    for f in findings:
        if f.message_id is not None:
            by_message.setdefault(f.message_id, []).append(finding_id(f))
    ids = sorted(by_message)
    return pa.table(
        {
            "message_id": pa.array(ids, pa.string()),
            "finding_ids": pa.array(
                ["; ".join(sorted(set(by_message[i]))) for i in ids], pa.string()
            ),
        }
    )


class MessageTable:
    """Materialise the message relation once, as a temp table with a 0-based `pos` column
    (messages.csv order), for the duration of a `with` block.

    Every later read (CSV stream, summary figures, charts, evidence pages) scans this table
    instead of re-running the joins. Temp objects work on a read-only store; the findings
    are joined from a registered Arrow table.
    """

    def __init__(
        self,
        store: Store,
        scope: Scope,
        settings: Settings,
        findings: Sequence[Finding],
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.store = store
        self.scope = scope
        self.vocabulary = vocabulary or vocabulary_for(store.con, settings)
        self.params = message_params(scope, settings)
        self.findings = findings_table(findings)

    def __enter__(self) -> str:
        self.store.con.register(FINDINGS_VIEW, self.findings)
        try:
            # Built in steps because DuckDB ran out of memory doing the joins and the
            # ordering of a million wide rows in one statement; each step alone spills.
            con, table = self.store.con, MESSAGES_TABLE
            sql = (
                f"CREATE OR REPLACE TEMP TABLE {table}_unsorted AS "
                f"SELECT * FROM ({message_relation_sql(self.scope, FINDINGS_VIEW, self.vocabulary)})"
            )
            con.execute(sql, bind(sql, self.params))
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table}_pos AS SELECT message_id, "
                f"row_number() OVER (ORDER BY created_at NULLS LAST, message_id) - 1 AS pos "
                f"FROM {table}_unsorted"
            )
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT p.pos, u.* FROM {table}_unsorted u "
                f"JOIN {table}_pos p ON p.message_id = u.message_id ORDER BY p.pos"
            )
            con.execute(f"DROP TABLE {table}_unsorted")
            con.execute(f"DROP TABLE {table}_pos")
        except BaseException:
            self.store.con.unregister(FINDINGS_VIEW)
            raise
        return MESSAGES_TABLE

    def __exit__(self, *exc: object) -> None:
        for suffix in ("", "_unsorted", "_pos"):
            self.store.con.execute(f"DROP TABLE IF EXISTS {MESSAGES_TABLE}{suffix}")
        self.store.con.unregister(FINDINGS_VIEW)


# -- context for the HTML/PDF ----------------------------------------------------------------


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    ts = ts.astimezone(UTC)
    return (
        ts.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{ts.microsecond:06d}" if ts.microsecond else "")
        + "Z"
    )


def data_as_of(store: Store, period: Period) -> datetime:
    """The latest harvest the store records; the period end when it has none. Used instead
    of the wall clock wherever a pack needs a time, so reruns give identical bytes."""
    row = store.query(
        "SELECT max(coalesce(finished_at, started_at)) FROM harvest_runs WHERE outcome <> 'running'"
    )[0][0]
    if row is None:
        row = store.query("SELECT max(harvested_at) FROM multimail_emails")[0][0]
    return (row or period.end_before).astimezone(UTC)


def harvest_runs(store: Store) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT run_id, command, started_at, finished_at, outcome, counts FROM harvest_runs "
        "ORDER BY started_at, run_id"
    )
    return [
        {
            "run_id": r[0],
            "command": r[1],
            "started_at": _iso(r[2]),
            "finished_at": _iso(r[3]),
            "outcome": r[4],
            "counts": r[5] or "",
        }
        for r in rows
    ]


def sources(store: Store) -> list[dict[str, Any]]:
    """What was collected from where, with record counts and the latest harvest time."""
    out = []
    for table, label in (
        ("multimail_account", "MultiMail account"),
        ("multimail_mailboxes", "MultiMail mailboxes"),
        ("multimail_api_keys", "MultiMail API keys"),
        ("multimail_domains", "MultiMail domains"),
        ("multimail_suppressions", "MultiMail suppression list"),
        ("multimail_emails", "MultiMail emails (read_email detail)"),
        ("multimail_audit_log", "MultiMail audit log"),
        ("intercom_conversations", "Intercom conversations"),
    ):
        n, latest = store.query(f"SELECT count(*), max(harvested_at) FROM {table}")[0]
        out.append(
            {"table": table, "label": label, "records": int(n), "latest_harvest": _iso(latest)}
        )
    return out


def company_name(store: Store, settings: Settings) -> str:
    if settings.company_name:
        return settings.company_name
    rows = store.query(
        "SELECT name FROM multimail_account WHERE name IS NOT NULL ORDER BY id LIMIT 1"
    )
    return rows[0][0] if rows else "(account name not harvested)"


def summary_counts(store: Store, table: str) -> dict[str, int]:
    row = fetch_all(
        store,
        f"""
        SELECT count(*),
               count(*) FILTER (decision = 'approved'), count(*) FILTER (decision = 'rejected'),
               count(*) FILTER (decision = 'cancelled'), count(*) FILTER (decision = 'pending'),
               count(*) FILTER (decision = 'none'),
               count(*) FILTER (delivered_at IS NOT NULL), count(*) FILTER (bounced_at IS NOT NULL),
               count(*) FILTER (dkim_status = 'pass'), count(*) FILTER (dkim_status = 'fail'),
               count(*) FILTER (dkim_status = 'unknown'),
               count(*) FILTER (intercom_conversation_id IS NOT NULL),
               count(*) FILTER (finding_ids IS NOT NULL)
        FROM {table}""",
        {},
    )[0]
    keys = (
        "messages",
        "approved",
        "rejected",
        "cancelled",
        "pending",
        "no_decision",
        "delivered",
        "bounced",
        "dkim_pass",
        "dkim_fail",
        "dkim_unknown",
        "intercom_linked",
        "flagged",
    )
    return {k: int(v) for k, v in zip(keys, row or (0,) * len(keys), strict=True)}


def daily_volume(store: Store, table: str, scope: Scope) -> list[dict[str, Any]]:
    rows = fetch_all(
        store,
        f"""
        SELECT CAST(created_at AS DATE) AS day,
               count(*) FILTER (delivered_at IS NOT NULL OR bounced_at IS NOT NULL),
               count(*) FILTER (decision = 'approved'), count(*) FILTER (decision = 'rejected')
        FROM {table} WHERE created_at IS NOT NULL GROUP BY day ORDER BY day""",
        {},
    )
    by_day = {
        r[0]: {"day": r[0], "sent": int(r[1]), "approved": int(r[2]), "rejected": int(r[3])}
        for r in rows
    }
    if not by_day:
        return []
    # Every day of the span, quiet days as zeros, so the chart's x axis is honest.
    first, last = min(by_day), max(by_day)
    if scope.kind != "messages":
        first, last = min(first, scope.period.start), max(last, scope.period.end)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [by_day.get(d, {"day": d, "sent": 0, "approved": 0, "rejected": 0}) for d in days]


LATENCY_BUCKETS = (
    ("< 1 min", 60),
    ("1-5 min", 300),
    ("5-15 min", 900),
    ("15-60 min", 3600),
    ("1-4 h", 4 * 3600),
    ("4-24 h", 24 * 3600),
    ("1-3 d", 3 * 86400),
    ("> 3 d", None),
)


def approval_latency(store: Store, table: str) -> dict[str, Any]:
    """Seconds from creation to approval for approved messages, bucketed; negative latencies
    (approval recorded before creation) are counted separately because they are findings."""
    cases = []
    lower = 0
    for label, upper in LATENCY_BUCKETS:
        cond = f"lat >= {lower}" + (f" AND lat < {upper}" if upper is not None else "")
        cases.append(f'count(*) FILTER ({cond}) AS "{label}"')
        lower = upper or lower
    row = fetch_all(
        store,
        f"""
        WITH l AS (SELECT epoch(approved_at) - epoch(created_at) AS lat FROM {table}
                   WHERE approved_at IS NOT NULL AND created_at IS NOT NULL)
        SELECT count(*) FILTER (lat < 0), median(lat) FILTER (lat >= 0), {", ".join(cases)} FROM l""",
        {},
    )[0]
    assert row is not None
    return {
        "negative": int(row[0]),
        "median_seconds": None if row[1] is None else float(row[1]),
        "buckets": [
            {"label": label, "count": int(n)}
            for (label, _), n in zip(LATENCY_BUCKETS, row[2:], strict=True)
        ],
    }


def _short_json(value: Any, limit: int) -> tuple[str, bool]:
    text = canonical_json(value)
    return (text, False) if len(text) <= limit else (text[:limit], True)


def control_rows(results: Sequence[ControlResult]) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(results, key=lambda r: r.id):
        rows.append(
            {
                "id": r.id,
                "title": r.title,
                "severity": r.severity,
                "status": r.status,
                "checked": r.checked,
                "detail": r.detail,
                "rationale": r.rationale,
                "reference": r.reference,
                "open": sum(f.state == "open" for f in r.findings),
                "waived": sum(f.state == "waived" for f in r.findings),
                "review": sum(f.state == "review" for f in r.findings),
            }
        )
    return rows


def finding_rows(
    results: Sequence[ControlResult], evidence_limit: int = MAX_EVIDENCE_CHARS
) -> list[dict[str, Any]]:
    """All findings, sorted (control, target type, target id), evidence capped for the PDF."""
    rows = []
    for r in results:
        for f in r.findings:
            evidence, cut = _short_json(f.evidence, evidence_limit)
            waiver = dict(f.waiver) if f.waiver else None
            rows.append(
                {
                    "id": finding_id(f),
                    "control_id": f.control_id,
                    "control_title": r.title,
                    "severity": r.severity,
                    "state": f.state,
                    "target_type": f.target_type,
                    "target_id": f.target_id,
                    "message_id": f.message_id,
                    "reason": f.reason,
                    "evidence": evidence,
                    "evidence_truncated": cut,
                    "waiver_justification": str(waiver.get("justification", "")) if waiver else "",
                    "waiver_approver": str(waiver.get("approver", "")) if waiver else "",
                    "waiver_expires": str(waiver.get("expires", "")) if waiver else "",
                }
            )
    rows.sort(key=lambda f: (f["control_id"], f["target_type"], f["target_id"]))
    return rows


def scoped_results(
    results: Sequence[ControlResult], scope: Scope, message_ids: set[str] | None
) -> list[ControlResult]:
    """For a message or recipient pack keep only findings about the selected messages (the
    run's waiver warnings come along: `run_controls` already limited them to its scope)."""
    if scope.kind == "period" or message_ids is None:
        kept = list(results)
    else:
        kept = [
            replace(r, findings=tuple(f for f in r.findings if f.message_id in message_ids))
            for r in results
        ]
    return ControlResults(kept, getattr(results, "warnings", ()))


def warning_rows(results: Sequence[ControlResult]) -> list[dict[str, str]]:
    """The run's waiver warnings (expired, or matching no finding) as plain dicts, in the
    run's order, for the report's findings section and the manifest. Results that are not
    `run_controls`' own (a plain list) have none."""
    return [w.to_dict() for w in getattr(results, "warnings", ())]


def sample_positions(population: int, sample_size: int, seed: int) -> list[int]:
    """0-based row positions in messages.csv order; reproducible with Python's random module."""
    if population <= 0 or sample_size <= 0:
        return []
    return sorted(random.Random(seed).sample(range(population), min(sample_size, population)))


def _time_order(
    created: datetime | None,
    approved: datetime | None,
    delivered: datetime | None,
    bounced: datetime | None,
) -> dict[str, Any]:
    steps = [("created", created), ("approved", approved), ("delivered", delivered or bounced)]
    present = [(n, t) for n, t in steps if t is not None]
    problems = [
        f"{a} {_iso(ta)} is after {b} {_iso(tb)}"
        for (a, ta), (b, tb) in zip(present, present[1:], strict=False)
        if ta > tb
    ]
    return {
        "ok": not problems,
        "problems": problems,
        "checked": " ≤ ".join(n for n, _ in present) or "no timestamps",
    }


def message_pages(
    store: Store,
    table: str,
    flagged_cap: int,
    sample_size: int,
    seed: int,
    findings_by_message: Mapping[str, list[dict[str, Any]]],
    population: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Evidence pages for flagged messages (up to `flagged_cap`) plus the seeded sample."""
    positions = sample_positions(population, sample_size, seed)
    flagged_total = fetch_all(
        store, f"SELECT count(*) FROM {table} WHERE finding_ids IS NOT NULL", {}
    )[0][0]
    picked_sql = f"""
        WITH r AS (SELECT * FROM {table}),
        flagged AS (SELECT message_id AS flagged_id FROM r WHERE finding_ids IS NOT NULL ORDER BY pos LIMIT $cap)
        SELECT r.*, f.flagged_id IS NOT NULL AS is_flagged, list_contains($positions, r.pos) AS is_sampled
        FROM r LEFT JOIN flagged f ON f.flagged_id = r.message_id
        WHERE f.flagged_id IS NOT NULL OR list_contains($positions, r.pos)
        ORDER BY f.flagged_id IS NULL, r.pos"""
    picked = store.con.sql(
        picked_sql, params={"cap": flagged_cap, "positions": positions}
    ).to_arrow_table()
    rows = picked.to_pylist()
    ids = [r["message_id"] for r in rows]
    details = _message_details(store, ids)
    pages = []
    for row in rows:
        mid = row["message_id"]
        d = details["emails"].get(mid, {})
        body = d.get("body_markdown") or ""
        conv = details["conversations"].get(row["intercom_conversation_id"] or "")
        pages.append(
            {
                **{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in row.items()},
                "csv_row": row["pos"] + 2,  # header is row 1
                "body": body[:MAX_BODY_CHARS],
                "body_chars": len(body),
                "body_truncated": len(body) > MAX_BODY_CHARS,
                "thread_id": d.get("thread_id"),
                "source_shape": d.get("source_shape"),
                "harvested_at": _iso(d.get("harvested_at")),
                "audit": details["audit"].get(mid, []),
                "conversation": conv,
                "findings": findings_by_message.get(mid, []),
                "time_order": _time_order(
                    row["created_at"], row["approved_at"], row["delivered_at"], row["bounced_at"]
                ),
            }
        )
    sampling = {
        "seed": seed,
        "requested": sample_size,
        "population": population,
        "rows": [p + 2 for p in positions],
        "flagged_total": int(flagged_total),
        "flagged_shown": sum(1 for r in rows if r["is_flagged"]),
        "flagged_cap": flagged_cap,
    }
    return pages, sampling


def _message_details(store: Store, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {"emails": {}, "audit": {}, "conversations": {}}
    emails = {
        r[0]: {"body_markdown": r[1], "thread_id": r[2], "source_shape": r[3], "harvested_at": r[4]}
        for r in store.con.execute(
            "SELECT id, body_markdown, thread_id, source_shape, harvested_at FROM multimail_emails "
            "WHERE list_contains($ids, id)",
            {"ids": ids},
        ).fetchall()
    }
    audit: dict[str, list[dict[str, Any]]] = {}
    for r in store.con.execute(
        "SELECT resource_id, id, action, actor_key_id, metadata, created_at, chain_seq FROM multimail_audit_log "
        "WHERE list_contains($ids, resource_id) ORDER BY resource_id, chain_seq, id",
        {"ids": ids},
    ).fetchall():
        audit.setdefault(r[0], []).append(
            {
                "id": r[1],
                "action": r[2],
                "actor_key_id": r[3],
                "metadata": r[4] or "",
                "created_at": _iso(r[5]),
            }
        )
    conv_ids = [
        c
        for (c,) in store.con.execute(
            "SELECT DISTINCT conversation_id FROM multimail_emails WHERE list_contains($ids, id) "
            "AND conversation_id IS NOT NULL",
            {"ids": ids},
        ).fetchall()
    ]
    conversations = {}
    if conv_ids:
        for r in store.con.execute(
            "SELECT id, found, http_status, state, contact_email, contact_id, resolved_by, ai_agent_participated, "
            "admin_assignee_id, created_at, closed_at, fetched_at, raw_sha256, intercom_version "
            "FROM intercom_conversations WHERE list_contains($ids, id)",
            {"ids": conv_ids},
        ).fetchall():
            conversations[r[0]] = {
                "id": r[0],
                "found": r[1],
                "http_status": r[2],
                "state": r[3],
                "customer": r[4] or r[5],
                "resolved_by": r[6],
                "ai_agent_participated": r[7],
                "admin_assignee_id": r[8],
                "created_at": _iso(r[9]),
                "closed_at": _iso(r[10]),
                "fetched_at": _iso(r[11]),
                "raw_sha256": r[12],
                "intercom_version": r[13],
            }
    return {"emails": emails, "audit": audit, "conversations": conversations}


def integrity_events(store: Store) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT id, record_type, record_id, change, detected_at, stored_sha256, source_sha256 "
        "FROM integrity_events ORDER BY detected_at, id"
    )
    return [
        {
            "id": r[0],
            "record_type": r[1],
            "record_id": r[2],
            "change": r[3],
            "detected_at": _iso(r[4]),
            "stored_sha256": r[5],
            "source_sha256": r[6],
        }
        for r in rows
    ]


def tool_version() -> str:
    return __version__


def build_context(
    store: Store,
    settings: Settings,
    scope: Scope,
    results: Sequence[ControlResult],
    table: str,
    *,
    sample_size: int,
    seed: int,
    flagged_cap: int = MAX_FLAGGED_MESSAGE_PAGES,
    snapshot_digest: str,
    catalogue_version: str,
    parameters: Mapping[str, Any],
    vocabulary: Vocabulary | None = None,
) -> dict[str, Any]:
    """The whole template context: plain dicts, lists and strings (no store handles)."""
    vocabulary = vocabulary or vocabulary_for(store.con, settings)
    counts = summary_counts(store, table)
    findings = finding_rows(results)
    by_message: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        if f["message_id"] is not None:
            by_message.setdefault(f["message_id"], []).append(f)
    pages, sampling = message_pages(
        store, table, flagged_cap, sample_size, seed, by_message, counts["messages"]
    )
    as_of = data_as_of(store, scope.period)
    return {
        "company": company_name(store, settings),
        "period": {
            "label": scope.period.label,
            "start": scope.period.start.isoformat(),
            "end": scope.period.end.isoformat(),
        },
        "scope": scope.describe(),
        "scope_kind": scope.kind,
        "tool_version": tool_version(),
        "catalogue_version": catalogue_version,
        "snapshot_digest": snapshot_digest,
        "data_as_of": _iso(as_of),
        "parameters": canonical_json(dict(parameters)),
        "sources": sources(store),
        "harvest_runs": harvest_runs(store),
        "counts": counts,
        "controls": control_rows(results),
        "findings": findings,
        "findings_by_state": {
            s: sum(f["state"] == s for f in findings) for s in ("open", "waived", "review")
        },
        "waiver_warnings": warning_rows(results),
        "integrity_events": integrity_events(store),
        "latency": approval_latency(store, table),
        "daily": daily_volume(store, table, scope),
        "messages": pages,
        "sampling": sampling,
        "limits": {
            "body_chars": MAX_BODY_CHARS,
            "evidence_chars": MAX_EVIDENCE_CHARS,
            "flagged_pages": flagged_cap,
        },
        "vocabulary": [vocabulary[m].to_dict() for m in VOCABULARY_SHOWN],
    }


# The meanings the pack's derivations and the controls rely on, in the methodology's order.
VOCABULARY_SHOWN = (
    "email_sent",
    "approved",
    "rejected",
    "cancelled",
    "mode_changed",
    "key_created",
    "key_updated",
    "key_revoked",
)
