"""Acceptance: `auditkit demo` harvests the sample quarter, verifies the sample sent-mail
archive offline, and its pack holds exactly the planted findings and verifies.

`sample_data/expected_demo_findings.json` is the exact expected set, written down: the
quarter's planted findings (`expected_findings.json`) plus those the archive plants
(`archive/expected.json`, see `archive_planted_findings`). A test re-derives it from those
two generated files, so it cannot drift silently; `python -m tests.cli.test_demo` rewrites it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import string
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditkit.cli import cli
from auditkit.controls import CATALOGUE_VERSION
from auditkit.devtools.tsa import demo_pki, make_test_pki
from auditkit.pack import verify_pack
from tests.conftest import IC_TOKEN, MM_KEY, SAMPLE_DATA, DemoRun

pytestmark = pytest.mark.slow

Key = tuple[str, str, str, str]


def keys(entries: list[dict[str, Any]]) -> set[Key]:
    return {(e["control_id"], e["target_type"], e["target_id"], e["state"]) for e in entries}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def demo(demo_run: DemoRun) -> dict[str, Any]:
    """The run's shared demo (tests/conftest.py `demo_run`): copy before changing it."""
    return {"out": demo_run.out, "doc": demo_run.doc}


def archive_planted_findings() -> list[dict[str, Any]]:
    """The findings the archive's planted cases must raise, from archive/expected.json.

    A failing independent DKIM check is an ID-001 finding even though the sending domain's
    flag says verified (the archive wins); a body hash failure or text that differs from
    the approved markdown is ID-002; a copy with no identity header is ID-003 (every
    archived sample email is a delivered agent message). Clean copies raise nothing.
    """
    planted = []
    for m in read_json(SAMPLE_DATA / "archive" / "expected.json")["messages"]:
        where = f"sample_data/archive/{m['source']} ({m['case']})"
        target = {"state": "open", "target_id": m["email_id"], "target_type": "email"}
        if m["dkim_result"] != "pass":
            note = f"archive DKIM {m['dkim_result']}: {m['reason_contains']}; {where}"
            planted.append({"control_id": "ID-001", "note": note, **target})
        body_hash = (m["reason_contains"] or "").startswith("body hash mismatch")
        if m["body_matches_approved"] is False or body_hash:
            note = f"archived copy differs from the approved content; {where}"
            planted.append({"control_id": "ID-002", "note": note, **target})
        if not m["has_identity_header"]:
            note = f"archived copy has no agent identity header; {where}"
            planted.append({"control_id": "ID-003", "note": note, **target})
    return planted


FAMILIES = ["OVS", "CS", "ID", "TR", "AL", "PC"]


def expected_demo_findings() -> list[dict[str, Any]]:
    """The quarter's planted findings plus the archive's, in catalogue order."""
    quarter = read_json(SAMPLE_DATA / "expected_findings.json")
    return sorted(
        quarter + archive_planted_findings(),
        key=lambda e: (
            FAMILIES.index(e["control_id"].split("-")[0]),
            e["control_id"],
            e["target_type"],
            e["target_id"],
        ),
    )


