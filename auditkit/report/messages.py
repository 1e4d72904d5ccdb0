"""The message relation of a pack: one SQL statement over the messages its scope selects,
materialised once by `MessageTable` for the CSV, the figures and the evidence pages.

Everything here reads; nothing renders. The message relation is one SQL statement so that
`messages.csv` can stream it from DuckDB in Arrow batches, while the HTML/PDF context
(`report.context`) only ever holds aggregates plus a bounded number of messages (flagged
ones and a seeded sample, `report.pages`).

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

import re
from collections.abc import Mapping, Sequence
from typing import Any

from auditkit.config import Settings
from auditkit.controls.settings import vocabulary_for
from auditkit.evidence_sql import (  # the derivations controls and pack share
    approver_kind_sql,
    dkim_status_sql,
    email_audit_sql,
    from_email_sql,
    located_sql,
    mode_at_send_sql,
)
from auditkit.findings import Finding, Period
from auditkit.multimail_terms import WAITING_STATUSES
from auditkit.report.results import finding_id
from auditkit.report.scope import Scope, scope_params, selected_sql
from auditkit.store import Store
from auditkit.store.temp_tables import create_temp_table, drop_temp_table
from auditkit.vocabulary import Vocabulary

SELECTED_KEYS_SQL = (
    "SELECT id, mailbox_id, created_at, dkim_verified, "
    f"{from_email_sql('from_address')} AS from_email FROM sel"
)

INTERCOM_APP_HOSTS = {"eu": "app.eu.intercom.com", "au": "app.au.intercom.com"}
DEFAULT_INTERCOM_APP_HOST = "app.intercom.com"


# The derived relations the message row joins, each one row per selected message. They
# are built as temp tables one at a time (`MessageTable`): DuckDB ran out of memory under
# the pack's 1 GB cap building all five hash joins of a million rows at once, while each
# step alone stays in bounds or spills.
DERIVED_RELATIONS = ("audit_decisions", "mode_at", "dkim")


def derivation_ctes(scope: Scope, vocabulary: Vocabulary) -> str:
    """The WITH list that defines `sel` and every derived relation (DuckDB evaluates only
    the one `derived_relation_sql` reads)."""
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
    """


def derived_relation_sql(scope: Scope, vocabulary: Vocabulary, name: str) -> str:
    """One of `DERIVED_RELATIONS`, on its own."""
    return f"{derivation_ctes(scope, vocabulary)} SELECT * FROM {name}"


def message_relation_sql(
    scope: Scope, findings_view: str | None, derived: Mapping[str, str]
) -> str:
    """Every selected message with its derived columns, one row each (unordered: MessageTable
    numbers them by (created_at, message_id)). `findings_view` is a registered
    (message_id, finding_ids) table; `derived` maps each of `DERIVED_RELATIONS` to the temp
    table holding it (`derived_relation_sql`)."""
    findings_join = f"LEFT JOIN {findings_view} fv ON fv.message_id = s.id" if findings_view else ""
    finding_col = "fv.finding_ids" if findings_view else "CAST(NULL AS VARCHAR)"
    return f"""
    WITH sel AS ({selected_sql(scope)})
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
                || '/a/inbox/' || coalesce(c.app_id, $app_id) || '/inbox/conversation/'
                || s.conversation_id
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
    LEFT JOIN {derived["audit_decisions"]} ad ON ad.email_id = s.id
    LEFT JOIN {derived["mode_at"]} ma ON ma.email_id = s.id
    LEFT JOIN intercom_conversations c ON c.id = s.conversation_id
    LEFT JOIN {derived["dkim"]} dk ON dk.id = s.id
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
    """The outbound messages of `period` to (or copied to) `recipient`, as a recipient pack
    selects them."""
    return selected_message_ids(store, settings, Scope(period=period, recipient=recipient))


MESSAGES_TABLE = "_auditkit_report_messages"
FINDINGS_VIEW = "_auditkit_report_findings"


def findings_table(findings: Sequence[Finding]) -> dict[str, tuple[str, list[str]]]:
    """(message_id, finding_ids) for every message with at least one finding, as the
    columns of a temp table (`create_temp_table`)."""
    by_message: dict[str, list[str]] = {}
    for f in findings:
        if f.message_id is not None:
            by_message.setdefault(f.message_id, []).append(finding_id(f))
    ids = sorted(by_message)
    return {
        "message_id": ("VARCHAR", ids),
        "finding_ids": ("VARCHAR", ["; ".join(sorted(set(by_message[i]))) for i in ids]),
    }


class MessageTable:
    """Materialise the message relation once, as a temp table with a 0-based `pos` column
    (messages.csv order), for the duration of a `with` block.

    Every later read (CSV stream, summary figures, charts, evidence pages) scans this table
    instead of re-running the joins. Temp objects work on a read-only store; the findings
    are joined from a temp table.
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
        create_temp_table(self.store.con, FINDINGS_VIEW, self.findings)
        con, table = self.store.con, MESSAGES_TABLE
        # Every read of the table orders by `pos` itself, so DuckDB need not keep rows in
        # insertion order while building it: that order costs memory it does not have
        # under the pack's cap at ten million messages.
        (order_kept,) = con.execute(
            "SELECT current_setting('preserve_insertion_order')"
        ).fetchall()[0]
        con.execute("SET preserve_insertion_order = false")
        try:
            # Built in steps: DuckDB ran out of memory under the pack's cap doing the joins
            # and the ordering of millions of wide rows in one statement. The narrow derived
            # relations and the numbering come first, one statement each; the one wide
            # statement then joins them, and nothing wide is ever sorted.
            derived = {name: f"{table}_{name}" for name in DERIVED_RELATIONS}
            steps = [
                (temp, derived_relation_sql(self.scope, self.vocabulary, name))
                for name, temp in derived.items()
            ]
            steps.append(
                (
                    f"{table}_pos",
                    f"WITH sel AS ({selected_sql(self.scope)}) SELECT id AS message_id, "
                    "row_number() OVER (ORDER BY created_at NULLS LAST, id) - 1 AS pos FROM sel",
                )
            )
            relation = message_relation_sql(self.scope, FINDINGS_VIEW, derived)
            steps.append(
                (
                    table,
                    f"SELECT p.pos, m.* FROM ({relation}) m "
                    f"JOIN {table}_pos p ON p.message_id = m.message_id",
                )
            )
            for name, select in steps:
                sql = f"CREATE OR REPLACE TEMP TABLE {name} AS {select}"
                con.execute(sql, bind(sql, self.params))
            for name, _ in steps[:-1]:
                con.execute(f"DROP TABLE {name}")
        except BaseException:
            self.__exit__()
            raise
        finally:
            con.execute(f"SET preserve_insertion_order = {bool(order_kept)}")
        return MESSAGES_TABLE

    def __exit__(self, *exc: object) -> None:
        for suffix in ("", "_pos", *(f"_{n}" for n in DERIVED_RELATIONS)):
            self.store.con.execute(f"DROP TABLE IF EXISTS {MESSAGES_TABLE}{suffix}")
        drop_temp_table(self.store.con, FINDINGS_VIEW)
