"""What every control reads: period-scoped views of the store, built once per check.

`CheckContext` builds, once per check, temp tables over the store — outbound email created
in the period with derived columns (`ak_scope`), what the audit log says about each
(`ak_email_audit`), and their primary-purpose classification — so each control's SQL stays
short and every control sees the same population. Temp tables live in DuckDB's in-memory
temp catalog, never in the store file, so a read-only store works and nothing is written
to it. The settings it carries are `controls.settings.ControlSettings`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from auditkit.classify import (
    ClassificationRules,
    classification_params,
    classification_policy_columns,
    classification_sql,
)
from auditkit.controls.settings import ControlSettings
from auditkit.evidence_sql import email_audit_sql, from_email_sql, located_sql
from auditkit.findings import Finding, FindingState, Period
from auditkit.multimail_terms import UNSENT_STATUSES
from auditkit.store.temp_tables import create_temp_table, drop_temp_table
from auditkit.vocabulary import Vocabulary
from auditkit.vocabulary_inference import resolve_vocabulary

logger = logging.getLogger(__name__)


def jsonable(value: Any) -> Any:
    """Evidence values as JSON-friendly primitives (timestamps as ISO 8601 UTC)."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# Outbound email created in the period, with the columns controls derive again and again.
SCOPE_SQL = f"""
CREATE OR REPLACE TEMP TABLE ak_scope AS
WITH outbound AS (
    SELECT e.*,
           {from_email_sql("e.from_address")} AS from_email
    FROM multimail_emails e
    WHERE e.direction = 'outbound' AND e.created_at >= $start AND e.created_at < $end
      AND ($all_messages OR list_contains($message_ids, e.id))
), located AS ({located_sql("outbound")}
), enriched AS (
    SELECT l.*, lower(trim(coalesce(m.address, l.from_email))) AS mailbox_address,
           m.signature_block, m.oversight_mode AS current_mode
    FROM located l LEFT JOIN multimail_mailboxes m ON m.id = l.mailbox_id
)
SELECT l.id, l.mailbox_id, l.mailbox_address, l.from_address, l.from_email,
       l.to_addresses, l.cc_addresses, l.subject, l.status, l.created_at, l.thread_id,
       l.body_markdown, l.delivered_at, l.bounced_at, l.approved_at, l.approved_by,
       l.decision, l.dkim_verified, l.conversation_id, l.agent, l.tags, l.metadata,
       l.signature_block, l.current_mode,
       coalesce(l.delivered_at, l.created_at) AS sent_at,
       (l.delivered_at IS NOT NULL OR l.status = 'delivered') AS is_delivered,
       (l.approved_at IS NOT NULL OR l.approved_by IS NOT NULL
        OR lower(coalesce(l.decision, '')) IN ('approved', 'approve')) AS has_approval,
       (l.delivered_at IS NOT NULL OR l.bounced_at IS NOT NULL
        OR NOT list_contains($unsent_statuses, coalesce(l.status, ''))) AS is_sent,
       coalesce(p.require_conversation_link, false) AS require_conversation_link,
       coalesce(p.appends_postal_address, false) AS appends_postal_address
FROM enriched l
LEFT JOIN ak_mailbox_policy p ON p.address = l.mailbox_address
"""


def email_audit_table_sql(vocabulary: Vocabulary, scoped: bool) -> str:
    """`ak_email_audit`; a check of chosen messages reads only their entries."""
    return "CREATE OR REPLACE TEMP TABLE ak_email_audit AS " + email_audit_sql(
        vocabulary, "SELECT id FROM ak_scope" if scoped else None
    )


