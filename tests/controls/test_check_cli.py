"""`auditkit check` and `auditkit controls` through click's CliRunner: exit codes and JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from auditkit.errors import EXIT_CONTROLS_FAILED, EXIT_INCONCLUSIVE
from auditkit.store import Store
from tests.builders import StoreBuilder, ts


def _store(path: Path, *, violation: bool) -> Path:
    with Store(path) as store:
        b = StoreBuilder(store)
        b.account()
        b.mailbox(oversight_mode="gated_send" if violation else "autonomous")
        b.domain()
        b.email("e1")
        b.mailbox(id="mbx_2", address="news@northwind.example", oversight_mode="monitored")
        b.audit(
            "chg",
            "mailbox.oversight_mode_changed",
            "mbx_2",
            created_at=ts("2026-08-20 00:00"),
            metadata={"from": "autonomous", "to": "monitored"},
        )  # informational OVS-007 (low)
    return path


def test_check_exit_10_on_open_findings_and_0_above_fail_on(
    cli: click.Group, tmp_path: Path
) -> None:
    db = _store(tmp_path / "v.duckdb", violation=True)
    runner = CliRunner()
    failed = runner.invoke(cli, ["check", "--period", "2026Q3", "--db", str(db)])
    assert failed.exit_code == EXIT_CONTROLS_FAILED, failed.output
    assert "OVS-001" in failed.output and "[open] email e1" in failed.output
    # OVS-001 is high, so only --fail-on above it would pass; OVS-007 alone is low.
    only_low = runner.invoke(
        cli, ["check", "--period", "2026Q3", "--db", str(db), "--control", "OVS-007"]
    )
    assert only_low.exit_code == EXIT_CONTROLS_FAILED
    medium = runner.invoke(
        cli,
        [
            "check",
            "--period",
            "2026Q3",
            "--db",
            str(db),
            "--control",
            "OVS-007",
            "--fail-on",
            "medium",
        ],
    )
    assert medium.exit_code == 0, medium.output


def test_check_exit_0_when_clean(cli: click.Group, tmp_path: Path) -> None:
    db = _store(tmp_path / "ok.duckdb", violation=False)
    result = CliRunner().invoke(
        cli, ["check", "--period", "2026Q3", "--db", str(db), "--fail-on", "medium"]
    )
    assert result.exit_code == 0, result.output
    assert "0 control(s) failing at or above medium" in result.output


def test_check_json_shape(cli: click.Group, tmp_path: Path) -> None:
    db = _store(tmp_path / "v.duckdb", violation=True)
    result = CliRunner().invoke(
        cli,
        [
            "check",
            "--period",
            "2026-08",
            "--db",
            str(db),
            "--json",
            "--control",
            "OVS-001",
            "--control",
            "cs-005",
        ],
    )
    assert result.exit_code == EXIT_CONTROLS_FAILED
    doc = json.loads(result.output)
    assert doc["period"] == {"label": "2026-08", "start": "2026-08-01", "end": "2026-08-31"}
    assert [c["id"] for c in doc["controls"]] == ["OVS-001", "CS-005"]
    ovs = doc["controls"][0]
    assert set(ovs) == {
        "id",
        "title",
        "severity",
        "status",
        "checked",
        "detail",
        "rationale",
        "reference",
        "findings",
    }
    assert ovs["status"] == "fail"
    (finding,) = ovs["findings"]
    assert (
        finding["target_id"] == "e1"
        and finding["message_id"] == "e1"
        and finding["state"] == "open"
    )
    assert finding["evidence"]["mode_at_send"] == "gated_send"


def test_check_errors_map_to_exit_codes(cli: click.Group, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["check", "--period", "2026Q3", "--db", str(tmp_path / "none.duckdb")]
    )
    assert missing.exit_code == 5
    db = _store(tmp_path / "v.duckdb", violation=True)
    bad_period = runner.invoke(cli, ["check", "--period", "2026Q5", "--db", str(db)])
    assert bad_period.exit_code == 2  # a usage error, like click's own
    bad_control = runner.invoke(
        cli, ["check", "--period", "2026Q3", "--db", str(db), "--control", "NOPE-1"]
    )
    assert bad_control.exit_code == 2 and "unknown control" in bad_control.output


def test_controls_listing(cli: click.Group) -> None:
    runner = CliRunner()
    listing = runner.invoke(cli, ["controls"])
    assert listing.exit_code == 0 and "OVS-001" in listing.output and "AL-002" in listing.output
    doc = json.loads(runner.invoke(cli, ["controls", "--json"]).output)
    assert len(doc["controls"]) == 20
    assert (
        doc["controls"][0]["id"] == "OVS-001" and "ak_mode_intervals" in doc["controls"][0]["sql"]
    )
    help_text = runner.invoke(cli, ["check", "--help"]).output
    assert "Examples:" in help_text and "auditkit check --period 2026Q3" in help_text


def _store_without_email_entries(path: Path) -> Path:
    """An approved email and an audit log that says nothing about emails."""
    with Store(path) as store:
        b = StoreBuilder(store)
        b.account()
        b.mailbox()
        b.email("e1", approved_at=ts("2026-08-03 10:02"), approved_by="rev@northwind.example")
        b.audit("k1", "api_key.created", "key_1")
    return path


def test_check_exit_11_when_a_control_is_inconclusive(cli: click.Group, tmp_path: Path) -> None:
    db = _store_without_email_entries(tmp_path / "i.duckdb")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["check", "--period", "2026Q3", "--db", str(db), "--control", "AL-002"]
    )
    assert result.exit_code == EXIT_INCONCLUSIVE, result.output
    assert "AL-002 inconclusive:" in result.output
    assert "1 control(s) inconclusive: AL-002" in result.output
    # A failing control wins over an inconclusive one.
    both = runner.invoke(cli, ["check", "--period", "2026Q3", "--db", str(db)])
    assert both.exit_code == EXIT_CONTROLS_FAILED, both.output


def test_vocabulary_command_lists_actions_and_the_mapping(cli: click.Group, tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    with Store(db) as store:
        b = StoreBuilder(store)
        b.mailbox()
        for i in range(3):
            b.email(f"e{i}", approved_at=ts(f"2026-08-0{i + 1} 10:30"), approved_by="rev@x.example")
            b.audit(
                f"d{i}",
                "review.decide",
                f"e{i}",
                created_at=ts(f"2026-08-0{i + 1} 10:30"),
                metadata={"action": "approve"},
            )
    runner = CliRunner()
    text = runner.invoke(cli, ["vocabulary", "--db", str(db)])
    assert text.exit_code == 0, text.output
    assert "review.decide" in text.output
    assert "inferred from 3 of 3 approved emails" in text.output
    doc = json.loads(runner.invoke(cli, ["vocabulary", "--db", str(db), "--json"]).output)
    assert doc["actions"][0]["action"] == "review.decide"
    assert doc["meanings"]["approved"]["matchers"] == [
        {"action": "review.decide", "metadata_path": None, "metadata_value": None}
    ]
    assert doc["meanings"]["email_sent"]["source"] == "unknown"
    configured = tmp_path / "auditkit.toml"
    configured.write_text('[controls.audit_actions]\nemail_sent = "review.decide"\n')
    doc = json.loads(
        runner.invoke(
            cli, ["vocabulary", "--db", str(db), "--config", str(configured), "--json"]
        ).output
    )
    assert doc["meanings"]["email_sent"]["source"] == "configured"
