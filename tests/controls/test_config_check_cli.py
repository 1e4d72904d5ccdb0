"""Issue 16 through the CLI: a config typo or a secret in the file stops `auditkit check` with
exit 3 before any result is printed, and waivers that stopped working are warnings on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from auditkit.errors import EXIT_CONTROLS_FAILED
from auditkit.store import Store
from tests.builders import StoreBuilder, ts

REVIEWERS = '[controls]\nreviewers = ["alice@northwind.example"]\n'


def _approvals_store(path: Path) -> Path:
    """OVS-004: one approval by an agent's key (a finding with or without a reviewers list)
    and one by a person not on the list (a finding only with it)."""
    with Store(path) as store:
        b = StoreBuilder(store)
        b.account()
        b.mailbox()
        b.api_key("key_send", ["read", "send"])
        b.api_key("key_other_agent", ["read", "send"])
        for email, approver in (
            ("by_alice", "alice@northwind.example"),
            ("by_mallory", "mallory@northwind.example"),
            ("by_other_agent", "key_other_agent"),
        ):
            b.email(email, approved_at=ts("2026-08-03 10:02"), approved_by=approver, agent="fin")
            b.audit(
                f"sent_{email}",
                "email.sent",
                email,
                actor_key_id="key_send",
                metadata={"agent": "fin"},
            )
    return path


def _check(group: click.Group, db: Path, config: Path, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        group,
        [
            "check",
            "--period",
            "2026Q3",
            "--db",
            str(db),
            "--config",
            str(config),
            "--control",
            "OVS-004",
            *extra,
        ],
    )


def test_control_for_controls_is_exit_3_not_one_finding_fewer(
    cli: click.Group,
    tmp_path: Path,
) -> None:
    db = _approvals_store(tmp_path / "s.duckdb")
    good = tmp_path / "good.toml"
    good.write_text(REVIEWERS, encoding="utf-8")
    right = _check(cli, db, good, "--json")
    assert right.exit_code == EXIT_CONTROLS_FAILED, right.output
    (ovs004,) = json.loads(right.stdout)["controls"]
    assert {f["target_id"] for f in ovs004["findings"]} == {"by_mallory", "by_other_agent"}

    typo = tmp_path / "auditkit.toml"
    typo.write_text(REVIEWERS.replace("[controls]", "[control]"), encoding="utf-8")
    wrong = _check(cli, db, typo)
    assert wrong.exit_code == 3, wrong.output
    assert f"{typo}: unknown table [control]; did you mean [controls]?" in wrong.stderr
    assert "OVS-004" not in wrong.stdout  # no result at all rather than a wrong one


def test_api_key_under_harvest_is_refused_and_never_echoed(
    cli: click.Group,
    tmp_path: Path,
) -> None:
    db = _approvals_store(tmp_path / "s.duckdb")
    config = tmp_path / "auditkit.toml"
    config.write_text('[harvest]\napi_key = "mm_live_supersecret"\n', encoding="utf-8")
    result = _check(cli, db, config)
    assert result.exit_code == 3, result.output
    assert "harvest.api_key: secrets do not belong in the config file" in result.stderr
    assert "MULTIMAIL_API_KEY" in result.stderr
    assert "supersecret" not in result.output


@pytest.mark.parametrize("as_json", [False, True])
def test_expired_and_unmatched_waivers_are_warnings_on_stderr(
    cli: click.Group,
    tmp_path: Path,
    as_json: bool,
) -> None:
    db = _approvals_store(tmp_path / "s.duckdb")
    waiver = (
        '[[waivers]]\ncontrol = "OVS-004"\ntarget = "{target}"\njustification = "j"\n'
        'approver = "cfo@northwind.example"\nexpires = {expires}\n'
    )
    config = tmp_path / "auditkit.toml"
    config.write_text(
        REVIEWERS
        + waiver.format(target="by_mallory", expires="2026-09-30")  # long past: expired
        + waiver.format(target="by_bob", expires="2999-12-31"),  # no such finding
        encoding="utf-8",
    )
    result = _check(cli, db, config, *(["--json"] if as_json else []))
    assert result.exit_code == EXIT_CONTROLS_FAILED, result.output
    assert result.stderr.splitlines() == [
        "warning: waiver for OVS-004 by_mallory expired on 2026-09-30; the finding is open again",
        "warning: waiver for OVS-004 by_bob matches no finding of OVS-004; check the target id, "
        "or remove the waiver if the issue is fixed",
    ]
    if as_json:
        json.loads(result.stdout)  # stdout stays one JSON document
    else:
        assert "OVS-004 [open] email by_mallory" in result.stdout
