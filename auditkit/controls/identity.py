"""Identity controls (ID-*): DKIM of delivered mail, and what archived copies say was sent.

The MultiMail API exposes no message headers (multimail-api.md §5), so the strongest DKIM
evidence is an independent verification of an archived copy (`auditkit harvest-archive`).
`evidence_sql.dkim_status_sql` ranks the sources once, for the controls and the evidence
pack alike: archive result, else the per-message `dkim_verified` flag (integration-guide
shape), else the From domain's `dkim_verified` DNS-setup flag. ID-002 and ID-003 read only
the archive.
"""

from __future__ import annotations

import duckdb

from auditkit.controls.context import CheckContext
from auditkit.controls.registry import Outcome, control
from auditkit.evidence_sql import ALTERED_CONTENT_SQL, MISSING_IDENTITY_SQL, dkim_status_sql

NO_ARCHIVE = "no sent-mail archive harvested"


DKIM_RESULTS_SQL = dkim_status_sql("SELECT * FROM ak_scope WHERE is_delivered") + "ORDER BY id\n"


def dkim_results(ctx: CheckContext) -> duckdb.DuckDBPyRelation:
    """(id, from_domain, status, source_kind, source) for every delivered email in scope.

    A lazy relation, so callers filter in DuckDB; the report runs the same
    `dkim_status_sql` over its own selection, so a pack and `check` never disagree.
    """
    return ctx.con.sql(DKIM_RESULTS_SQL)


@control(
    id="ID-001",
    title="Delivered email without a DKIM pass",
    severity="medium",
    rationale=(
        "A DKIM signature from the sender's verified domain is the evidence that delivered mail "
        "really came from the sender. Source, strongest first: independent verification of an "
        "archived copy (auditkit harvest-archive; a pass must be aligned with the From domain, "
        "temperror is unknown), else the per-message dkim_verified flag, else the From domain's "
        "dkim_verified (the account's <slug>.multimail.dev default counts as signed); evidence "
        "names the source. fail or unknown is a finding. Scope: outbound email created in the "
        "period and delivered."
    ),
    reference=(
        "can-spam.md CS-01 (authentication supports accurate headers); multimail-api.md §4.12, §5; "
        "RFC 6376"
    ),
    applies_to="outbound_email",
    sql=DKIM_RESULTS_SQL,
)
def id_001(ctx: CheckContext) -> Outcome:
    checked = ctx.scalar("SELECT count(*) FROM ak_scope WHERE is_delivered")
    if not checked:
        return Outcome(0, not_applicable="no outbound email created in the period was delivered")
    results = dkim_results(ctx).filter("status <> 'pass'").order("id")
    names = results.columns
    findings = [
        ctx.finding(
            "email",
            r["id"],
            "DKIM failed for this delivered message."
            if r["status"] == "fail"
            else "No DKIM result is available for this delivered message.",
            {
                "dkim_status": r["status"],
                "dkim_source": r["source"],
                "dkim_source_kind": r["source_kind"],
                "from_domain": r["from_domain"],
            },
        )
        for r in (dict(zip(names, row, strict=True)) for row in results.fetchall())
    ]
    by_kind = ctx.rows(
        f"SELECT source_kind, count(*) AS n FROM ({DKIM_RESULTS_SQL}) GROUP BY 1 ORDER BY 1"
    )
    detail = "DKIM source: " + ", ".join(f"{r['source_kind']} {r['n']}" for r in by_kind)
    return Outcome(checked, findings, detail=detail)


def _archive_is_empty(ctx: CheckContext) -> bool:
    return not ctx.scalar("SELECT count(*) FROM archive_messages")


# Archived copies of outbound email in the period: ALTERED_CONTENT_SQL / MISSING_IDENTITY_SQL
# rows are per archived message; these group them per email so a finding names the email.
ID_002_SQL = f"""
SELECT a.email_id AS id,
       count(*) AS archived_copies,
       bool_or(a.body_differs_from_approved) AS body_differs_from_approved,
       bool_or(a.body_hash_failed) AS body_hash_failed,
       list(a.source_path ORDER BY a.source_path) AS source_paths,
       min(a.body_diff_summary) AS body_diff_summary
FROM ({ALTERED_CONTENT_SQL}) a JOIN ak_scope s ON s.id = a.email_id
GROUP BY a.email_id
ORDER BY a.email_id
"""
ARCHIVED_IN_SCOPE_SQL = """
SELECT count(DISTINCT m.email_id) FROM archive_messages m JOIN ak_scope s ON s.id = m.email_id
"""


