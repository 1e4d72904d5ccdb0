"""Pack on disk: manifest contents, verification naming every altered/added/removed file,
atomic replacement, owner-only permissions, and the `verify` exit codes and output.

The rule for replacing an existing folder is tested in tests/test_pack_replace.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditkit.errors import ConfigError, PackVerificationError, ReportError
from auditkit.pack import MANIFEST_NAME, file_sha256, staged_pack_dir, verify_pack
from auditkit.report import write_pack
from tests.report.factory import Q3, demo_store, results, settings

MM_SECRET = "mm_test_SECRET_never_in_a_pack"


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    out = tmp_path / "pack"
    with demo_store() as store:
        write_pack(
            store,
            settings(multimail_api_key=MM_SECRET),
            Q3,
            out,
            results=results(),
            formats=("csv", "html"),
        )
    return out


def test_manifest_lists_every_file_with_size_and_hash(pack: Path) -> None:
    manifest = json.loads((pack / MANIFEST_NAME).read_text(encoding="utf-8"))
    files = manifest["files"]
    assert [f["path"] for f in files] == [
        "assessment-results.json",
        "audit_log.csv",
        "decisions.csv",
        "findings.csv",
        "messages.csv",
        "reconciliation.csv",
        "report.html",
    ]
    for f in files:
        assert f["size"] == (pack / f["path"]).stat().st_size
        assert f["sha256"] == file_sha256(pack / f["path"])
    assert manifest["period"] == {"label": "2026Q3", "start": "2026-07-01", "end": "2026-09-30"}
    assert manifest["data_as_of"] == "2026-10-01T06:00:00Z"
    assert len(manifest["store_snapshot_digest"]) == 64
    assert manifest["counts"]["messages"] == 9
    assert manifest["parameters"]["seed"] == 42
    assert manifest["parameters"]["settings"]["company_name"] == "Northwind Supply Co."
    assert manifest["tool"]["name"] == "auditkit"
    assert "control_catalogue_version" in manifest
    assert list(manifest) == sorted(manifest)  # sorted keys: deterministic bytes


def test_no_secret_reaches_any_pack_file(pack: Path) -> None:
    for path in pack.iterdir():
        assert MM_SECRET not in path.read_text(encoding="utf-8"), path.name


def test_files_and_folder_are_owner_only(pack: Path) -> None:
    assert stat.S_IMODE(pack.stat().st_mode) == 0o700
    for path in pack.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_verify_accepts_an_untouched_pack(pack: Path) -> None:
    result = verify_pack(pack)
    assert result.ok and result.checked == 7 and result.problems() == []
    result.raise_for_problems()


def test_verify_names_each_altered_added_and_removed_file(pack: Path) -> None:
    data = bytearray((pack / "messages.csv").read_bytes())
    data[200] ^= 0x01  # one bit, same size
    (pack / "messages.csv").write_bytes(bytes(data))
    (pack / "findings.csv").write_text("x", encoding="utf-8")
    (pack / "extra.txt").write_text("smuggled", encoding="utf-8")
    (pack / "sub").mkdir()
    (pack / "sub" / "deep.csv").write_text("x", encoding="utf-8")
    (pack / "decisions.csv").unlink()
    result = verify_pack(pack)
    assert not result.ok
    assert result.altered == ("findings.csv", "messages.csv")
    assert result.added == ("extra.txt", "sub/deep.csv")
    assert result.removed == ("decisions.csv",)
    with pytest.raises(PackVerificationError) as exc:
        result.raise_for_problems()
    for name in ("messages.csv", "findings.csv", "extra.txt", "sub/deep.csv", "decisions.csv"):
        assert name in str(exc.value)


def test_verify_refuses_what_is_not_a_pack(pack: Path, tmp_path: Path) -> None:
    # Not evidence of tampering but a wrong argument: ConfigError (exit 3), never exit 7.
    with pytest.raises(ConfigError, match="does not exist"):
        verify_pack(tmp_path / "nowhere")
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a folder"):
        verify_pack(tmp_path / "file.txt")
    (pack / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an auditkit manifest"):
        verify_pack(pack)
    (pack / MANIFEST_NAME).write_text('{"files": []}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not an auditkit manifest"):
        verify_pack(pack)
    (pack / MANIFEST_NAME).unlink()
    with pytest.raises(ConfigError, match="has no manifest.json"):
        verify_pack(pack)


def test_verify_reports_a_damaged_file_list_as_a_difference(pack: Path) -> None:
    manifest = json.loads((pack / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["files"] = "gone"  # still auditkit's manifest (its format), so this is tampering
    (pack / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    result = verify_pack(pack)
    assert not result.ok and "no readable list of files" in result.problems()[0]
    with pytest.raises(PackVerificationError):
        result.raise_for_problems()


def test_verify_flags_manifest_paths_escaping_the_pack(pack: Path) -> None:
    manifest = json.loads((pack / MANIFEST_NAME).read_text(encoding="utf-8"))
    manifest["files"].append({"path": "../outside", "size": 0, "sha256": "0" * 64})
    (pack / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    assert MANIFEST_NAME in verify_pack(pack).altered


def test_rerun_replaces_the_pack_and_failure_keeps_the_old_one(
    pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (pack / MANIFEST_NAME).read_bytes()
    with demo_store() as store:  # a real pack, nothing added: replaced
        write_pack(store, settings(), Q3, pack, results=results(), formats=("csv",))
    assert (pack / MANIFEST_NAME).read_bytes() != before and not (pack / "report.html").exists()
    assert verify_pack(pack).ok

    def broken(*_a: object, **_k: object) -> str:
        raise ReportError("template exploded")

    monkeypatch.setattr("auditkit.report.render_html", broken)
    with demo_store() as store, pytest.raises(ReportError, match="exploded"):
        write_pack(store, settings(), Q3, pack, results=results(), formats=("csv", "html"))
    assert verify_pack(pack).ok  # the previous complete pack is still there
    assert sorted(p.name for p in pack.parent.iterdir()) == [
        "pack"
    ]  # no staging folder left behind


def test_refuses_to_replace_a_folder_that_is_not_a_pack(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work", encoding="utf-8")
    with (
        pytest.raises(ReportError, match=r"did not write \(thesis.tex\)"),
        staged_pack_dir(precious),
    ):
        pass
    assert (precious / "thesis.tex").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no staging folder made


def first_json(text: str) -> dict:
    """The first JSON document on stdout (a failing --json command may add an error object)."""
    return json.JSONDecoder().raw_decode(text.lstrip())[0]


def test_cli_verify_exit_codes_and_json(pack: Path) -> None:
    from auditkit.cli import cli

    runner = CliRunner()
    ok = runner.invoke(cli, ["verify", str(pack)])
    assert ok.exit_code == 0, ok.output
    assert "ok: 7 files match" in ok.output
    (pack / "audit_log.csv").write_text("tampered", encoding="utf-8")
    (pack / "new.bin").write_bytes(b"x")
    bad = runner.invoke(cli, ["verify", str(pack), "--json"])
    assert bad.exit_code == 7
    body = first_json(bad.stdout)
    assert (
        body["ok"] is False
        and body["altered"] == ["audit_log.csv"]
        and body["added"] == ["new.bin"]
    )
    # One error line with the counts; the names are in the JSON document.
    assert "does not match its manifest: 1 altered, 1 added" in bad.stderr


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_cli_verify_names_each_difference_exactly_once(pack: Path, as_json: bool) -> None:
    from auditkit.cli import cli

    (pack / "audit_log.csv").write_text("tampered", encoding="utf-8")
    (pack / "new.bin").write_bytes(b"x")
    (pack / "decisions.csv").unlink()
    result = CliRunner().invoke(cli, ["verify", str(pack), *(["--json"] if as_json else [])])
    assert result.exit_code == 7
    # result.output holds stdout and stderr together.
    for name in ("audit_log.csv", "new.bin", "decisions.csv"):
        assert result.output.count(name) == 1, result.output
        assert name in result.stdout
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: pack {pack} does not match its manifest: 1 altered, 1 added, 1 removed"
    ]
    if not as_json:
        assert result.stdout.splitlines() == [
            "altered: audit_log.csv",
            "added: new.bin",
            "removed: decisions.csv",
        ]


def test_cli_verify_exits_2_or_3_for_what_is_not_a_pack(tmp_path: Path) -> None:
    """A wrong path is a usage (2) or input (3) error; 7 means a real pack was altered."""
    from auditkit.cli import cli

    runner = CliRunner()
    missing = runner.invoke(cli, ["verify", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2, missing.output
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    assert runner.invoke(cli, ["verify", str(tmp_path / "a-file")]).exit_code == 2
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("x", encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / MANIFEST_NAME).write_text(
        '{"name": "some-npm-thing", "files": []}', encoding="utf-8"
    )
    for folder in (plain, empty, foreign):
        for extra in ([], ["--json"]):
            result = runner.invoke(cli, ["verify", str(folder), *extra])
            assert result.exit_code == 3, (folder.name, extra, result.output)
            assert "is not an evidence pack" in result.stderr
