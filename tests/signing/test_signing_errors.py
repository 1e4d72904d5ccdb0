"""Signing failures: a bad key or certificate exits 3 in one line before any work and writes
nothing; a TSA that is down, refuses or answers garbage exits 4 in one line (before any
work when it fails its check, and also when it fails later), leaves the previous pack as it
was and no staging folder; key material and passwords reach no output,
log or pack file."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization

from auditkit.cli import cli
from auditkit.devtools.tsa import TestPki, TsaServer
from auditkit.errors import SourceError
from auditkit.pack import verify_pack
from auditkit.signing.sign import PackSigner
from auditkit.signing.tsa import fetch_timestamp
from tests.signing.conftest import KEY_PASSWORD, signer, write


def report(store: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    args = ["-vv", "report", "--db", str(store), "--period", "2026Q3", "--out", str(out)]
    return CliRunner().invoke(cli, [*args, *extra], env=env)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def key_needles(pki: TestPki, password: str | None = None) -> list[bytes]:
    """Recognisable pieces of the private key (PEM lines, DER, the RSA private exponent)."""
    pem = pki.signer_key.read_bytes()
    key = serialization.load_pem_private_key(pem, password.encode() if password else None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    lines = [line for line in pem.splitlines() if len(line) == 64]
    d = key.private_numbers().d.to_bytes(256, "big")  # type: ignore[union-attr]
    needles = [*lines[1:4], der[40:80], d[:32], base64.b64encode(der)[100:160]]
    needles.append(d.hex()[:40].encode())
    return needles + ([password.encode()] if password else [])


@pytest.mark.parametrize(
    "case", ["mismatched pair", "garbage key", "garbage cert", "no password", "wrong password"]
)
def test_bad_key_or_cert_exits_3_before_any_work(
    case: str, pki: TestPki, encrypted_pki: TestPki, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    key, cert, env = {
        "mismatched pair": (pki.signer_key, encrypted_pki.signer_cert, {}),
        "garbage key": (garbage, pki.signer_cert, {}),
        "garbage cert": (pki.signer_key, garbage, {}),
        "no password": (encrypted_pki.signer_key, encrypted_pki.signer_cert, {}),
        "wrong password": (
            encrypted_pki.signer_key,
            encrypted_pki.signer_cert,
            {"AUDITKIT_SIGNING_KEY_PASSWORD": KEY_PASSWORD[::-1]},
        ),
    }[case]
    missing_store = tmp_path / "no-store-yet.duckdb"  # reading the store would fail otherwise
    out = tmp_path / "pack"
    result = report(missing_store, out, "--sign-key", str(key), "--sign-cert", str(cert), env=env)
    assert result.exit_code == 3, result.output
    (line,) = error_lines(result)
    assert str(key if "cert" not in case else cert) in line
    assert not out.exists() and not missing_store.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pem"]  # no staging folder
    for needle in key_needles(encrypted_pki, KEY_PASSWORD) + key_needles(pki):
        assert needle not in result.output.encode()


@pytest.mark.pdf
def test_encrypted_key_signs_with_its_password_and_nothing_leaks(
    encrypted_pki: TestPki, store_file: Path, tmp_path: Path, live_tsa: TsaServer
) -> None:
    out = tmp_path / "pack"
    env = {"MY_SIGNING_PW": KEY_PASSWORD}
    flags = ["--sign-key", str(encrypted_pki.signer_key), "--sign-cert"]
    flags += [str(encrypted_pki.signer_cert), "--sign-key-password-env", "MY_SIGNING_PW"]
    result = report(store_file, out, *flags, "--tsa-url", live_tsa.url, "--json", env=env)
    assert result.exit_code == 0, result.output
    assert '"profile": "PAdES-B-T"' in result.stdout
    assert "DEBUG" in result.stderr  # -vv really logged
    needles = key_needles(encrypted_pki, KEY_PASSWORD)
    for needle in needles:
        assert needle not in result.output.encode(), needle
        for path in out.iterdir():
            assert needle not in path.read_bytes(), (path.name, needle)
    assert verify_pack(out).ok


@pytest.mark.pdf  # signed_pack_master renders one, once
@pytest.mark.parametrize("how", ["down", "garbage", "reject", "error"])
def test_failing_tsa_exits_4_before_any_work_and_keeps_the_previous_pack(
    how: str,
    pki: TestPki,
    store_file: Path,
    tmp_path: Path,
    live_tsa: TsaServer,
    signed_pack_master: Path,
) -> None:
    """The TSA is asked before the store is read, so a broken one costs no rendering."""
    out = tmp_path / "reports" / "2026Q3"
    shutil.copytree(signed_pack_master, out)  # the previous pack, signed and timestamped
    before = snapshot(out)
    url = "http://127.0.0.1:9/tsa" if how == "down" else live_tsa.url
    if how != "down":
        live_tsa.mode = how  # type: ignore[assignment]
    result = report(store_file, out, "--sign-key", str(pki.signer_key), "--sign-cert",
                    str(pki.signer_cert), "--tsa-url", url)  # fmt: skip
    assert result.exit_code == 4, result.output
    (line,) = error_lines(result)
    assert "time-stamping authority" in line and url in line
    assert {
        "down": "could not be reached",
        "garbage": "not a valid RFC 3161 timestamp",
        "reject": "refused the request (rejection: policy says no (test))",
        "error": "answered HTTP 500",
    }[how] in line
    assert "pack:" not in result.stderr  # no phase of the pack was reached
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["2026Q3"]  # no stage left


def test_the_tsa_is_checked_once_per_signer_and_only_when_there_is_one(
    pki: TestPki, live_tsa: TsaServer
) -> None:
    before = live_tsa.requests
    with_tsa = signer(pki, live_tsa.url)
    with_tsa.check_tsa()
    with_tsa.check_tsa()
    signer(pki).check_tsa()  # no TSA: nothing to ask
    assert live_tsa.requests == before + 1


@pytest.mark.pdf
def test_tsa_failing_after_its_check_exits_4_and_keeps_the_previous_pack(
    pki: TestPki,
    store_file: Path,
    tmp_path: Path,
    live_tsa: TsaServer,
    signed_pack_master: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TSA answers the check, then fails at the PDF signature's timestamp, after the
    pack is rendered."""
    out = tmp_path / "reports" / "2026Q3"
    shutil.copytree(signed_pack_master, out)
    before = snapshot(out)
    real = PackSigner.check_tsa

    def then_error(self: PackSigner) -> None:
        real(self)
        live_tsa.mode = "error"

    monkeypatch.setattr(PackSigner, "check_tsa", then_error)
    result = report(store_file, out, "--sign-key", str(pki.signer_key), "--sign-cert",
                    str(pki.signer_cert), "--tsa-url", live_tsa.url)  # fmt: skip
    assert result.exit_code == 4, result.output
    (line,) = error_lines(result)
    assert f"time-stamping authority {live_tsa.url} answered HTTP 500" in line
    assert "pack: PDF rendered" in result.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["2026Q3"]


