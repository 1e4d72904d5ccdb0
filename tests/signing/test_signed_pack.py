"""A signed, timestamped pack: what it holds, that its PDF's first revision(s) are the unsigned
render byte for byte, that `verify` reports who signed and when (and claims trust only
against anchors it was given), that the README's outside-auditkit commands accept it, and
that changing any file exits 7 naming that file."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyhanko.pdf_utils.reader import PdfFileReader

from auditkit.cli import cli
from auditkit.devtools.tsa import TestPki, TsaServer, make_test_pki
from auditkit.pack import check_replaceable, verify_pack
from auditkit.signing.settings import load_trust
from tests.signing.conftest import signer, write

# Every test here signs, verifies or tampers with a rendered pack.
pytestmark = pytest.mark.pdf

OUTSIDE = "signed by O=auditkit TEST ONLY,CN=auditkit test signer"


def verify_cli(pack: Path, *extra: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["verify", str(pack), *extra])
    return result.exit_code, result.stdout, result.stderr


def test_pack_lists_the_signed_pdf_and_records_the_signature(signed_pack: Path) -> None:
    names = sorted(p.name for p in signed_pack.iterdir())
    assert "manifest.json.tsr" in names and "report.pdf" in names
    manifest = json.loads((signed_pack / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f for f in manifest["files"]}
    assert "manifest.json.tsr" not in listed  # it covers the manifest: it cannot be in it
    pdf = (signed_pack / "report.pdf").read_bytes()
    assert listed["report.pdf"]["sha256"] == hashlib.sha256(pdf).hexdigest()  # signed bytes
    record = manifest["signing"]["pdf"]
    assert record["profile"] == "PAdES-B-T"
    assert record["signer"] == "O=auditkit TEST ONLY,CN=auditkit test signer"
    assert len(record["signer_certificate_sha256"]) == 64
    for stamp in ("signature_timestamp", "document_timestamp"):
        assert record[stamp]["tsa"] == "O=auditkit TEST ONLY,CN=auditkit test TSA"
        assert record[stamp]["time"].endswith("Z")
    assert manifest["signing"]["manifest_timestamp"]["file"] == "manifest.json.tsr"


def test_first_revision_is_the_unsigned_render_byte_for_byte(
    signed_pack: Path, unsigned_pack: Path
) -> None:
    unsigned = (unsigned_pack / "report.pdf").read_bytes()
    signed = (signed_pack / "report.pdf").read_bytes()
    first_eof = signed.index(b"%%EOF") + len(b"%%EOF")
    assert signed[:first_eof] == unsigned[:first_eof]  # the first revision, to its %%EOF
    assert unsigned.rstrip().endswith(b"%%EOF")
    assert signed.startswith(unsigned)  # all of it, trailing newline too: updates only append
    assert len(signed) > len(unsigned)
    manifest = json.loads((signed_pack / "manifest.json").read_text(encoding="utf-8"))
    first = manifest["signing"]["pdf"]["unsigned"]
    assert first == {"bytes": len(unsigned), "sha256": hashlib.sha256(unsigned).hexdigest()}
    # Every other file of the pack is the unsigned pack's, byte for byte.
    for name in ("messages.csv", "decisions.csv", "findings.csv", "audit_log.csv", "report.html"):
        assert (signed_pack / name).read_bytes() == (unsigned_pack / name).read_bytes(), name
    rendered = PdfFileReader(io.BytesIO(unsigned)).xrefs.total_revisions
    reader = PdfFileReader(io.BytesIO(signed))
    # The render, then a document timestamp, then the signature (last).
    assert reader.xrefs.total_revisions == rendered + 2
    kinds = {s.field_name: s.signed_revision for s in reader.embedded_signatures}
    assert kinds == {"auditkit-document-timestamp": rendered, "auditkit-signature": rendered + 1}


def test_signing_leaves_the_document_metadata_as_rendered(
    signed_pack: Path, unsigned_pack: Path
) -> None:
    """No signing-time ModDate, no Producer that the XMP and the Info dictionary disagree
    on (PDF/A requires them to match)."""
    from pypdf import PdfReader

    before, after = (PdfReader(p / "report.pdf") for p in (unsigned_pack, signed_pack))
    assert dict(after.metadata or {}) == dict(before.metadata or {})
    xmp_before, xmp_after = before.xmp_metadata, after.xmp_metadata
    if xmp_before is not None:
        assert xmp_after is not None
        assert xmp_after.stream.get_data() == xmp_before.stream.get_data()


def test_verify_says_who_signed_and_when_without_claiming_trust(signed_pack: Path) -> None:
    code, out, err = verify_cli(signed_pack)
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert re.match(r"ok: \d+ files match manifest\.json \(sha256 [0-9a-f]{64}\)$", lines[0])
    manifest = json.loads((signed_pack / "manifest.json").read_text(encoding="utf-8"))
    record = manifest["signing"]["pdf"]
    stamp, signature, signature_stamp, token, test_only = lines[1:]
    assert signature == (
        f"report.pdf: {OUTSIDE} at {record['signed_at']} (PAdES-B-T); "
        "signature intact, signer not checked against a trust anchor"
    )
    assert f"report.pdf: document timestamped {record['document_timestamp']['time']}" in stamp
    assert f"signature timestamped {record['signature_timestamp']['time']}" in signature_stamp
    assert token.startswith("manifest.json.tsr: manifest.json timestamped ")
    for line in (stamp, signature_stamp, token):
        assert "token intact, TSA not checked against a trust anchor" in line
    assert "trusted" not in "\n".join(lines[:5]).replace("not checked", "")
    # The throwaway PKI is auditkit's test material, and verify says so (tests/signing/
    # test_test_only.py has the rest).
    assert test_only.startswith(
        "TEST ONLY: the certificates of signer O=auditkit TEST ONLY,CN=auditkit test signer "
        "and TSA O=auditkit TEST ONLY,CN=auditkit test TSA are auditkit's test certificates"
    )
    assert err == ""  # pyHanko's path-building warnings stay out of the user's way


def test_verify_json_lists_each_signature_and_token(signed_pack: Path) -> None:
    code, out, _ = verify_cli(signed_pack, "--json")
    assert code == 0
    body = json.loads(out)
    assert body["ok"] is True and body["invalid"] == []
    kinds = [(s["file"], s["kind"], s["trust"]) for s in body["signatures"]]
    assert kinds == [
        ("report.pdf", "document_timestamp", "not_checked"),
        ("report.pdf", "signature", "not_checked"),
        ("report.pdf", "signature_timestamp", "not_checked"),
        ("manifest.json.tsr", "manifest_timestamp", "not_checked"),
    ]
    assert body["signatures"][1]["signer"].endswith("CN=auditkit test signer")
    assert all(s["intact"] and s["time"] for s in body["signatures"])


def test_verify_with_the_ca_as_trust_anchor_says_trusted(signed_pack: Path, pki: TestPki) -> None:
    code, out, _ = verify_cli(signed_pack, "--trust", str(pki.ca_cert))
    assert code == 0, out
    (signature,) = [line for line in out.splitlines() if "signed by" in line]
    anchor = "O=auditkit TEST ONLY,CN=auditkit test CA"
    assert f"signature intact, signer trusted: chains to {anchor}" in signature
    assert str(pki.ca_cert) in signature and "revocation not checked" in signature
    assert out.count("TSA trusted: chains to") == 3


def test_verify_against_another_ca_exits_7_naming_the_files(
    signed_pack: Path, tmp_path: Path
) -> None:
    other = make_test_pki(tmp_path / "other")
    code, out, err = verify_cli(signed_pack, "--trust", str(other.ca_cert))
    assert code == 7
    assert "invalid: report.pdf: signature auditkit-signature: signer" in out
    assert "does not chain to a trust anchor" in out
    assert "invalid: manifest.json.tsr: timestamp token: TSA" in out
    assert "signature or timestamp problem(s)" in err


def test_verify_trust_given_for_an_unsigned_pack_fails(unsigned_pack: Path, pki: TestPki) -> None:
    assert verify_cli(unsigned_pack)[0] == 0
    code, out, _ = verify_cli(unsigned_pack, "--trust", str(pki.ca_cert))
    assert code == 7 and "report.pdf: not signed or timestamped" in out


def test_openssl_ts_verify_accepts_the_manifest_token(signed_pack: Path, pki: TestPki) -> None:
    """The README's command, exactly (run in the pack folder)."""
    shutil.copy(pki.ca_cert, signed_pack.parent / "ca.pem")
    argv = "openssl ts -verify -data manifest.json -in manifest.json.tsr -CAfile ../ca.pem"
    done = subprocess.run(argv.split(), cwd=signed_pack, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Verification: OK" in done.stdout
    (signed_pack / "manifest.json").write_bytes(
        (signed_pack / "manifest.json").read_bytes().replace(b"2026Q3", b"2026Q4", 1)
    )
    changed = subprocess.run(argv.split(), cwd=signed_pack, capture_output=True, text=True)
    assert changed.returncode != 0 and "Verification: FAILED" in changed.stdout


def _pyhanko() -> str:
    found = Path(sys.executable).with_name("pyhanko")
    if found.exists():
        return str(found)
    which = shutil.which("pyhanko")
    assert which, "pyhanko-cli is a test dependency (pyproject [test])"
    return which


def test_pyhanko_cli_validates_the_pdf(signed_pack: Path, pki: TestPki) -> None:
    """The README's command: `pyhanko sign validate --pretty-print --trust ca.pem
    --trust-replace report.pdf`."""
    shutil.copy(pki.ca_cert, signed_pack.parent / "ca.pem")
    argv = [_pyhanko(), "sign", "validate", "--pretty-print", "--trust", "../ca.pem"]
    argv += ["--trust-replace", "report.pdf"]
    done = subprocess.run(argv, cwd=signed_pack, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The signature is judged VALID." in done.stdout
    assert "auditkit test signer" in done.stdout and "The TSA certificate is trusted." in (
        done.stdout
    )


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("report.pdf", "unsigned bytes"),
        ("report.pdf", "signature"),
        ("report.pdf", "last byte"),
        ("manifest.json", "value"),
        ("manifest.json", "syntax"),
        ("manifest.json.tsr", "token"),
        ("messages.csv", "middle"),
        ("report.html", "middle"),
    ],
)
def test_changing_any_file_exits_7_naming_it(signed_pack: Path, name: str, where: str) -> None:
    path = signed_pack / name
    data = path.read_bytes()
    at = {
        "unsigned bytes": 1000,
        "signature": data.find(b"/Contents <") + 200,
        "last byte": len(data) - 3,
        "value": data.find(b'"2026Q3"') + 5,
        "syntax": 0,  # "{" -> "z": not JSON any more
        "token": len(data) // 2,
        "middle": len(data) // 2,
    }[where]
    _flip(path, at)
    code, out, err = verify_cli(signed_pack)
    assert code == 7, (out, err)
    problems = [
        line
        for line in out.splitlines()
        if line.startswith(("altered: ", "added: ", "removed: ", "invalid: ", f"{name}: changed"))
    ]
    assert any(name in line for line in problems), out