def render(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_expected_demo_findings_is_the_quarter_plus_the_archive() -> None:
    quarter = keys(read_json(SAMPLE_DATA / "expected_findings.json"))
    archive = keys(archive_planted_findings())
    assert len(archive) == 7 and not archive & quarter
    assert (SAMPLE_DATA / "expected_demo_findings.json").read_text("utf-8") == render(
        expected_demo_findings()
    ), "stale: regenerate with `.venv/bin/python -m tests.cli.test_demo`"


def test_demo_finds_exactly_the_expected_set(demo: dict[str, Any]) -> None:
    with (demo["out"] / "findings.csv").open(encoding="utf-8", newline="") as fh:
        found = keys(list(csv.DictReader(fh)))
    assert found == keys(read_json(SAMPLE_DATA / "expected_demo_findings.json"))


def test_demo_verified_the_archive_before_the_check(demo: dict[str, Any]) -> None:
    doc = demo["doc"]
    archive = doc["archive"]
    expected = read_json(SAMPLE_DATA / "archive" / "expected.json")["messages"]
    assert archive["messages"] == len(expected)
    assert archive["matched"]["ambiguous"] == archive["matched"]["none"] == 0
    fails = sum(m["dkim_result"] != "pass" for m in expected)
    assert archive["dkim"] == {"fail": fails, "pass": len(expected) - fails}
    assert doc["controls"]["ID-002"]["status"] == doc["controls"]["ID-003"]["status"] == "fail"
    assert "archive" in doc["seconds"]


def test_demo_pack_verifies_and_names_the_catalogue_version(demo: dict[str, Any]) -> None:
    out = demo["out"]
    verified = verify_pack(out)
    assert verified.ok, verified.problems()
    assert read_json(out / "manifest.json")["control_catalogue_version"] == CATALOGUE_VERSION
    assert f"control catalogue {CATALOGUE_VERSION}" in (out / "report.html").read_text("utf-8")


def test_demo_rerun_replaces_its_previous_pack(
    demo: dict[str, Any], small_dataset: Path, tmp_path: Path
) -> None:
    """`make demo` twice: the first run's pack is auditkit's own, so it is replaced, not
    refused. (The second run reads the small sample: what is replaced does not depend on it.)
    Its text output says the signature is the bundled TEST-ONLY key's, and the local TSA it
    started is stopped once it returns."""
    out = tmp_path / "demo"
    shutil.copytree(demo["out"], out)
    (out / "findings.csv").write_text("stale", encoding="utf-8")  # changed, but still a listed file
    # Other tests on this worker may hold a TSA of their own (a session fixture): only the
    # ones this demo starts must be gone when it returns.
    tsa_threads_before = set(tsa_threads())
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--data", str(small_dataset)])
    assert result.exit_code == 0, result.output
    verified = verify_pack(out)
    assert verified.ok, verified.problems()
    assert not [p.name for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    lines = result.stdout.splitlines()
    (signed,) = [line for line in lines if line.startswith("signed:  report.pdf, PAdES-B-T, ")]
    assert f"by {DEMO_SIGNER} at " in signed
    assert "bundled TEST-ONLY key: it is public" in result.stdout
    assert "never who made it; do not use it for real evidence" in result.stdout
    (stamped,) = [line for line in lines if line.startswith("timestamped: ")]
    assert f"by {TEST_TSA}, a local TEST-ONLY RFC 3161 responder (http://127.0.0.1:" in stamped
    assert f"--trust {demo_pki().ca_cert}" in result.stdout
    assert set(tsa_threads()) <= tsa_threads_before


def tsa_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "auditkit-test-tsa"]


DEMO_SIGNER = "O=auditkit TEST ONLY,CN=auditkit demo signer (TEST ONLY)"
TEST_TSA = "O=auditkit TEST ONLY,CN=auditkit test TSA"


def verify_cli(pack: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["verify", str(pack), *extra])
    return result.exit_code, result.stdout, result.stderr


def test_demo_pack_is_signed_and_timestamped_with_the_test_key(demo: dict[str, Any]) -> None:
    out = demo["out"]
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "assessment-results.json",
        "audit_log.csv",
        "decisions.csv",
        "findings.csv",
        "manifest.json",
        "manifest.json.tsr",
        "messages.csv",
        "reconciliation.csv",
        "report.html",
        "report.pdf",
    ]
    signing = read_json(out / "manifest.json")["signing"]
    pdf = signing["pdf"]
    assert (pdf["profile"], pdf["signer"]) == ("PAdES-B-T", DEMO_SIGNER)
    assert pdf["document_timestamp"]["tsa"] == pdf["signature_timestamp"]["tsa"] == TEST_TSA
    assert signing["manifest_timestamp"]["tsa_url"].startswith("http://127.0.0.1:")
    # The manifest itself says the signature is test material, not evidence of who signed.
    assert signing["test_only"]["certificates"] == [DEMO_SIGNER, TEST_TSA]
    assert "TEST-ONLY" in signing["test_only"]["note"]
    assert "not who signed them" in signing["test_only"]["note"]
    assert demo["doc"]["signing"] == signing
    # Everything but the signed PDF and the manifest hashing it is what an unsigned run writes.
    rendered = (out / "report.pdf").read_bytes()[: pdf["unsigned"]["bytes"]]
    assert hashlib.sha256(rendered).hexdigest() == pdf["unsigned"]["sha256"]


