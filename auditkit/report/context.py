"""The HTML/PDF template context of a pack: plain data only (no store handles) — provenance,
summary figures and charts' data, control and finding rows, and the evidence pages."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from auditkit import __version__
from auditkit.config import Settings
from auditkit.config_accounts import DEFAULT_ACCOUNT
from auditkit.controls.settings import vocabulary_for
from auditkit.findings import ControlResult
from auditkit.report.messages import Scope, fetch_all
from auditkit.report.pages import MAX_BODY_CHARS, MAX_FLAGGED_MESSAGE_PAGES, iso, message_pages
from auditkit.report.results import (
    MAX_EVIDENCE_CHARS,
    MAX_FINDINGS_SHOWN_PER_CONTROL,
    control_rows,
    finding_rows,
    shown_findings,
    warning_rows,
)
from auditkit.store import HARVESTED_TABLES, Store, books, canonical_json
from auditkit.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

# Tables whose (id, raw_sha256) pairs identify the harvested content a pack was built from.
SNAPSHOT_TABLES = HARVESTED_TABLES


def harvest_runs(store: Store) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT run_id, command, started_at, finished_at, outcome, counts FROM harvest_runs "
        "ORDER BY started_at, run_id"
    )
    return [
        {
            "run_id": r[0],
            "command": r[1],
            "started_at": iso(r[2]),
            "finished_at": iso(r[3]),
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
            {"table": table, "label": label, "records": int(n), "latest_harvest": iso(latest)}
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
        SELECT count(*) FILTER (lat < 0), median(lat) FILTER (lat >= 0), {", ".join(cases)}
        FROM l""",
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
            "detected_at": iso(r[4]),
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
    as_of = books.data_as_of(store, scope.period.end_before)
    return {
        "company": company_name(store, settings),
        "account": None if store.account == DEFAULT_ACCOUNT else store.account,
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
        "data_as_of": iso(as_of),
        "parameters": canonical_json(dict(parameters)),
        "sources": sources(store),
        "harvest_runs": harvest_runs(store),
        "counts": counts,
        "controls": control_rows(results),
        "findings": findings,
        "finding_blocks": shown_findings(findings),
        "findings_by_state": {
            s: sum(f["state"] == s for f in findings) for s in ("open", "waived", "review")
        },
        "waiver_warnings": warning_rows(results),
        "integrity_events": integrity_events(store),
        # write_pack fills it with report.population.page() for a period pack.
        "reconciliation": {"shown": False},
        "latency": approval_latency(store, table),
        "daily": daily_volume(store, table, scope),
        "messages": pages,
        "sampling": sampling,
        "limits": {
            "body_chars": MAX_BODY_CHARS,
            "evidence_chars": MAX_EVIDENCE_CHARS,
            "flagged_pages": flagged_cap,
            "findings_per_control": MAX_FINDINGS_SHOWN_PER_CONTROL,
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
