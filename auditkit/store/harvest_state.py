"""What the harvester asks the store before it fetches: which mail is stored and final,
what is stored of a batch's ids, and which Intercom conversations still need reading."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from auditkit.store import Store

# Which Intercom workspace the conversation lives in: tag (v1 shape) or metadata (guide shape);
# absent means the default workspace. Read from the stored JSON, so the schema stays as it is.
WORKSPACE_SQL = (
    "nullif(lower(trim(coalesce(json_extract_string(e.tags, '$.intercom_workspace'), "
    "json_extract_string(e.metadata, '$.intercom_workspace'), ''))), '')"
)


@dataclass(frozen=True)
class StoredEmail:
    is_final: bool
    created_at: datetime | None
    raw_sha256: str
    first_harvested_at: datetime


def stored_emails(
    con: duckdb.DuckDBPyConnection, mailbox_id: str, email_ids: Sequence[str]
) -> dict[str, StoredEmail]:
    """What is stored of these emails of the mailbox (a listing page's), through `con` (the
    list producer's own cursor): asked a page at a time, so a store of millions of messages
    is not held in memory. It scans the id column (the key also holds the account, so
    DuckDB's index does not serve it): ~4 ms a page per 100k stored emails, paid in the
    producer thread while the detail reads of earlier pages run."""
    if not email_ids:
        return {}
    rows = con.execute(
        "SELECT id, is_final, created_at, raw_sha256, first_harvested_at FROM multimail_emails "
        "WHERE mailbox_id = ? AND id IN (SELECT unnest(?))",
        [mailbox_id, list(email_ids)],
    ).fetchall()
    return {r[0]: StoredEmail(r[1], r[2], r[3], r[4]) for r in rows}


def newest_outbound_at(store: Store) -> datetime | None:
    """created_at of the newest stored outbound email: the lookback window ends there."""
    newest: datetime | None = store.query(
        "SELECT max(created_at) FROM multimail_emails WHERE direction = 'outbound'"
    )[0][0]
    return newest


def outbound_not_final_before(store: Store, mailbox_id: str, floor: datetime) -> tuple[str, ...]:
    """Stored outbound mail of the mailbox not final yet and older than `floor` (or undated)."""
    return tuple(
        r[0]
        for r in store.query(
            "SELECT id FROM multimail_emails WHERE mailbox_id = ? AND direction = "
            "'outbound' AND NOT is_final AND (created_at IS NULL OR created_at < ?) "
            "ORDER BY id",
            [mailbox_id, floor],
        )
    )


def stored_email_raw(store: Store, email_ids: Sequence[str]) -> dict[str, str]:
    """id → stored raw JSON of these emails (those not stored are left out)."""
    if not email_ids:
        return {}
    return dict(
        store.query(
            "SELECT id, raw FROM multimail_emails WHERE list_contains(?, id)", [list(email_ids)]
        )
    )


def first_harvested_at(store: Store, email_ids: Sequence[str]) -> dict[str, datetime]:
    """id → first_harvested_at of these emails (those not stored are left out)."""
    if not email_ids:
        return {}
    return dict(
        store.query(
            "SELECT id, first_harvested_at FROM multimail_emails WHERE list_contains(?, id)",
            [list(email_ids)],
        )
    )


def conversations_to_enrich(store: Store) -> dict[str | None, list[str]]:
    """Workspace name (None: the default one) → ids of the Intercom conversations linked from
    stored mail that are not stored yet, or stored, found and not closed."""
    by_workspace: dict[str | None, list[str]] = {}
    for cid, workspace in store.query(
        f"SELECT DISTINCT e.conversation_id, {WORKSPACE_SQL} AS workspace "
        "FROM multimail_emails e "
        "LEFT JOIN intercom_conversations c ON c.id = e.conversation_id "
        "WHERE e.conversation_id IS NOT NULL "
        "AND (c.id IS NULL OR (c.found AND c.state IS DISTINCT FROM 'closed')) "
        "ORDER BY 2 NULLS FIRST, 1"
    ):
        by_workspace.setdefault(workspace, []).append(cid)
    return by_workspace
