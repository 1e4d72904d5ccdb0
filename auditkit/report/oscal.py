"""assessment-results.json: the pack's control results as NIST OSCAL assessment results.

A GRC tool that imports OSCAL reads it without knowing auditkit: one result for the pack,
one observation per control evaluated (status, targets checked, finding counts), one per
finding target, an OSCAL finding per control with a verdict (satisfied / not-satisfied,
related to those observations), and the pack's other files as back-matter resources with
their SHA-256. Built as plain JSON (compliance-trestle's models would pin jinja2 and pull
paramiko into every install); tests validate it against NIST's published schemas and
trestle's models.

Deterministic: object UUIDs are uuid5 of stable names (the pack's period and selection, the
control id, the finding's key), so the same observation keeps its UUID when a newer harvest
revises the pack; the document UUID is uuid5 of the content, so it changes exactly when the
content does (OSCAL's rule for document UUIDs). Times come from the data, never the clock.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from auditkit.findings import ControlResult, Finding
from auditkit.pack import MANIFEST_NAME, file_sha256
from auditkit.report.results import finding_id, finding_row, sorted_findings
from auditkit.report.scope import Scope

FILE_NAME = "assessment-results.json"
OSCAL_VERSION = "1.1.3"
# Namespace of auditkit's own property names (OSCAL requires one for names it does not define).
NS = "urn:auditkit:oscal"
_UUIDS = uuid.uuid5(uuid.NAMESPACE_URL, NS)
# Controls that re-verify something rather than only reading records: DKIM signatures,
# archived copies against the approved content, the audit log against its source and chain.
TEST_CONTROLS = frozenset({"ID-001", "ID-002", "AL-001"})
_VERDICT = {"pass": "satisfied", "fail": "not-satisfied"}
# Which ledger holds the row a finding's target is; any other target is in findings.csv.
# PC-001's email targets are emails the harvest lacks, so they stay with findings.csv.
_TARGET_LEDGER = {
    "email": "messages.csv",
    "audit_entry": "audit_log.csv",
    "day": "reconciliation.csv",
}
_OWN_LEDGER_CONTROLS = {"PC-001": "reconciliation.csv"}
MEDIA_TYPES = {".csv": "text/csv", ".pdf": "application/pdf", ".html": "text/html"}
FILE_DESCRIPTIONS = {
    "report.pdf": "The evidence report (PDF/A-3u) with the four CSV ledgers attached to it.",
    "report.html": "The evidence report as HTML: the same document as report.pdf.",
}


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prop(name: str, value: object) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": " ".join(str(value).split()) or "-"}


def _text(*parts: str) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


class _Ids:
    """uuid5 names under one pack selection: same period and selection, same UUIDs."""

    def __init__(self, scope: Scope) -> None:
        period = scope.period
        self.selection = json.dumps(
            {"period": [period.label, str(period.start), str(period.end)], **scope.to_dict()},
            sort_keys=True,
            separators=(",", ":"),
        )

    def __call__(self, *names: str) -> str:
        return str(uuid.uuid5(_UUIDS, "|".join((self.selection, *names))))


def write_assessment_results(
    pack_dir: Path,
    *,
    scope: Scope,
    results: Sequence[ControlResult],
    company: str,
    as_of: datetime,
    facts: Mapping[str, str],
    descriptions: Mapping[str, str],
) -> None:
    """Write `pack_dir`/assessment-results.json, listing (and hashing) every other file now
    in `pack_dir` except the manifest. `facts` become metadata properties (snapshot digest,
    catalogue and tool version); `descriptions` describe the pack's files."""
    ids = _Ids(scope)
    resources = _resources(pack_dir, ids, {**FILE_DESCRIPTIONS, **descriptions})
    ledger = {r["title"]: r["uuid"] for r in resources}
    observations, findings = _observations_and_findings(results, ids, as_of, ledger)
    result: dict[str, Any] = {
        "uuid": ids("result"),
        "title": f"auditkit controls over {scope.describe()}",
        "description": _text(
            f"Automated evaluation of auditkit's controls over {scope.describe()}, "
            f"using the records harvested up to {_iso(as_of)}.",
            "Each control's evaluation is one observation; each finding target is another; "
            "controls that passed or failed have a finding with that verdict.",
        ),
        "start": _iso(scope.period.start_at),
        "end": _iso(scope.period.end_before),
        "props": [_prop("scope", scope.kind), _prop("period", scope.period.label)],
        "reviewed-controls": {
            "control-selections": [
                {
                    "description": "The controls of auditkit's catalogue that were run.",
                    **(
                        {
                            "include-controls": [
                                {"control-id": r.id} for r in sorted(results, key=lambda r: r.id)
                            ]
                        }
                        if results
                        else {}
                    ),
                }
            ]
        },
    }
    if observations:
        result["observations"] = observations
    if findings:
        result["findings"] = findings
    warnings = [w.to_dict() for w in getattr(results, "warnings", ())]
    if warnings:
        result["remarks"] = _text(*(f"Waiver warning: {w['message']}" for w in warnings))
    metadata: dict[str, Any] = {
        "title": f"Assessment results: {company}, {scope.period.label}",
        "last-modified": _iso(as_of),
        "version": _iso(as_of),
        "oscal-version": OSCAL_VERSION,
        "props": [_prop(k, v) for k, v in facts.items()],
        "parties": [{"uuid": ids("party", company), "type": "organization", "name": company}],
    }
    body: dict[str, Any] = {
        "metadata": metadata,
        "import-ap": {
            "href": f"urn:auditkit:control-catalogue:{facts.get('control-catalogue-version', '')}",
            "remarks": "There is no OSCAL assessment plan: auditkit's control catalogue is "
            "the plan, described in the report's methodology appendix.",
        },
        "results": [result],
    }
    if resources:
        body["back-matter"] = {"resources": resources}
    document = {"assessment-results": {"uuid": _content_uuid(body), **body}}
    with (pack_dir / FILE_NAME).open("w", encoding="utf-8", newline="") as fh:
        json.dump(document, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def _content_uuid(body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    for chunk in json.JSONEncoder(sort_keys=True, ensure_ascii=False).iterencode(body):
        digest.update(chunk.encode("utf-8"))
    return str(uuid.uuid5(_UUIDS, "document|" + digest.hexdigest()))


def _resources(pack_dir: Path, ids: _Ids, descriptions: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for path in sorted(pack_dir.iterdir()):
        if path.name in (MANIFEST_NAME, FILE_NAME) or not path.is_file():
            continue
        resource: dict[str, Any] = {"uuid": ids("resource", path.name), "title": path.name}
        if path.name in descriptions:
            resource["description"] = descriptions[path.name]
        resource["props"] = [_prop("size", path.stat().st_size)]
        resource["rlinks"] = [
            {
                "href": path.name,
                "media-type": MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                "hashes": [{"algorithm": "SHA-256", "value": file_sha256(path)}],
            }
        ]
        out.append(resource)
    return out


class _Streamed(list[Any]):
    """A JSON array whose items are made while json writes it, so a year's 421,250 target
    observations (1.4 GB as dicts) are never all in memory. `json.dump` and the content
    hash's `iterencode` walk arrays with the pure-Python encoder, which only asks a list
    whether it is empty and iterates it: each walk calls `make` again, so both passes see
    the same items. Nothing else may treat it as a list."""

    def __init__(self, length: int, make: Callable[[], Iterator[Any]]) -> None:
        super().__init__()
        self._length, self._make = length, make

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Any]:
        return self._make()


def _observations_and_findings(
    results: Sequence[ControlResult], ids: _Ids, as_of: datetime, ledger: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One observation per control evaluated, each followed by its finding targets', and
    the verdict findings: both built lazily (`_Streamed`) where they grow with findings."""
    by_control: dict[str, list[tuple[ControlResult, Finding]]] = {}
    for pair in sorted_findings(results):
        by_control.setdefault(pair[1].control_id, []).append(pair)
    controls = sorted(results, key=lambda r: r.id)

    def methods_of(r: ControlResult) -> list[str]:
        return ["EXAMINE", "TEST"] if r.id in TEST_CONTROLS else ["EXAMINE"]

    def counts_of(r: ControlResult) -> dict[str, int]:
        states = [f.state for _, f in by_control.get(r.id, [])]
        return {s: states.count(s) for s in ("open", "waived", "review")}

    def observations() -> Iterator[dict[str, Any]]:
        for r in controls:
            pairs = by_control.get(r.id, [])
            methods = methods_of(r)
            yield _control_observation(r, ids, as_of, ledger, methods, counts_of(r), bool(pairs))
            rows = (finding_row(res, f, evidence_limit=0) for res, f in pairs)
            yield from _target_observations(rows, ids, as_of, ledger, methods)

    def related(r: ControlResult) -> Iterator[dict[str, str]]:
        yield {"observation-uuid": ids("observation", r.id)}
        for _, f in by_control.get(r.id, []):
            yield {"observation-uuid": ids("target", finding_id(f))}

    findings: list[dict[str, Any]] = []
    for r in controls:
        if r.status not in _VERDICT:
            continue
        counts = counts_of(r)
        findings.append(
            {
                "uuid": ids("finding", r.id),
                "title": f"{r.id} {r.title}",
                "description": _text(
                    f"{r.id} {'passed' if r.status == 'pass' else 'failed'}: "
                    f"{r.checked} target(s) checked, {counts['open']} open, "
                    f"{counts['waived']} waived and {counts['review']} for review.",
                    r.detail,
                ),
                "props": [_prop("severity", r.severity)],
                "target": {
                    "type": "objective-id",
                    "target-id": r.id,
                    "status": {"state": _VERDICT[r.status], "reason": r.status},
                },
                "related-observations": _Streamed(
                    1 + len(by_control.get(r.id, [])), partial(related, r)
                ),
            }
        )
    total = len(controls) + sum(len(by_control.get(r.id, [])) for r in controls)
    return _Streamed(total, observations), findings


def _control_observation(
    r: ControlResult,
    ids: _Ids,
    as_of: datetime,
    ledger: Mapping[str, str],
    methods: list[str],
    counts: Mapping[str, int],
    has_findings: bool,
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "uuid": ids("observation", r.id),
        "title": f"{r.id} {r.title}",
        "description": _text(
            f"Control {r.id} ({r.severity}) evaluated by auditkit: status {r.status}, "
            f"{r.checked} target(s) checked.",
            r.detail,
            r.rationale,
            f"Reference: {r.reference}" if r.reference else "",
        ),
        "props": [
            _prop("control-id", r.id),
            _prop("status", r.status),
            _prop("severity", r.severity),
            _prop("checked", r.checked),
            *(_prop(f"{state}-findings", n) for state, n in counts.items()),
        ],
        "methods": methods,
        "types": ["control-objective"],
        "collected": _iso(as_of),
    }
    if has_findings and "findings.csv" in ledger:
        obs["relevant-evidence"] = [
            {
                "href": f"#{ledger['findings.csv']}",
                "description": f"The rows of findings.csv whose control_id is {r.id}.",
            }
        ]
    return obs


def _target_observations(
    rows: Iterable[Mapping[str, Any]],
    ids: _Ids,
    as_of: datetime,
    ledger: Mapping[str, str],
    methods: list[str],
) -> Iterator[dict[str, Any]]:
    for row in rows:
        target = f"{row['target_type']} {row['target_id']}"
        obs: dict[str, Any] = {
            "uuid": ids("target", row["id"]),
            "title": f"{row['control_id']} {target}",
            "description": _text(row["reason"]) or target,
            "props": [
                _prop("finding-id", row["id"]),
                _prop("target-type", row["target_type"]),
                _prop("target-id", row["target_id"]),
                _prop("state", row["state"]),
            ],
            "methods": methods,
            "types": ["finding"],
        }
        if row["waiver_justification"] or row["waiver_approver"]:
            obs["remarks"] = _text(
                f"Waived by {row['waiver_approver'] or 'unnamed approver'}"
                + (f" until {row['waiver_expires']}" if row["waiver_expires"] else "")
                + f": {row['waiver_justification']}"
            )
        holder = _OWN_LEDGER_CONTROLS.get(row["control_id"]) or _TARGET_LEDGER.get(
            row["target_type"], "findings.csv"
        )
        if holder not in ledger:
            holder = "findings.csv"
        if holder in ledger:
            obs["subjects"] = [
                {
                    "subject-uuid": ledger[holder],
                    "type": "resource",
                    "title": f"{target} ({holder})",
                    "props": [
                        _prop("target-type", row["target_type"]),
                        _prop("target-id", row["target_id"]),
                    ],
                }
            ]
        if "findings.csv" in ledger:
            obs["relevant-evidence"] = [
                {
                    "href": f"#{ledger['findings.csv']}",
                    "description": f"The row of findings.csv whose finding_id is {row['id']}.",
                }
            ]
        obs["collected"] = _iso(as_of)
        yield obs
