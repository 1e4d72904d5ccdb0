"""CLI contract: help with examples everywhere, README coverage, error-to-exit-code mapping."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from auditkit.cli import cli
from auditkit.errors import (
    AuditkitError,
    ConfigError,
    NothingToDoError,
    RunLockedError,
    SourceError,
    StoreError,
    UsageError,
)
from auditkit.runlock import run_lock
from tests.conftest import ROOT

COMMANDS = sorted(cli.commands)


def test_expected_commands_exist() -> None:
    for name in [
        "harvest",
        "import",
        "check",
        "controls",
        "report",
        "evidence",
        "verify",
        "run",
        "status",
        "sandbox",
        "demo",
    ]:
        assert name in cli.commands, name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_examples(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"auditkit {name}" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_documented_in_readme(name: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`auditkit {name}" in readme


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (AuditkitError("generic"), 1),
        (ConfigError("bad setting"), 3),
        (UsageError("bad argument"), 2),
        (NothingToDoError("nothing there"), 9),
        (SourceError("api down"), 4),
        (StoreError("locked"), 5),
        (RunLockedError("busy"), 8),
    ],
)
def test_errors_map_to_exit_codes_in_one_place(exc: AuditkitError, code: int) -> None:
    @cli.command("raise-for-test")
    def raiser() -> None:
        raise exc

    try:
        result = CliRunner().invoke(cli, ["raise-for-test"])
    finally:
        del cli.commands["raise-for-test"]
    assert result.exit_code == code
    assert result.output.strip().endswith(f"Error: {exc}")


def test_debug_flag_shows_the_traceback() -> None:
    @cli.command("raise-for-test")
    def raiser() -> None:
        raise ConfigError("bad setting")

    try:
        result = CliRunner().invoke(cli, ["--debug", "raise-for-test"])
    finally:
        del cli.commands["raise-for-test"]
    assert isinstance(result.exception, ConfigError)


def test_bad_period_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["check", "--period", "2026Q9", "--db", str(tmp_path / "x.duckdb")]
    )
    assert result.exit_code == 2
    assert "period '2026Q9' not understood" in result.output


def test_status_on_missing_store_is_a_store_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status", "--db", str(tmp_path / "absent.duckdb")])
    assert result.exit_code == 5
    assert "does not exist: run `auditkit harvest` first" in result.output


def test_run_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with run_lock(db) as lock_path:
        fd = os.open(lock_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        with pytest.raises(RunLockedError, match=r"another auditkit run \(PID \d+"), run_lock(db):
            pass
    with run_lock(db):  # released on exit
        pass


def test_run_exits_8_when_locked(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with run_lock(db):
        result = CliRunner().invoke(
            cli, ["run", "--db", str(db), "--period", "2026Q3", "--out", str(tmp_path)]
        )
    assert result.exit_code == 8
    assert f"another auditkit run (PID {os.getpid()}" in result.output
    assert not (tmp_path / "2026Q3").exists()


def test_run_with_an_unreachable_api_fails_fast_with_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on 127.0.0.1: nothing listens, every connection is refused.
    monkeypatch.setenv("MULTIMAIL_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MULTIMAIL_API_KEY", "mm_test_unreachable")
    config = tmp_path / "auditkit.toml"
    config.write_text("[harvest]\nmax_retries = 1\ntimeout_seconds = 2\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--config",
            str(config),
            "--db",
            str(tmp_path / "s.duckdb"),
            "--period",
            "2026Q3",
            "--out",
            str(tmp_path / "packs"),
        ],
    )
    assert result.exit_code == 4, result.output
    # The preflight names the cause at once instead of retrying for minutes; nothing was
    # harvested, so no pack claims to show the period (a partial harvest still writes one).
    assert "cannot be reached: connection refused" in result.stderr
    assert not (tmp_path / "packs" / "2026Q3").exists()
    assert "mm_test_unreachable" not in result.output


def test_group_is_a_click_group() -> None:
    assert isinstance(cli, click.Group)


def test_readme_documents_the_csv_columns_in_order() -> None:
    import re

    from auditkit.report.csv_export import (
        AUDIT_LOG_FIELDS,
        DECISION_FIELDS,
        FINDING_FIELDS,
        MESSAGE_FIELDS,
    )

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, fields in [
        ("messages.csv", MESSAGE_FIELDS),
        ("decisions.csv", DECISION_FIELDS),
        ("findings.csv", FINDING_FIELDS),
        ("audit_log.csv", AUDIT_LOG_FIELDS),
    ]:
        match = re.search(rf"- `{re.escape(name)}`: `([^`]+)`", readme)
        assert match, name
        documented = [c.strip() for c in match.group(1).replace("\n", " ").split(",")]
        assert documented == list(fields), name


def test_readme_lists_every_control_id() -> None:
    from auditkit.controls import catalogue

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for ctl in catalogue():
        # † marks exactly the controls that read the audit log through its vocabulary.
        mark = " †" if ctl.meanings else ""
        assert f"| {ctl.id}{mark} |" in readme, ctl.id


def _readme_exit_codes() -> dict[int, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Exit codes") :]
    table = table[: table.index("\n## ", 1)]
    return {int(code): text for code, text in re.findall(r"^\| (\d+) \| (.*) \|$", table, re.M)}


def test_exit_codes_agree_between_the_readme_the_code_and_every_help() -> None:
    import auditkit.errors as errors

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    from_code = {c.exit_code for c in subclasses(errors.AuditkitError)} | {
        0,
        2,  # success, and click's own usage errors
        errors.EXIT_CONTROLS_FAILED,
        errors.EXIT_INCONCLUSIVE,
        errors.EXIT_INTERRUPTED,
    }
    documented = _readme_exit_codes()
    assert set(documented) == from_code
    for name, command in cli.commands.items():
        help_text = command.help or ""
        if "Exit code" not in help_text:
            continue
        sentence = help_text[help_text.index("Exit code") :].split("\n\n")[0]
        mentioned = {int(n) for n in re.findall(r"(?<![\w-])(\d{1,3})(?![\w-])", sentence)}
        assert mentioned <= set(documented), (name, sorted(mentioned - set(documented)))


def test_top_level_help_shows_one_full_sentence_per_command() -> None:
    text = CliRunner().invoke(cli, ["--help"], terminal_width=100).output
    listing = text[text.index("Commands:") :]
    assert "..." not in listing
    for name in cli.commands:
        first = cli.commands[name].get_short_help_str(limit=1000)
        assert first.endswith("."), name
        assert " ".join(first.split()) in " ".join(listing.split()), name


def test_progress_shows_a_total_only_when_one_is_known(capsys: pytest.CaptureFixture[str]) -> None:
    from auditkit.cli.harvest import ProgressBars

    bars = ProgressBars()
    bars.start("audit_log", None)  # the audit log's length is unknown until it is read
    bars.advance("audit_log", 199)
    bars.finish("audit_log", 199)
    err = capsys.readouterr().err
    assert "199 records (" in err and "/s)" in err
    assert "/0" not in err
