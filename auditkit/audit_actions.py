"""Every action the audit log holds, with its count, resource types, metadata keys and one
example: what `auditkit vocabulary` lists next to the mapping in force."""

from __future__ import annotations

import json
from typing import Any

import duckdb


def observed_actions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every action in the audit log: count, resource types, metadata keys, one example."""
    rows = con.sql("""
        WITH keys AS (
            SELECT action, list(DISTINCT k ORDER BY k) AS metadata_keys
            FROM (SELECT action, unnest(json_keys(metadata)) AS k FROM multimail_audit_log
                  WHERE json_type(metadata) = 'OBJECT')
            GROUP BY action
        )
        SELECT l.action, count(*) AS n,
               list(DISTINCT l.resource_type ORDER BY l.resource_type)
                   FILTER (WHERE l.resource_type IS NOT NULL) AS resource_types,
               any_value(k.metadata_keys) AS metadata_keys,
               arg_min(l.id, (l.created_at, l.id)) AS example_id
        FROM multimail_audit_log l LEFT JOIN keys k ON k.action IS NOT DISTINCT FROM l.action
        GROUP BY l.action ORDER BY n DESC, l.action NULLS LAST""").fetchall()
    examples = {
        r[0]: r
        for r in con.execute(
            "SELECT id, action, resource_type, resource_id, actor_key_id, metadata, created_at "
            "FROM multimail_audit_log WHERE list_contains($ids, id)",
            {"ids": [r[4] for r in rows]},
        ).fetchall()
    }
    listed = []
    for action, count, resource_types, metadata_keys, example_id in rows:
        ex = examples.get(example_id)
        example = None
        if ex is not None:
            metadata_text = ex[5] if isinstance(ex[5], str) else json.dumps(ex[5])
            example = {
                "id": ex[0],
                "resource_type": ex[2],
                "resource_id": ex[3],
                "actor_key_id": ex[4],
                "metadata": (metadata_text or "")[:300],
                "created_at": ex[6].isoformat() if ex[6] is not None else None,
            }
        listed.append(
            {
                "action": action,
                "count": count,
                "resource_types": list(resource_types or []),
                "metadata_keys": list(metadata_keys or []),
                "example": example,
            }
        )
    return listed
