"""Bad input never costs the user: a pack replaces an existing folder only when that folder
is empty or an auditkit pack holding exactly the files its manifest lists.

Anything else (an unrelated folder that happens to hold a manifest.json, an auditor's
notes.txt added to a real pack) is refused with exit 6 and one line naming the files;
nothing is written or deleted and no staging folder is left behind. The refusal comes
before the expensive work (controls, harvest) and again right before the rename.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditkit.cli import cli
from auditkit.errors import ReportError
from auditkit.pack import MANIFEST_NAME, staged_pack_dir, verify_pack, write_manifest
from auditkit.report import write_pack
from tests.report.factory import Q3, demo_store, results, settings

EXIT_REPORT = 6


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: to show nothing changed."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    demo_store(str(path)).close()
    return path


@pytest.fixture
def real_pack(tmp_path: Path) -> Path:
    """A pack auditkit wrote (CSV only, to stay quick)."""
    out = tmp_path / "reports" / "2026Q3"
    with demo_store() as store:
        write_pack(store, settings(), Q3, out, results=results(), formats=("csv",))
    return out


def test_unrelated_manifest_and_precious_file_survive_report(
    store_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "reports" / "2026Q3"
    out.mkdir(parents=True)
    (out / MANIFEST_NAME).write_text('{"name": "my-web-app", "version": "1.0.0"}', encoding="utf-8")
    (out / "precious.txt").write_text("years of work", encoding="utf-8")
    before = snapshot(out)
    result = CliRunner().invoke(
        cli, ["report", "--db", str(store_file), "--period", "2026Q3", "--out", str(out)]
    )
    assert result.exit_code == EXIT_REPORT, result.output
    assert error_lines(result.stderr) == [
        f"Error: {out} holds files auditkit did not write (manifest.json, precious.txt) and its "
        "manifest.json is not an auditkit manifest (no format 'auditkit-evidence-pack/1'); "
        "move them or choose another --out"
    ]
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["2026Q3"]  # no staging folder left


@pytest.mark.parametrize("command", ["report", "evidence"])
def test_auditor_notes_in_a_real_pack_survive_a_rerun(
    command: str, real_pack: Path, store_file: Path
) -> None:
    (real_pack / "notes.txt").write_text("auditor: sampled 25, all fine", encoding="utf-8")
    before = snapshot(real_pack)
    args = {"report": ["report", "--period", "2026Q3"], "evidence": ["evidence", "em-03"]}[command]
    result = CliRunner().invoke(cli, [*args, "--db", str(store_file), "--out", str(real_pack)])
    assert result.exit_code == EXIT_REPORT, result.output
    assert error_lines(result.stderr) == [
        f"Error: {real_pack} holds files auditkit did not write (notes.txt); "
        "move them or choose another --out"
    ]
    assert snapshot(real_pack) == before
    # The old pack is intact: its own files all match; only the auditor's note is extra.
    verified = verify_pack(real_pack)
    assert (verified.altered, verified.removed, verified.added) == ((), (), ("notes.txt",))
    assert sorted(p.name for p in real_pack.parent.iterdir()) == ["2026Q3"]


@pytest.mark.pdf
def test_clean_real_pack_is_replaced(real_pack: Path, store_file: Path) -> None:
    old_manifest = (real_pack / MANIFEST_NAME).read_bytes()
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--db",
            str(store_file),
            "--period",
            "2026Q3",
            "--out",
            str(real_pack),
            "--sample-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (real_pack / MANIFEST_NAME).read_bytes() != old_manifest  # now with report.pdf/html
    assert (real_pack / "report.pdf").is_file() and verify_pack(real_pack).ok
    assert sorted(p.name for p in real_pack.parent.iterdir()) == ["2026Q3"]


def test_a_pack_with_files_missing_or_an_empty_folder_may_be_replaced(
    real_pack: Path, tmp_path: Path
) -> None:
    (real_pack / "findings.csv").unlink()  # nothing of the user's is lost by replacing it
    empty = tmp_path / "empty"
    empty.mkdir()
    with demo_store() as store:
        write_pack(store, settings(), Q3, real_pack, results=results(), formats=("csv",))
        write_pack(store, settings(), Q3, empty, results=results(), formats=("csv",))
    assert verify_pack(real_pack).ok and verify_pack(empty).ok


def write_nested_pack(out: Path) -> None:
    with staged_pack_dir(out) as stage:
        (stage / "a.csv").write_text("a", encoding="utf-8")
        (stage / "sub").mkdir()
        (stage / "sub" / "deep.csv").write_text("b", encoding="utf-8")
        write_manifest(stage, {})


def test_subfolders_compare_by_relative_path(tmp_path: Path) -> None:
    out = tmp_path / "pack"
    write_nested_pack(out)
    write_nested_pack(out)  # exactly the listed files, in their subfolder: replaced
    assert verify_pack(out).ok
    (out / "sub" / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "scratch").mkdir()  # even an empty folder is something auditkit did not write
    with pytest.raises(ReportError, match=r"did not write \(scratch/, sub/notes.txt\);"):
        write_nested_pack(out)
    assert (out / "sub" / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (out / "scratch").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["pack"]


def test_a_damaged_file_list_does_not_vouch_for_the_folder(real_pack: Path) -> None:
    manifest = json.loads((real_pack / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["files"] = None
    (real_pack / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    before = snapshot(real_pack)
    with pytest.raises(ReportError, match="no readable list of files"), staged_pack_dir(real_pack):
        pass
    assert snapshot(real_pack) == before


def test_refused_before_the_store_is_read(real_pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (real_pack / "notes.txt").write_text("mine", encoding="utf-8")

    def expensive(*_a: object, **_k: object) -> None:
        raise AssertionError("the pack build started")

    monkeypatch.setattr("auditkit.report.vocabulary_for", expensive)
    monkeypatch.setattr("auditkit.report.MessageTable", expensive)
    with demo_store() as store, pytest.raises(ReportError, match=r"did not write \(notes.txt\)"):
        write_pack(store, settings(), Q3, real_pack, results=results(), formats=("csv",))


def test_a_file_added_during_the_build_is_refused_at_rename(real_pack: Path) -> None:
    before = snapshot(real_pack)
    with (
        pytest.raises(ReportError, match=r"did not write \(notes.txt\)"),
        staged_pack_dir(real_pack) as stage,
    ):
        (stage / "new.csv").write_text("new", encoding="utf-8")
        write_manifest(stage, {})
        (real_pack / "notes.txt").write_text("added while the pack was built", encoding="utf-8")
    assert snapshot(real_pack) == {**before, "notes.txt": b"added while the pack was built"}
    assert sorted(p.name for p in real_pack.parent.iterdir()) == ["2026Q3"]


def test_run_refuses_before_harvesting(tmp_path: Path) -> None:
    """No sandbox and no API key: `run` must refuse on the folder before it harvests."""
    period_dir = tmp_path / "evidence" / "2026Q3"
    period_dir.mkdir(parents=True)
    (period_dir / "precious.txt").write_text("mine", encoding="utf-8")
    db = tmp_path / "store.duckdb"
    result = CliRunner().invoke(
        cli, ["run", "--period", "2026Q3", "--out", str(tmp_path / "evidence"), "--db", str(db)]
    )
    assert result.exit_code == EXIT_REPORT, result.output
    assert "did not write (precious.txt)" in result.stderr
    assert not db.exists()  # nothing harvested, no store created
    assert snapshot(period_dir) == {"precious.txt": b"mine"}


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "precious.txt").write_text("mine", encoding="utf-8")
    store = tmp_path / "demo.duckdb"  # demo deletes its stale store; not before this check
    store.write_bytes(b"keep")
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert store.read_bytes() == b"keep" and snapshot(out) == {"precious.txt": b"mine"}
    assert result.exit_code == EXIT_REPORT, result.output
    assert "did not write (precious.txt)" in result.stderr
