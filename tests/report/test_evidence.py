"""Message and recipient evidence packs, the reproducible sample, and the report/evidence CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditkit.errors import ReportError
from auditkit.report import write_pack
from auditkit.report.pages import sample_positions
from tests.report.factory import Q3, at, audit, demo_store, results, settings


def message_ids(pack: Path) -> list[str]:
    with (pack / "messages.csv").open(encoding="utf-8", newline="") as fh:
        return [r["message_id"] for r in csv.DictReader(fh)]


def test_sample_is_reproducible_and_bounded() -> None:
    assert sample_positions(1000, 25, 42) == sample_positions(1000, 25, 42)
    assert sample_positions(1000, 25, 42) != sample_positions(1000, 25, 43)
    assert sample_positions(3, 25, 42) == [0, 1, 2]
    assert sample_positions(0, 25, 42) == [] and sample_positions(10, 0, 42) == []
    positions = sample_positions(1000, 25, 42)
    assert positions == sorted(positions) and len(set(positions)) == 25


def test_message_pack_holds_exactly_the_selected_messages(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "p",
            results=results(),
            message_ids=["em-07", "em-04", "em-07"],
            formats=("csv", "html"),
        )
    assert message_ids(tmp_path / "p") == ["em-04", "em-07"]
    with (tmp_path / "p" / "findings.csv").open(encoding="utf-8", newline="") as fh:
        targets = sorted(r["target_id"] for r in csv.DictReader(fh))
    assert targets == [
        "em-04",
        "em-07",
    ]  # findings about other messages and the audit entry are out of scope
    with (tmp_path / "p" / "audit_log.csv").open(encoding="utf-8", newline="") as fh:
        audit = [r["audit_id"] for r in csv.DictReader(fh)]
    assert audit == ["al-4"]  # the mode change of em-04's mailbox
    html = (tmp_path / "p" / "report.html").read_text(encoding="utf-8")
    assert "2 selected outbound message(s): em-07, em-04" in html


def test_recipient_pack_matches_bare_and_named_addresses(tmp_path: Path) -> None:
    recipients = {
        "bob": "BOB@example.com",
        "cust": "customer@example.com",
        # As pasted from a mail client: the display name is dropped, as in stored To/Cc.
        "pasted": '"Bob, of Example" < Bob@Example.com >',
    }
    with demo_store() as store:
        for pack, recipient in recipients.items():
            write_pack(
                store,
                settings(),
                Q3,
                tmp_path / pack,
                results=results(),
                recipient=recipient,
                formats=("csv",),
            )
    for pack in ("bob", "pasted"):
        assert message_ids(tmp_path / pack) == ["em-03"]
        manifest = json.loads((tmp_path / pack / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["parameters"]["scope"]["recipient"] == "bob@example.com"
    assert (
        "em-03" not in message_ids(tmp_path / "cust") and len(message_ids(tmp_path / "cust")) == 8
    )


def test_unknown_message_id_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    with demo_store() as store, pytest.raises(ReportError, match="em-nope"):
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "p",
            results=results(),
            message_ids=["em-01", "em-nope"],
        )
    assert not (tmp_path / "p").exists()


def test_bad_arguments_are_report_errors(tmp_path: Path) -> None:
    with demo_store() as store:
        with pytest.raises(ReportError, match="unknown pack format"):
            write_pack(store, settings(), Q3, tmp_path / "p", results=[], formats=("docx",))
        with pytest.raises(ReportError, match="sample size"):
            write_pack(store, settings(), Q3, tmp_path / "p", results=[], sample_size=-1)


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.duckdb"
    demo_store(str(path)).close()
    return path


@pytest.mark.pdf
def test_cli_report_writes_a_verifiable_pack(store_file: Path, tmp_path: Path) -> None:
    from auditkit.cli import cli

    out = tmp_path / "q3"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--db",
            str(store_file),
            "--period",
            "2026Q3",
            "--out",
            str(out),
            "--sample-size",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["period"] == "2026Q3" and summary["counts"]["messages"] == 9
    assert CliRunner().invoke(cli, ["verify", str(out)]).exit_code == 0


@pytest.mark.pdf
def test_cli_evidence_for_one_message_and_for_a_recipient(store_file: Path, tmp_path: Path) -> None:
    from auditkit.cli import cli

    runner = CliRunner()
    one = runner.invoke(
        cli, ["evidence", "em-03", "--db", str(store_file), "--out", str(tmp_path / "one")]
    )
    assert one.exit_code == 0, one.output
    assert message_ids(tmp_path / "one") == ["em-03"]
    assert "auditkit verify" in one.stdout
    rec = runner.invoke(
        cli,
        [
            "evidence",
            "--recipient",
            "Bob <BOB@example.com>",
            "--db",
            str(store_file),
            "--out",
            str(tmp_path / "rec"),
            "--json",
        ],
    )
    assert rec.exit_code == 0, rec.output
    assert json.loads(rec.stdout)["period"] == "2026-08-05..2026-08-05"


def test_cli_evidence_argument_errors(store_file: Path, tmp_path: Path) -> None:
    from auditkit.cli import cli

    runner = CliRunner()
    neither = runner.invoke(
        cli, ["evidence", "--db", str(store_file), "--out", str(tmp_path / "x")]
    )
    # Usage mistakes and unknown ids are usage errors (2), not configuration errors (3).
    assert neither.exit_code == 2 and "either MESSAGE_ID" in neither.stderr
    both = runner.invoke(
        cli,
        [
            "evidence",
            "em-01",
            "--recipient",
            "a@b",
            "--db",
            str(store_file),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert both.exit_code == 2
    missing = runner.invoke(
        cli,
        [
            "evidence",
            "--recipient",
            "nobody@x.test",
            "--db",
            str(store_file),
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert missing.exit_code == 2 and "no outbound message" in missing.stderr
    unknown = runner.invoke(
        cli, ["evidence", "em-01", "em-nope", "--db", str(store_file), "--out", str(tmp_path / "x")]
    )
    assert unknown.exit_code == 2 and "no outbound message with id em-nope" in unknown.stderr
    assert "--recipient" not in unknown.stderr
    address = runner.invoke(
        cli, ["evidence", "bob@example.com", "--db", str(store_file), "--out", str(tmp_path / "x")]
    )
    assert address.exit_code == 2
    assert "use --recipient ADDRESS" in address.stderr.splitlines()[-1]
    assert not (tmp_path / "x").exists()


def test_cli_help_has_examples() -> None:
    from auditkit.cli import cli

    for command in ("report", "evidence", "verify"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Examples:" in result.output, command


def test_pack_states_the_audit_vocabulary_and_the_approver_kind(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(
            store, settings(), Q3, tmp_path / "p", results=results(), formats=("csv", "html")
        )
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text(encoding="utf-8"))
    vocabulary = manifest["audit_vocabulary"]
    assert set(vocabulary) >= {"email_sent", "approved", "rejected", "cancelled", "mode_changed"}
    for mapping in vocabulary.values():
        assert mapping["source"] in ("configured", "inferred", "recognised_name", "unknown")
        assert mapping["provenance"]
    html = (tmp_path / "p" / "report.html").read_text(encoding="utf-8")
    assert "How the audit log was read" in html
    assert vocabulary["approved"]["provenance"] in html
    with (tmp_path / "p" / "messages.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    kinds = {r["approved_by"]: r["approver_kind"] for r in rows if r["approved_by"]}
    assert kinds == {"reviewer@northwind.test": "person"}


def test_both_ledgers_name_the_same_sending_key_when_harvest_order_differs_from_time(
    tmp_path: Path,
) -> None:
    """Two send entries for em-01: the one harvested first (lower chain_seq) was written
    later at the source. "The send entry" is the earliest by the source's time in every
    ledger, so messages.csv and decisions.csv cannot name different keys for one email."""
    with demo_store() as store:
        store.upsert(
            "multimail_audit_log",
            [audit("al-0", 0, "email.sent", "em-01", at(4), {}, actor="key-later-resend")],
        )
        write_pack(store, settings(), Q3, tmp_path / "p", results=results(), formats=("csv",))
    with (tmp_path / "p" / "messages.csv").open(encoding="utf-8", newline="") as fh:
        sent_by = {r["message_id"]: r["sent_by_key_id"] for r in csv.DictReader(fh)}
    with (tmp_path / "p" / "decisions.csv").open(encoding="utf-8", newline="") as fh:
        decision_sender = {r["email_id"]: r["email_sent_by_key_id"] for r in csv.DictReader(fh)}
    assert sent_by["em-01"] == decision_sender["em-01"] == "key-agent"