def test_verify_demo_prints_the_signer_the_times_and_that_it_is_test_only(
    demo: dict[str, Any],
) -> None:
    """Without --trust: integrity only, exit 0, and a TEST ONLY line naming the test CA."""
    code, out, err = verify_cli(demo["out"])
    assert code == 0, (out, err)
    pdf = read_json(demo["out"] / "manifest.json")["signing"]["pdf"]
    lines = out.splitlines()
    assert lines[0].startswith("ok: 8 files match manifest.json (sha256 ")
    assert lines[2] == (
        f"report.pdf: signed by {DEMO_SIGNER} at {pdf['signed_at']} (PAdES-B-T); "
        "signature intact, signer not checked against a trust anchor"
    )
    assert lines[1].startswith(
        f"report.pdf: document timestamped {pdf['document_timestamp']['time']} by {TEST_TSA}"
    )
    assert lines[3].startswith(
        f"report.pdf: signature timestamped {pdf['signature_timestamp']['time']} by {TEST_TSA}"
    )
    assert lines[4].startswith("manifest.json.tsr: manifest.json timestamped 20")
    assert lines[5] == (
        f"TEST ONLY: the certificates of signer {DEMO_SIGNER} and TSA {TEST_TSA} are auditkit's "
        "test certificates, issued by O=auditkit TEST ONLY,CN=auditkit test CA, whose keys are "
        "public: the signature and timestamps show the files are unchanged since signing, not "
        "who signed or when; not trusted unless --trust names that CA"
    )
    assert len(lines) == 6
    body = json.loads(verify_cli(demo["out"], "--json")[1])
    assert body["ok"] and [s["test_only"] for s in body["signatures"]] == [True] * 4
    assert {s["issuer"] for s in body["signatures"]} == {"O=auditkit TEST ONLY,CN=auditkit test CA"}