def test_every_byte_of_the_manifest_token_counts(signed_pack: Path) -> None:
    """The token's envelope is outside its signature; each of its bytes is checked anyway."""
    from auditkit.signing.verify import verify_signing

    tsr = signed_pack / "manifest.json.tsr"
    original = tsr.read_bytes()
    manifest = json.loads((signed_pack / "manifest.json").read_text(encoding="utf-8"))
    meta = {"signing": {"manifest_timestamp": manifest["signing"]["manifest_timestamp"]}}
    data = (signed_pack / "manifest.json").read_bytes()
    (signed_pack / "report.pdf").unlink()  # only the token is under test here
    trust = load_trust()
    assert verify_signing(signed_pack, meta, data, trust).problems == []
    missed = []
    for at in range(len(original)):
        flipped = bytearray(original)
        flipped[at] ^= 0x01
        tsr.write_bytes(bytes(flipped))
        if not verify_signing(signed_pack, meta, data, trust).problems:
            missed.append(at)
    assert missed == []


def test_a_removed_token_is_named(signed_pack: Path) -> None:
    (signed_pack / "manifest.json.tsr").unlink()
    result = verify_pack(signed_pack)
    assert result.invalid == (
        "manifest.json.tsr: removed: the manifest records a timestamp over manifest.json",
    )


