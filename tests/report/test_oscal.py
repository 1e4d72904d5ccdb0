"""assessment-results.json: valid OSCAL (NIST's published schemas and compliance-trestle's
models), one observation per control, findings for verdicts, back-matter hashes equal to the
files, and deterministic UUIDs."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from auditkit.findings import Period
from auditkit.pack import MANIFEST_NAME, file_sha256
from auditkit.report import write_pack
from auditkit.report.oscal import FILE_NAME, OSCAL_VERSION
from auditkit.report.results import finding_id
from tests.report.factory import Q3, demo_store, results, settings

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "oscal"
SCHEMA_SHA256 = {
    "v1.1.3": "d9e34757f0c12aff61f52b821f0b8f83ba0ba75b3a149a202b08ba82f82bc4c3",
    "v1.2.1": "4f9e277a177adbcca9527612ce450a33dc6096773fa229d413d801d196c61985",
}


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oscal") / "pack"
    with demo_store() as store:
        # Every kind of file but the PDF, which costs seconds and changes nothing here.
        write_pack(
            store, settings(), Q3, out, results=results(), sample_size=3, formats=("csv", "html")
        )
    return out


def load(pack: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((pack / FILE_NAME).read_text(encoding="utf-8"))
    return doc


def validator(version: str) -> jsonschema.Draft7Validator:
    raw = (SCHEMAS / version / "oscal_assessment-results_schema.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256[version], "vendored schema edited"
    # Python's re lacks \p{L} and \p{N} (the schema's token pattern): same classes, re syntax.
    text = raw.decode("utf-8").replace(r"\\p{L}", r"[^\\W\\d_]").replace(r"\\p{N}", r"\\d")
    return jsonschema.Draft7Validator(
        json.loads(text), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def errors(version: str, doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in validator(version).iter_errors(doc)
    ]


@pytest.mark.parametrize("version", sorted(SCHEMA_SHA256))
def test_valid_against_nist_published_schema(pack: Path, version: str) -> None:
    doc = load(pack)
    assert doc["assessment-results"]["metadata"]["oscal-version"] == OSCAL_VERSION
    assert errors(version, doc) == []


def test_the_schema_check_is_not_vacuous(pack: Path) -> None:
    doc = load(pack)
    broken = copy.deepcopy(doc)
    broken["assessment-results"]["uuid"] = "not-a-uuid"
    del broken["assessment-results"]["results"][0]["reviewed-controls"]
    broken["assessment-results"]["results"][0]["observations"][0]["methods"] = []
    found = errors("v1.1.3", broken)
    assert len(found) >= 3, found


def test_compliance_trestle_reads_it_back(pack: Path) -> None:
    from trestle.oscal.assessment_results import AssessmentResults

    model = AssessmentResults.oscal_read(pack / FILE_NAME)
    assert model is not None
    [result] = model.results
    assert {str(f.target.target_id) for f in result.findings or []} == {
        "OV-001",
        "CS-04",
        "DK-001",
        "AL-001",
    }
    assert model.back_matter is not None and model.back_matter.resources


def test_one_observation_per_control_and_one_per_finding_target(pack: Path) -> None:
    [result] = load(pack)["assessment-results"]["results"]
    observations = result["observations"]
    controls = [o for o in observations if o["types"] == ["control-objective"]]
    targets = [o for o in observations if o["types"] == ["finding"]]
    assert [o["title"].split()[0] for o in controls] == sorted(r.id for r in results())
    by_id = {o["title"].split()[0]: o for o in controls}
    props = {p["name"]: p["value"] for p in by_id["OV-001"]["props"]}
    assert props["status"] == "fail" and props["checked"] == "9" and props["open-findings"] == "2"
    assert by_id["AL-001"]["methods"] == ["EXAMINE", "TEST"]  # re-verifies the audit log
    assert by_id["OV-001"]["methods"] == ["EXAMINE"]
    assert all(o["collected"] == "2026-10-01T06:00:00Z" for o in observations)
    expected = sorted(finding_id(f) for r in results() for f in r.findings)
    got = sorted(next(p["value"] for p in o["props"] if p["name"] == "finding-id") for o in targets)
    assert got == expected
    assert [
        c["control-id"]
        for c in result["reviewed-controls"]["control-selections"][0]["include-controls"]
    ] == sorted(r.id for r in results())


def test_failing_controls_have_not_satisfied_findings_with_their_targets(pack: Path) -> None:
    [result] = load(pack)["assessment-results"]["results"]
    observations = {o["uuid"]: o for o in result["observations"]}
    findings = {f["target"]["target-id"]: f for f in result["findings"]}
    for r in results():
        finding = findings[r.id]
        state = finding["target"]["status"]["state"]
        assert state == ("not-satisfied" if r.status == "fail" else "satisfied"), r.id
        related = [observations[x["observation-uuid"]] for x in finding["related-observations"]]
        assert related[0]["types"] == ["control-objective"]
        target_ids = {
            p["value"] for o in related[1:] for p in o["props"] if p["name"] == "target-id"
        }
        assert target_ids == {f.target_id for f in r.findings}, r.id
    em04 = next(o for o in result["observations"] if o["title"] == "OV-001 email em-04")
    resources = {
        r["uuid"]: r["title"] for r in load(pack)["assessment-results"]["back-matter"]["resources"]
    }
    assert resources[em04["subjects"][0]["subject-uuid"]] == "messages.csv"
    assert resources[em04["relevant-evidence"][0]["href"].lstrip("#")] == "findings.csv"
    waived = next(o for o in result["observations"] if o["title"] == "CS-04 email em-05")
    assert "Waived by legal until 2027-01-01" in waived["remarks"]


def test_back_matter_lists_every_other_file_with_its_sha256(pack: Path) -> None:
    resources = load(pack)["assessment-results"]["back-matter"]["resources"]
    names = sorted(p.name for p in pack.iterdir() if p.name not in (MANIFEST_NAME, FILE_NAME))
    assert [r["title"] for r in resources] == names
    assert "report.html" in names and "messages.csv" in names
    for resource in resources:
        [link] = resource["rlinks"]
        assert link["href"] == resource["title"]
        assert link["hashes"] == [
            {"algorithm": "SHA-256", "value": file_sha256(pack / resource["title"])}
        ]
    manifest = json.loads((pack / MANIFEST_NAME).read_text(encoding="utf-8"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert listed[FILE_NAME] == file_sha256(pack / FILE_NAME)


def _uuids(doc: dict[str, Any]) -> dict[str, str]:
    """Object UUIDs by what they name (document UUID apart)."""
    ar = doc["assessment-results"]
    [result] = ar["results"]
    out = {"result": result["uuid"]}
    out |= {f"obs:{o['title']}": o["uuid"] for o in result["observations"]}
    out |= {f"finding:{f['title']}": f["uuid"] for f in result["findings"]}
    out |= {f"res:{r['title']}": r["uuid"] for r in ar["back-matter"]["resources"]}
    return out


def test_uuids_are_named_by_the_selection_not_by_chance(pack: Path, tmp_path: Path) -> None:
    with demo_store() as store:  # another store, results in another order, fewer files
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "b",
            results=list(reversed(results())),
            formats=("csv",),
        )
        write_pack(
            store,
            settings(),
            Period("2026-08", Q3.start.replace(month=8), Q3.end.replace(month=8, day=31)),
            tmp_path / "aug",
            results=results(),
            formats=("csv",),
        )
    a, b, aug = load(pack), load(tmp_path / "b"), load(tmp_path / "aug")
    ua, ub, uaug = _uuids(a), _uuids(b), _uuids(aug)
    assert set(ub) <= set(ua) and all(ua[k] == ub[k] for k in ub)
    assert not set(ua.values()) & set(uaug.values())  # another period, other UUIDs
    # The document UUID follows the content: other files listed, another document.
    assert a["assessment-results"]["uuid"] != b["assessment-results"]["uuid"]
    assert len(set(ua.values())) == len(ua)  # no two objects share one


def test_an_evidence_pack_for_one_message_has_its_own_results(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "one",
            results=results(),
            message_ids=["em-04"],
            formats=("csv",),
        )
    doc = load(tmp_path / "one")
    assert errors("v1.1.3", doc) == []
    [result] = doc["assessment-results"]["results"]
    assert {"name": "scope", "ns": "urn:auditkit:oscal", "value": "messages"} in result["props"]
    targets = [o["title"] for o in result["observations"] if o["types"] == ["finding"]]
    assert targets == ["OV-001 email em-04"]  # only the selected message's findings
