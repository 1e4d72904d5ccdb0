"""Start-up stays cheap: `--help`, `--version` and `status` must not import the heavy
libraries (pyarrow, numpy, pandas, WeasyPrint, httpx, pyHanko, Jinja2) that only the
commands doing real work need. Asserted on the set of modules imported, read from
`python -X importtime`, never on a time: the suite runs on a busy machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditkit.store import Store

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pyarrow", "numpy", "pandas", "weasyprint", "httpx", "pyhanko", "jinja2")


def imported_modules(*args: str, cwd: Path = ROOT) -> set[str]:
    """Every module `python -m auditkit ARGS` imports (from the worktree: cwd wins)."""
    env = {k: v for k, v in os.environ.items() if k not in ("AUDITKIT_CONFIG", "AUDITKIT_DB")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "auditkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    modules.discard("package")  # the header line
    assert "auditkit.cli" in modules, "importtime output not understood"
    return modules


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("report", "--help")])
def test_help_and_version_import_no_heavy_library(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert heavy_in(modules) == []
    # Nor the store or the controls: listing commands must not even load DuckDB.
    assert "duckdb" not in modules
    assert not {"auditkit.store", "auditkit.controls", "auditkit.report"} & modules


def test_status_needs_duckdb_alone(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with Store(db):
        pass
    modules = imported_modules("status", "--db", str(db))
    assert "duckdb" in modules and "auditkit.store" in modules
    assert heavy_in(modules) == []