class CheckContext:
    """One check run: the store connection, validated settings, the period and its clock."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: ControlSettings,
        rules: ClassificationRules,
        period: Period,
        now: datetime,
        message_ids: Sequence[str] | None = None,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.con = con
        self.settings = settings
        self._vocabulary = vocabulary
        self.rules = rules
        self.period = period
        self.now = now
        # None: every outbound message of the period; else only these (evidence packs).
        self.message_ids = tuple(message_ids) if message_ids is not None else None
        self.control_id = ""
        self._prepared = False
        self._classified = False

    @property
    def vocabulary(self) -> Vocabulary:
        """What the audit log's actions mean: configured, else inferred from this store.
        Resolved on first use, inside a control's run, so a broken store is that control's
        `error` rather than the whole check's."""
        if self._vocabulary is None:
            self._vocabulary = resolve_vocabulary(self.con, self.settings.audit_actions)
        return self._vocabulary

    def missing(self, *meanings: str) -> str | None:
        """One line on the first meaning the control needs that cannot be relied on."""
        for meaning in meanings:
            if reason := self.vocabulary.missing(meaning):
                return reason
        return None

    @property
    def evaluated_at(self) -> datetime:
        """Period end, or `now` (when the data was read) if the period had not ended by then
        (states "at period end")."""
        return min(self.period.end_before, self.now)

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"start": self.period.start_at, "end": self.period.end_before, **extra}

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run one query; rows as dicts. Only the parameters the SQL mentions are bound."""
        bound = {k: v for k, v in self.params(**params).items() if f"${k}" in sql}
        rel = self.con.sql(sql, params=bound or None)
        names = rel.columns
        return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]

    def scalar(self, sql: str, **params: Any) -> Any:
        rows = self.rows(sql, **params)
        return next(iter(rows[0].values())) if rows else None

    def prepare(self) -> None:
        """Create `ak_mailbox_policy`, `ak_scope` and `ak_email_audit` once per run."""
        if self._prepared:
            return
        policies = sorted(self.settings.mailboxes.values(), key=lambda p: p.address)
        create_temp_table(
            self.con,
            "ak_mailbox_policy",
            {
                "address": ("VARCHAR", [p.address for p in policies]),
                "require_conversation_link": (
                    "BOOLEAN",
                    [p.require_conversation_link for p in policies],
                ),
                "appends_postal_address": ("BOOLEAN", [p.appends_postal_address for p in policies]),
            },
        )
        self.con.execute(
            SCOPE_SQL,
            self.params(
                unsent_statuses=list(UNSENT_STATUSES),
                all_messages=self.message_ids is None,
                message_ids=list(self.message_ids or ()),
            ),
        )
        self.con.execute(email_audit_table_sql(self.vocabulary, self.message_ids is not None))
        self._prepared = True

    def classified(self) -> str:
        """Name of the temp view `ak_classified`: sent ak_scope rows + classification, reasons."""
        self.prepare()
        if not self._classified:
            # Labels are materialised once (the regex work); the view just joins them on.
            create_temp_table(
                self.con, "_ak_classification_policy", classification_policy_columns(self.rules)
            )
            try:
                self.con.execute(
                    # Only sent mail is ever judged on content (CS-001..CS-003).
                    "CREATE OR REPLACE TEMP VIEW ak_sent AS SELECT * FROM ak_scope WHERE is_sent; "
                    "CREATE OR REPLACE TEMP TABLE ak_labels AS "
                    + classification_sql("ak_sent", "_ak_classification_policy"),
                    classification_params(self.rules),
                )
            finally:
                drop_temp_table(self.con, "_ak_classification_policy")
            self.con.execute(
                "CREATE OR REPLACE TEMP VIEW ak_classified AS "
                "SELECT s.*, l.classification, l.reasons FROM ak_scope s JOIN ak_labels l USING "
                "(id)"
            )
            self._classified = True
        return "ak_classified"

    def close(self) -> None:
        self.con.execute("DROP VIEW IF EXISTS temp.ak_classified")
        self.con.execute("DROP VIEW IF EXISTS temp.ak_sent")
        for table in ("ak_labels", "ak_email_audit", "ak_scope", "ak_mailbox_policy"):
            drop_temp_table(self.con, table)

    def finding(
        self,
        target_type: str,
        target_id: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        state: FindingState = "open",
    ) -> Finding:
        return Finding(
            control_id=self.control_id,
            target_type=target_type,
            target_id=str(target_id),
            reason=reason,
            evidence=jsonable(dict(evidence or {})),
            state=state,
        )