def test_verify_demo_trusts_the_test_ca_only_when_told_to(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    ca = demo_pki().ca_cert
    code, out, _ = verify_cli(demo["out"], "--trust", str(ca))
    assert code == 0, out
    assert out.count("trusted: chains to O=auditkit TEST ONLY,CN=auditkit test CA") == 4
    assert out.splitlines()[-1].endswith(f"trusted only because --trust names a test CA ({ca})")
    other = make_test_pki(tmp_path / "other")
    code, out, _ = verify_cli(demo["out"], "--trust", str(other.ca_cert))
    assert code == 7, out
    assert f"invalid: report.pdf: signature auditkit-signature: signer {DEMO_SIGNER}" in out
    assert out.splitlines()[-1].endswith(f"not trusted by {other.ca_cert}")


def change_byte(path: Path, offset: int) -> None:
    """Change the byte at `offset`: a hex digit to another hex digit (a signature's /Contents
    stays hex, a manifest stays JSON), anything else by its lowest bit."""
    data = bytearray(path.read_bytes())
    if chr(data[offset]) in string.hexdigits:
        data[offset] = ord("1") if data[offset] == ord("0") else ord("0")
    else:
        data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _middle(path: Path) -> int:
    return path.stat().st_size // 2


def _in_signature(path: Path) -> int:
    """A hex digit of the last /Contents: the PAdES signature itself."""
    data = path.read_bytes()
    return data.rindex(b"/Contents <") + len(b"/Contents <") + 200


def _in_a_hash(path: Path) -> int:
    """A digit of messages.csv's SHA-256 in the manifest: still valid JSON afterwards."""
    data = path.read_bytes()
    entry = data.index(b'"path": "messages.csv"')
    return data.index(b'"sha256": "', entry) + len(b'"sha256": "') + 10


def _first(_path: Path) -> int:
    return 0  # the manifest's opening brace: no longer JSON at all


@pytest.mark.parametrize(
    ("name", "where", "named"),
    [
        ("report.pdf", _middle, {"report.pdf"}),
        ("report.pdf", _in_signature, {"report.pdf"}),
        ("messages.csv", _middle, {"messages.csv"}),
        ("decisions.csv", _middle, {"decisions.csv"}),
        ("findings.csv", _middle, {"findings.csv"}),
        ("audit_log.csv", _middle, {"audit_log.csv"}),
        # The manifest's timestamp shows it changed; the hash changed names its file too.
        ("manifest.json", _in_a_hash, {"manifest.json", "messages.csv"}),
        ("manifest.json", _first, {"manifest.json"}),
    ],
    ids=[
        "pdf",
        "pdf-signature",
        "messages",
        "decisions",
        "findings",
        "audit-log",
        "manifest",
        "manifest-not-json",
    ],
)
def test_one_changed_byte_in_the_demo_pack_exits_7_naming_the_file(
    demo: dict[str, Any], tmp_path: Path, name: str, where: Any, named: set[str]
) -> None:
    pack = tmp_path / "demo"
    shutil.copytree(demo["out"], pack)
    change_byte(pack / name, where(pack / name))
    code, out, err = verify_cli(pack)
    assert code == 7, (out, err)
    assert "does not match its manifest" in err
    problems = [
        line.removeprefix("altered: ").removeprefix("invalid: ")
        for line in out.splitlines()
        if not line.startswith(("report.pdf: ", "manifest.json.tsr: ", "TEST ONLY: "))
    ]
    assert {p.split(":")[0] for p in problems} == named, out
    if name == "manifest.json":
        assert "manifest.json: changed after it was timestamped" in out
    else:
        assert f"altered: {name}" in out.splitlines()
    if name == "report.pdf":  # its signature no longer verifies either
        assert "invalid: report.pdf: signature" in out


def test_messages_csv_dkim_columns_agree_with_id_001(demo: dict[str, Any]) -> None:
    out = demo["out"]
    with (out / "messages.csv").open(encoding="utf-8", newline="") as fh:
        messages = {r["message_id"]: r for r in csv.DictReader(fh)}
    with (out / "findings.csv").open(encoding="utf-8", newline="") as fh:
        id_001 = {
            r["target_id"]: json.loads(r["evidence"])
            for r in csv.DictReader(fh)
            if r["control_id"] == "ID-001"
        }
    for email_id, evidence in id_001.items():
        row = messages[email_id]
        assert (row["dkim_status"], row["dkim_source"]) == (
            evidence["dkim_status"],
            evidence["dkim_source_kind"],
        )
    delivered_passing = {
        i for i, r in messages.items() if r["delivered_at"] and r["dkim_status"] == "pass"
    }
    assert not delivered_passing & set(id_001)
    # Every archived email in the quarter now takes its DKIM column from the independent
    # verification (one archived copy was created on 1 October: outside 2026Q3).
    archived = read_json(SAMPLE_DATA / "archive" / "expected.json")["messages"]
    in_quarter = [m for m in archived if m["email_id"] in messages]
    assert len(in_quarter) == len(archived) - 1
    for m in in_quarter:
        assert messages[m["email_id"]]["dkim_source"] == "archive"
        assert messages[m["email_id"]]["dkim_status"] == m["dkim_result"]


def test_run_takes_archive_and_keys(
    sandbox: Any, tmp_path: Path, harvested_sample_quarter: Path
) -> None:
    """`auditkit run --archive PATH --keys FILE` verifies a journal export in a cron run.

    The store starts as a copy of the harvested sample quarter, as a cron run finds it, so
    the run's own harvest is the incremental one."""
    db = tmp_path / "a.duckdb"
    shutil.copy(harvested_sample_quarter, db)
    config = tmp_path / "auditkit.toml"
    config.write_text((SAMPLE_DATA / "auditkit.toml").read_text(encoding="utf-8"), "utf-8")
    env = {
        "MULTIMAIL_API_URL": sandbox.base_url,
        "MULTIMAIL_API_KEY": MM_KEY,
        "INTERCOM_API_URL": sandbox.base_url,
        "INTERCOM_ACCESS_TOKEN": IC_TOKEN,
    }
    runner = CliRunner()
    args = [
        "run",
        "--period",
        "2026Q3",
        "--out",
        str(tmp_path / "packs"),
        "--config",
        str(config),
        "--db",
        str(db),
        "--json",
    ]
    no_archive = runner.invoke(
        cli, [*args[:-1], "--keys", str(SAMPLE_DATA / "dns" / "keys.txt")], env=env
    )
    assert no_archive.exit_code == 3 and "--archive" in no_archive.output
    result = runner.invoke(
        cli,
        [
            *args,
            "--archive",
            str(SAMPLE_DATA / "archive" / "eml"),
            "--keys",
            str(SAMPLE_DATA / "dns" / "keys.txt"),
        ],
        env=env,
    )
    assert result.exit_code == 10, result.output  # planted violations fail controls
    doc = json.loads(result.stdout)
    assert doc["archive"]["messages"] == len(list((SAMPLE_DATA / "archive" / "eml").glob("*.eml")))
    assert {"ID-001", "ID-002", "ID-003"} <= set(doc["failing_controls"])


if __name__ == "__main__":  # rewrite the committed file after the sample data changes
    (SAMPLE_DATA / "expected_demo_findings.json").write_text(
        render(expected_demo_findings()), encoding="utf-8"
    )
