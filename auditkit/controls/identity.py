"""Identity control (ID-001): delivered mail whose DKIM result is not a pass.

The MultiMail API exposes no message headers (multimail-api.md §5), so the DKIM result
comes from the per-message `dkim_verified` flag (integration-guide shape) when present,
else from the From domain's `dkim_verified` DNS-setup flag. `dkim_results` is the seam where
independent verification of archived messages will add a third, stronger source.
"""

from __future__ import annotations

import duckdb

from auditkit.controls import Outcome, control
from auditkit.controls.context import CheckContext

DKIM_RESULTS_SQL = """
WITH account AS (
    SELECT lower(min(slug)) || '.multimail.dev' AS default_domain FROM multimail_account
), domains AS (
    SELECT lower(domain) AS domain, bool_or(dkim_verified) AS dkim_verified
    FROM multimail_domains GROUP BY 1
), delivered AS (
    SELECT id, dkim_verified, split_part(from_email, '@', 2) AS from_domain
    FROM ak_scope WHERE is_delivered
)
SELECT e.id,
       CASE WHEN e.dkim_verified IS NOT NULL
                 THEN CASE WHEN e.dkim_verified THEN 'pass' ELSE 'fail' END
            WHEN e.from_domain = a.default_domain THEN 'pass'
            WHEN d.dkim_verified IS NOT NULL
                 THEN CASE WHEN d.dkim_verified THEN 'pass' ELSE 'fail' END
            ELSE 'unknown' END AS status,
       CASE WHEN e.dkim_verified IS NOT NULL THEN 'message dkim_verified'
            WHEN e.from_domain = a.default_domain THEN 'MultiMail default domain '
                || a.default_domain
            WHEN d.dkim_verified IS NOT NULL THEN 'domain dkim_verified (' || e.from_domain || ')'
            ELSE 'none: From domain ' || coalesce(e.from_domain, '?')
                || ' is not a harvested domain' END AS source,
       e.from_domain
FROM delivered e
LEFT JOIN domains d ON d.domain = e.from_domain
CROSS JOIN account a
ORDER BY e.id
"""


def dkim_results(ctx: CheckContext) -> duckdb.DuckDBPyRelation:
    """(id, status pass|fail|unknown, source, from_domain) for every delivered email in scope.

    Seam: archive verification will override rows here with its own per-signature result
    and source, leaving ID-001 unchanged. A lazy relation, so callers filter in DuckDB.
    """
    return ctx.con.sql(DKIM_RESULTS_SQL)


@control(
    id="ID-001",
    title="Delivered email without a DKIM pass",
    severity="medium",
    rationale=(
        "A DKIM signature from the sender's verified domain is the evidence that delivered mail "
        "really came "
        "from the sender. Uses the per-message dkim_verified flag when present, else the From "
        "domain's "
        "dkim_verified (the account's <slug>.multimail.dev default counts as signed); evidence "
        "names the "
        "source. fail or unknown is a finding. Scope: outbound email created in the period and "
        "delivered."
    ),
    reference=(
        "can-spam.md CS-01 (authentication supports accurate headers); multimail-api.md §4.12, §5"
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
                "from_domain": r["from_domain"],
            },
        )
        for r in (dict(zip(names, row, strict=True)) for row in results.fetchall())
    ]
    return Outcome(checked, findings)
