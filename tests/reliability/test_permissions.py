"""Stores and packs are personal data: owner-only files (0600) and folders (0700) after `run`
and `demo`, whatever the umask."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.reliability.conftest import Workspace

# Every test reads the session's workspace: a dozen CLI runs, end to end.
pytestmark = pytest.mark.slow


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_store_and_pack_are_owner_only(workspace: Workspace) -> None:
    paths = [workspace.run_db, Path(f"{workspace.run_db}.lock")]
    paths += [p for p in [Path(f"{workspace.run_db}.wal")] if p.exists()]
    for path in paths:
        assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"
    # The output root did not exist before the run, so the run created it.
    assert mode(workspace.out_root) == 0o700
    pack = workspace.out_root / "2026Q3"
    assert mode(pack) == 0o700
    files = [p for p in pack.rglob("*")]
    assert len(files) == 9
    for path in files:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode(path))}"


def test_demo_store_and_pack_are_owner_only(workspace: Workspace) -> None:
    store = Path(f"{workspace.demo}.duckdb")
    for path in [store, Path(f"{store}.lock")]:
        assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"
    assert mode(workspace.demo) == 0o700
    for path in workspace.demo.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode(path))}"


def test_report_and_evidence_packs_are_owner_only(workspace: Workspace) -> None:
    for pack in (workspace.report, workspace.evidence):
        assert mode(pack) == 0o700
        for path in pack.rglob("*"):
            assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"
    assert mode(workspace.db) == 0o600


def test_demo_creates_its_output_root_owner_only(workspace: Workspace) -> None:
    assert mode(workspace.demo.parent) == 0o700, oct(mode(workspace.demo.parent))
