"""The fake MultiMail key and Intercom token, the pack-signing key and its password never
leak: not on stdout/stderr (at -vv, text and JSON logs, error paths), not in any DuckDB table
(every row as text, raw JSON included), not in the store files' bytes, and not in any pack
file (raw bytes and extracted PDF text)."""

from __future__ import annotations

import base64
from pathlib import Path

import duckdb
import pytest
from cryptography.hazmat.primitives import serialization
from pypdf import PdfReader

from tests.conftest import IC_TOKEN, MM_KEY
from tests.reliability.conftest import DEMO_SECRET_RE, SIGNING_PASSWORD, Workspace

# Every test reads the session's workspace: a dozen CLI runs, end to end.
pytestmark = pytest.mark.slow

NEEDLES = [s.encode() for s in (MM_KEY, IC_TOKEN, SIGNING_PASSWORD)]
# The distinctive middle of each secret catches a truncated or re-quoted copy as well.
NEEDLES += [b"SECRET_k3y_do_not_leak", b"SECRET_t0ken_do_not_leak", b"SECRET_sign1ng_pw"]
KEY_NEEDLES: list[bytes] = []  # pieces of the session's signing key, filled by `key_needles`


def leaks(data: bytes) -> list[str]:
    found = [n.decode() for n in NEEDLES if n in data]
    found += [f"signing key bytes {n[:8]!r}..." for n in KEY_NEEDLES if n in data]
    found += [m.group(0).decode() for m in DEMO_SECRET_RE.finditer(data)]
    return found


@pytest.fixture(autouse=True)
def key_needles(workspace: Workspace) -> None:
    """The signing key as it could leak: its PEM lines (encrypted file), its DER and base64
    (decrypted), its private exponent (bytes and hex)."""
    if KEY_NEEDLES:
        return
    pem = workspace.pki.signer_key.read_bytes()
    key = serialization.load_pem_private_key(pem, SIGNING_PASSWORD.encode())
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    exponent = key.private_numbers().d.to_bytes(256, "big")  # type: ignore[union-attr]
    KEY_NEEDLES.extend([line for line in pem.splitlines() if len(line) == 64][1:5])
    KEY_NEEDLES.extend([der[40:72], base64.b64encode(der)[80:140], exponent[:24]])
    KEY_NEEDLES.append(exponent.hex()[:48].encode())


def test_refused_key_is_an_upstream_error_without_the_key(workspace: Workspace) -> None:
    refused = workspace.outputs["harvest-refused"]
    assert refused.returncode == 4
    assert [line for line in refused.stderr.splitlines() if line.startswith("Error:")], (
        refused.stderr[-2000:]
    )
    assert "Traceback" in workspace.outputs["harvest-refused-debug"].stderr


def test_wrong_signing_password_is_one_line_without_the_key(workspace: Workspace) -> None:
    wrong = workspace.outputs["report-wrong-password"]
    assert [line for line in wrong.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: signing key {workspace.pki.signer_key}: the password in "
        "AUDITKIT_SIGNING_KEY_PASSWORD does not decrypt it"
    ]
    assert "Traceback" in workspace.outputs["report-wrong-password-debug"].stderr
    assert not (workspace.root / "never").exists()


def test_signed_packs_carry_the_signer_not_the_key(workspace: Workspace) -> None:
    for pack in (workspace.report, workspace.evidence, workspace.out_root / "2026Q3"):
        manifest = (pack / "manifest.json").read_text(encoding="utf-8")
        assert "auditkit test signer" in manifest, pack
    assert (workspace.report / "manifest.json.tsr").is_file()
    assert (workspace.evidence / "manifest.json.tsr").is_file()


def test_no_secret_in_any_command_output(workspace: Workspace) -> None:
    assert set(workspace.outputs) >= {
        "harvest",
        "check",
        "report",
        "evidence",
        "status",
        "run",
        "demo",
        "harvest-refused",
        "harvest-refused-debug",
        "report-wrong-password",
        "report-wrong-password-debug",
    }
    assert "DEBUG" in workspace.outputs["harvest"].stderr, "-vv must really log at debug level"
    assert '"level": "debug"' in workspace.outputs["run"].stderr
    for label, done in workspace.outputs.items():
        assert leaks(done.stdout.encode()) == [], f"{label} stdout"
        assert leaks(done.stderr.encode()) == [], f"{label} stderr"


def dump_tables(store: Path) -> tuple[int, bytes]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        ]
        text = []
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
                text.append(f"{table}\t" + "\t".join(map(str, row)))
    finally:
        con.close()
    return len(tables), "\n".join(text).encode("utf-8", "surrogatepass")


def test_no_secret_in_any_store_table_or_file(workspace: Workspace) -> None:
    scanned = 0
    for store in workspace.stores:
        n_tables, dump = dump_tables(store)
        assert n_tables >= 10 and b"harvest_runs" in dump and b"multimail_emails" in dump
        assert leaks(dump) == [], store
        for path in (store, Path(f"{store}.wal")):
            if path.exists():
                assert leaks(path.read_bytes()) == [], path
                scanned += path.stat().st_size
    assert scanned > 0


def test_no_secret_in_any_pack_file(workspace: Workspace) -> None:
    files = 0
    for pack in workspace.packs:
        for path in sorted(pack.rglob("*")):
            if not path.is_file():
                continue
            files += 1
            assert leaks(path.read_bytes()) == [], path
            # PDF text streams are compressed: extract the text of two packs' PDFs (the others
            # come from the same template over the same data, at the cost of seconds each).
            if path.suffix == ".pdf" and pack in (
                workspace.evidence,
                workspace.out_root / "2026Q3",
            ):
                text = "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
                assert "Northwind" in text, (
                    "PDF text extraction must work for the scan to mean anything"
                )
                assert leaks(text.encode()) == [], path
    assert files >= 4 * 7


def test_the_scan_would_catch_a_leaked_key(workspace: Workspace) -> None:
    assert leaks(workspace.pki.signer_key.read_bytes())  # the encrypted PEM itself
    assert len(KEY_NEEDLES) >= 8 and all(len(n) >= 24 for n in KEY_NEEDLES)
    assert leaks(b"x" + KEY_NEEDLES[-1] + b"y")


@pytest.mark.parametrize("secret", [MM_KEY, IC_TOKEN, SIGNING_PASSWORD])
def test_the_scan_would_catch_a_leak(secret: str) -> None:
    assert leaks(f"Authorization: Bearer {secret}".encode())
    assert leaks(b'{"api_key": "mm_test_0123456789abcdef01234567"}')
