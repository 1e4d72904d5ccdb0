"""Control results as a pack shows them: finding ids, control and finding rows, the findings
of a message or recipient pack, and the run's waiver warnings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from auditkit.controls import ControlResults
from auditkit.findings import ControlResult, Finding
from auditkit.report.scope import Scope
from auditkit.store import canonical_json

MAX_EVIDENCE_CHARS = 300
# Findings the PDF/HTML lists per control; findings.csv has every one. WeasyPrint lays out
# ~100 finding blocks a second, and a year's store can hold 200,000 findings.
MAX_FINDINGS_SHOWN_PER_CONTROL = 50


def finding_id(finding: Finding) -> str:
    """Stable across runs and packs: the control and the target it is about."""
    return f"{finding.control_id}:{finding.target_type}:{finding.target_id}"


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
    return list(iter_finding_rows(results, evidence_limit))


def iter_finding_rows(
    results: Sequence[ControlResult], evidence_limit: int = MAX_EVIDENCE_CHARS
) -> Iterator[dict[str, Any]]:
    """`finding_rows` one at a time, in the same order, so findings.csv never holds every
    row at once: a 10M-message year has 421,250 findings, ~500 MB of row dicts."""
    for r, f in sorted_findings(results):
        yield finding_row(r, f, evidence_limit)


def sorted_findings(results: Sequence[ControlResult]) -> list[tuple[ControlResult, Finding]]:
    """Every (result, finding), in `finding_rows` order: control, target type, target id."""
    return sorted(
        ((r, f) for r in results for f in r.findings),
        key=lambda pair: (pair[1].control_id, pair[1].target_type, pair[1].target_id),
    )


def finding_row(
    r: ControlResult, f: Finding, evidence_limit: int = MAX_EVIDENCE_CHARS
) -> dict[str, Any]:
    """One finding of result `r` as the pack shows it."""
    evidence, cut = _short_json(f.evidence, evidence_limit)
    waiver = dict(f.waiver) if f.waiver else None
    return {
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


def shown_findings(
    rows: Sequence[dict[str, Any]], per_control: int = MAX_FINDINGS_SHOWN_PER_CONTROL
) -> list[dict[str, Any]]:
    """The finding blocks the PDF/HTML lists: each control's first `per_control` rows (in
    `finding_rows` order), then, where some were left out, one block saying how many of
    each state are only in findings.csv (``{"omitted": n, "control_id", "states"}``)."""
    blocks: list[dict[str, Any]] = []
    by_control: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_control.setdefault(row["control_id"], []).append(row)
    for control_id, group in by_control.items():
        blocks.extend(group[:per_control])
        left = group[per_control:]
        if left:
            states = {s: sum(r["state"] == s for r in left) for s in ("open", "review", "waived")}
            blocks.append(
                {
                    "omitted": len(left),
                    "control_id": control_id,
                    "states": ", ".join(f"{n:,} {s}" for s, n in states.items() if n),
                }
            )
    return blocks


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
