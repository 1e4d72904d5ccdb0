"""The evidence SQL the identity controls (ID-001..003) read from the archive tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auditkit.store import Store

# One row per matched email: (email_id, status, detail, body_hash_failed). The controls
# join it onto delivered emails (ID-001) and read body_hash_failed for ID-002. Precedence
# over all signatures of all archived copies of the email: any `fail` (tampering, wrong
# key, expiry) > a pass aligned with From > an unaligned pass (reported as fail) >
# permerror > temperror > none. Emails with no archived copy have no row.
INDEPENDENT_DKIM_SQL = """
WITH sig AS (
    SELECT m.email_id, m.source_path, r.signature_index, r.result, r.reason, r.domain,
           r.selector, r.aligned_with_from,
           CASE WHEN r.result = 'fail' THEN 1
                WHEN r.result = 'pass' AND coalesce(r.aligned_with_from, false) THEN 2
                WHEN r.result = 'pass' THEN 3
                WHEN r.result = 'permerror' THEN 4
                WHEN r.result = 'temperror' THEN 5
                ELSE 6 END AS rank
    FROM archive_messages m JOIN archive_dkim_results r USING (sha256)
    WHERE m.email_id IS NOT NULL
), body_hash AS (
    SELECT email_id, bool_or(result = 'fail' AND reason LIKE 'body hash mismatch%') AS failed
    FROM sig GROUP BY email_id
)
SELECT s.email_id,
       CASE s.rank WHEN 1 THEN 'fail' WHEN 2 THEN 'pass' WHEN 3 THEN 'fail' ELSE s.result END
           AS status,
       CASE WHEN s.domain IS NULL THEN '' ELSE 'd=' || s.domain || ' s=' || s.selector || ': ' END
           || CASE s.rank WHEN 2 THEN 'aligned with From'
                          WHEN 3 THEN 'passes but d= is not aligned with the From domain'
                          ELSE coalesce(s.reason, s.result) END
           || ' (' || s.source_path || ')' AS detail,
       b.failed AS body_hash_failed
FROM sig s JOIN body_hash b USING (email_id)
QUALIFY row_number() OVER (PARTITION BY s.email_id
                           ORDER BY s.rank, s.source_path, s.signature_index) = 1
ORDER BY s.email_id
"""


# ID-002: archived copies whose content is not what was approved — the text part differs
# from the approved markdown (changed before signing) or a DKIM body hash fails (changed
# after signing). One row per archived message; email_id NULL when it matched nothing.
ALTERED_CONTENT_SQL = """
SELECT m.email_id, m.sha256, m.source_path,
       coalesce(m.body_matches_approved = false, false) AS body_differs_from_approved,
       coalesce(bool_or(r.result = 'fail' AND r.reason LIKE 'body hash mismatch%'), false)
           AS body_hash_failed,
       m.body_diff_summary
FROM archive_messages m LEFT JOIN archive_dkim_results r USING (sha256)
GROUP BY ALL
HAVING body_differs_from_approved OR body_hash_failed
ORDER BY m.email_id, m.source_path
"""

# ID-003: archived copies carrying none of the agent identity headers.
MISSING_IDENTITY_SQL = """
SELECT email_id, sha256, source_path, from_address, subject
FROM archive_messages
WHERE identity_header IS NULL AND agent_header IS NULL AND agent_identity_header IS NULL
ORDER BY email_id, source_path
"""


def independent_dkim_by_email(store: Store) -> dict[str, tuple[str, str]]:
    """email_id → (status, detail) from the archive, for ID-001 (see INDEPENDENT_DKIM_SQL)."""
    return {row[0]: (row[1], row[2]) for row in store.query(INDEPENDENT_DKIM_SQL)}