@pytest.mark.pdf
def test_tsa_failing_at_the_manifest_token_leaves_nothing_half_signed(
    pki: TestPki, tmp_path: Path, live_tsa: TsaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PDF is signed and timestamped, the manifest written, then the TSA breaks."""
    out = write(tmp_path / "pack", signer(pki))  # a previous, B-B pack
    before = snapshot(out)
    real = PackSigner.timestamp_manifest

    def then_garbage(self: PackSigner, pack_dir: Path) -> None:
        assert (pack_dir / "manifest.json").is_file()  # the order: manifest, then its token
        live_tsa.mode = "garbage"
        real(self, pack_dir)

    monkeypatch.setattr(PackSigner, "timestamp_manifest", then_garbage)
    with pytest.raises(SourceError, match="not a valid RFC 3161 timestamp"):
        write(out, signer(pki, live_tsa.url))
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack"]


def test_run_loads_the_key_before_the_harvest(tmp_path: Path, encrypted_pki: TestPki) -> None:
    env = {
        "AUDITKIT_SIGNING_KEY_FILE": str(encrypted_pki.signer_key),
        "AUDITKIT_SIGNING_CERT_FILE": str(encrypted_pki.signer_cert),
        "MULTIMAIL_API_URL": "http://127.0.0.1:9",  # never asked: the key fails first
        "MULTIMAIL_API_KEY": "mm_test_unused",
    }
    db = tmp_path / "run.duckdb"
    args = ["run", "--db", str(db), "--out", str(tmp_path / "packs"), "--period", "2026Q3"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 3, result.output
    (line,) = error_lines(result)
    assert "is encrypted; give its password in AUDITKIT_SIGNING_KEY_PASSWORD" in line
    assert not db.exists() and not (tmp_path / "packs").exists()


@pytest.mark.pdf
def test_evidence_signs_too(pki: TestPki, store_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    args = ["evidence", "em-01", "--db", str(store_file), "--out", str(out)]
    args += ["--sign-key", str(pki.signer_key), "--sign-cert", str(pki.signer_cert)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    signed = r"signed: +report\.pdf by .*CN=auditkit test signer \(PAdES-B-B\)"
    assert re.search(signed, result.stdout)
    assert verify_pack(out).signatures[0]["kind"] == "signature"


@pytest.mark.pdf
def test_a_copied_signed_pack_still_verifies(
    pki: TestPki, tmp_path: Path, signed_pack_master: Path
) -> None:
    """Nothing in a pack depends on where it was written (auditors move packs)."""
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(signed_pack_master, moved)
    assert verify_pack(moved).ok


def test_tsa_ignores_proxy_variables_like_the_harvest(
    live_tsa: TsaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auditkit connects directly (as its MultiMail and Intercom clients do): a proxy in the
    environment, here one that refuses every connection, must not stand between it and the
    TSA. This once made `make demo` exit 4 on a machine with HTTP_PROXY set."""
    dead_proxy = "http://127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    token = fetch_timestamp(live_tsa.url, hashlib.sha256(b"pack").digest(), "sha256", 10.0)
    assert token.tsa