def test_a_revision_appended_after_the_signature_is_named(
    signed_pack: Path, live_tsa: TsaServer
) -> None:
    """Even a well-formed, validly timestamped update: auditkit signs last, so nothing may
    follow its signature (whatever the manifest says: it may have been rewritten too)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.timestamps import HTTPTimeStamper

    pdf = signed_pack / "report.pdf"
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf.read_bytes()))
    stamper = signers.PdfTimeStamper(HTTPTimeStamper(live_tsa.url), field_name="later")
    pdf.write_bytes(stamper.timestamp_pdf(writer, "sha256").getvalue())
    from auditkit.signing.verify import verify_signing

    manifest = json.loads((signed_pack / "manifest.json").read_text(encoding="utf-8"))
    data = (signed_pack / "manifest.json").read_bytes()
    problems = verify_signing(signed_pack, manifest, data, load_trust()).problems
    assert sorted(problems) == [
        "report.pdf: carries a signature the manifest does not record (later)",
        "report.pdf: changed after its signature auditkit-signature: bytes follow what it signs",
    ]
    assert verify_pack(signed_pack).altered == ("report.pdf",)


def test_timestamp_only_pack(tmp_path: Path, tsa: TsaServer) -> None:
    """--tsa-url without a key: a document timestamp on report.pdf and manifest.json.tsr."""
    from auditkit.signing.settings import SigningOptions
    from auditkit.signing.sign import PackSigner

    pack = write(tmp_path / "pack", PackSigner.load(SigningOptions(tsa_url=tsa.url)))
    record = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))["signing"]["pdf"]
    assert "signer" not in record and record["document_timestamp"]["tsa"].endswith("test TSA")
    code, out, _ = verify_cli(pack)
    assert code == 0 and "report.pdf: document timestamped" in out and "signed by" not in out


def test_a_signed_pack_is_replaceable_and_b_b_has_no_token(signed_pack: Path, pki: TestPki) -> None:
    check_replaceable(signed_pack)  # manifest.json.tsr is the manifest's, not a stranger
    write(signed_pack, signer(pki))  # PAdES B-B over the old B-T pack
    assert not (signed_pack / "manifest.json.tsr").exists()
    manifest = json.loads((signed_pack / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["signing"]) == {"pdf", "test_only"}  # no manifest_timestamp
    assert manifest["signing"]["test_only"]["certificates"] == [OUTSIDE.removeprefix("signed by ")]
    assert manifest["signing"]["pdf"]["profile"] == "PAdES-B-B"
    code, out, _ = verify_cli(signed_pack)
    assert code == 0 and "(PAdES-B-B)" in out and "timestamped" not in out


def test_verifying_an_unsigned_pack_does_not_load_pyhanko(unsigned_pack: Path) -> None:
    code = (
        "import sys; from auditkit.pack import verify_pack; "
        f"assert verify_pack({str(unsigned_pack)!r}).ok; print('pyhanko' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_the_system_trust_store_does_not_know_a_throwaway_ca(signed_pack: Path) -> None:
    code, out, _ = verify_cli(signed_pack, "--trust-system")
    assert code == 7
    assert "signer NOT trusted by the system trust store (" in out
