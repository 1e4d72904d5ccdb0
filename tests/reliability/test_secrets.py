"""The fake MultiMail key and Intercom token never leak: not on stdout/stderr (at -vv, text and
JSON logs, error paths), not in any DuckDB table (every row as text, raw JSON included), not in
the store files' bytes, and not in any pack file (raw bytes and extracted PDF text)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader

from tests.conftest import IC_TOKEN, MM_KEY
from tests.reliability.conftest import DEMO_SECRET_RE, Workspace

NEEDLES = [s.encode() for s in (MM_KEY, IC_TOKEN)]
# The distinctive middle of each secret catches a truncated or re-quoted copy as well.
NEEDLES += [b"SECRET_k3y_do_not_leak", b"SECRET_t0ken_do_not_leak"]


def leaks(data: bytes) -> list[str]:
    found = [n.decode() for n in NEEDLES if n in data]
    found += [m.group(0).decode() for m in DEMO_SECRET_RE.finditer(data)]
    return found


def test_refused_key_is_an_upstream_error_without_the_key(workspace: Workspace) -> None:
    refused = workspace.outputs["harvest-refused"]
    assert refused.returncode == 4
    assert [line for line in refused.stderr.splitlines() if line.startswith("Error:")], (
        refused.stderr[-2000:]
    )
    assert "Traceback" in workspace.outputs["harvest-refused-debug"].stderr


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


@pytest.mark.parametrize("secret", [MM_KEY, IC_TOKEN])
def test_the_scan_would_catch_a_leak(secret: str) -> None:
    assert leaks(f"Authorization: Bearer {secret}".encode())
    assert leaks(b'{"api_key": "mm_test_0123456789abcdef01234567"}')