@control(
    id="ID-002",
    title="Archived message altered relative to the approved content",
    severity="high",
    rationale=(
        "What was delivered must be what was approved. An archived copy whose text part differs "
        "from the approved markdown (changed before signing) or whose DKIM body hash fails "
        "(changed after signing) is evidence that the message was altered. Scope: outbound email "
        "created in the period with at least one archived copy matched to it; not applicable "
        "without a harvested archive."
    ),
    reference="multimail-api.md §6 (approval gates the content sent); RFC 6376 §3.7 (body hash)",
    applies_to="outbound_email",
    sql=ID_002_SQL,
)
def id_002(ctx: CheckContext) -> Outcome:
    if _archive_is_empty(ctx):
        return Outcome(0, not_applicable=NO_ARCHIVE)
    checked = ctx.scalar(ARCHIVED_IN_SCOPE_SQL)
    if not checked:
        return Outcome(0, not_applicable="no archived copy matches an email created in the period")
    findings = []
    for r in ctx.rows(ID_002_SQL):
        how = []
        if r["body_differs_from_approved"]:
            how.append("its text differs from the approved content")
        if r["body_hash_failed"]:
            how.append("its DKIM body hash does not verify (changed after signing)")
        findings.append(
            ctx.finding(
                "email",
                r["id"],
                "Archived copy was altered: " + " and ".join(how) + ".",
                {k: r[k] for k in r if k != "id"},
            )
        )
    return Outcome(checked, findings)


ID_003_SQL = f"""
SELECT s.id, s.agent, a.sender_key,
       count(*) AS archived_copies_without_identity,
       list(m.source_path ORDER BY m.source_path) AS source_paths,
       min(m.from_address) AS from_address
FROM ({MISSING_IDENTITY_SQL}) m
JOIN ak_scope s ON s.id = m.email_id
LEFT JOIN ak_email_audit a ON a.email_id = s.id
WHERE s.is_delivered AND (s.agent IS NOT NULL OR a.sender_key IS NOT NULL)
GROUP BY ALL
ORDER BY s.id
"""
AGENT_ARCHIVED_SQL = """
SELECT count(DISTINCT s.id)
FROM archive_messages m JOIN ak_scope s ON s.id = m.email_id
LEFT JOIN ak_email_audit a ON a.email_id = s.id
WHERE s.is_delivered AND (s.agent IS NOT NULL OR a.sender_key IS NOT NULL)
"""


@control(
    id="ID-003",
    title="Delivered agent message archived without an agent identity header",
    severity="medium",
    rationale=(
        "Mail an AI agent sends should say so to anyone reading the delivered copy: MultiMail "
        "stamps X-MultiMail-Identity (and agents may add X-MultiMail-Agent or X-Agent-Identity). "
        "An archived copy carrying none of them means recipients could not tell an agent wrote "
        "it. Agent message: the email has an agent tag or an email.sent audit entry with a "
        "sending key. Scope: delivered agent email created in the period with an archived copy; "
        "not applicable without a harvested archive."
    ),
    reference="multimail-api.md §5 (identity headers); can-spam.md CS-01 (accurate headers)",
    applies_to="outbound_email",
    sql=ID_003_SQL,
)
def id_003(ctx: CheckContext) -> Outcome:
    if _archive_is_empty(ctx):
        return Outcome(0, not_applicable=NO_ARCHIVE)
    checked = ctx.scalar(AGENT_ARCHIVED_SQL)
    if not checked:
        return Outcome(
            0, not_applicable="no delivered agent email created in the period has an archived copy"
        )
    findings = [
        ctx.finding(
            "email",
            r["id"],
            "Archived copy carries no X-MultiMail-Identity, X-MultiMail-Agent or "
            "X-Agent-Identity header.",
            {k: r[k] for k in r if k != "id"},
        )
        for r in ctx.rows(ID_003_SQL)
    ]
    return Outcome(checked, findings)
