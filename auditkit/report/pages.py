"""The per-message evidence pages of a pack: flagged messages (capped) plus a seeded sample,
each with its body, audit entries, linked conversation, findings and time order."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from auditkit.report.messages import fetch_all
from auditkit.store import Store

# Bounds that keep the PDF's size and render time independent of the population size.
MAX_FLAGGED_MESSAGE_PAGES = 200
MAX_BODY_CHARS = 20_000


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    ts = ts.astimezone(UTC)
    return (
        ts.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{ts.microsecond:06d}" if ts.microsecond else "")
        + "Z"
    )


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
        f"{a} {iso(ta)} is after {b} {iso(tb)}"
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
        flagged AS (SELECT message_id AS flagged_id FROM r WHERE finding_ids IS NOT NULL
                    ORDER BY pos LIMIT $cap)
        SELECT r.*, f.flagged_id IS NOT NULL AS is_flagged,
               list_contains($positions, r.pos) AS is_sampled
        FROM r LEFT JOIN flagged f ON f.flagged_id = r.message_id
        WHERE f.flagged_id IS NOT NULL OR list_contains($positions, r.pos)
        ORDER BY f.flagged_id IS NULL, r.pos"""
    # Plain fetchall, not Arrow: pyarrow converts time-zoned timestamps to Python through
    # pandas, half a second of import for a one-message pack.
    picked = store.con.sql(picked_sql, params={"cap": flagged_cap, "positions": positions})
    names = picked.columns
    rows = [dict(zip(names, row, strict=True)) for row in picked.fetchall()]
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
                **{k: (iso(v) if isinstance(v, datetime) else v) for k, v in row.items()},
                "csv_row": row["pos"] + 2,  # header is row 1
                "body": body[:MAX_BODY_CHARS],
                "body_chars": len(body),
                "body_truncated": len(body) > MAX_BODY_CHARS,
                "thread_id": d.get("thread_id"),
                "source_shape": d.get("source_shape"),
                "harvested_at": iso(d.get("harvested_at")),
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
        "SELECT resource_id, id, action, actor_key_id, metadata, created_at, chain_seq "
        "FROM multimail_audit_log "
        "WHERE list_contains($ids, resource_id) ORDER BY resource_id, chain_seq, id",
        {"ids": ids},
    ).fetchall():
        audit.setdefault(r[0], []).append(
            {
                "id": r[1],
                "action": r[2],
                "actor_key_id": r[3],
                "metadata": r[4] or "",
                "created_at": iso(r[5]),
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
            "SELECT id, found, http_status, state, contact_email, contact_id, resolved_by, "
            "ai_agent_participated, "
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
                "created_at": iso(r[9]),
                "closed_at": iso(r[10]),
                "fetched_at": iso(r[11]),
                "raw_sha256": r[12],
                "intercom_version": r[13],
            }
    return {"emails": emails, "audit": audit, "conversations": conversations}
