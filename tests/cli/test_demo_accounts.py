"""Acceptance (issue 15): `auditkit demo --accounts 2` harvests two accounts from one sandbox
into one store and writes a pack per account; `status` shows both, and each command reads
the account `--account` names."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from auditkit.cli import cli
from auditkit.devtools.demo_accounts import FIRST, SECOND, SECOND_MESSAGES, SECOND_SEED
from auditkit.devtools.sample.generator import generate
from auditkit.pack import verify_pack
from tests.cli.test_demo import keys, read_json
from tests.conftest import SAMPLE_DATA

pytestmark = pytest.mark.slow

# Each account's stored emails (inbound included) exceed the messages generated for it, and
# most of those are outbound in 2026Q3: the sample quarter's 3,000 as before, and at least
# 90% of the second account's smaller quarter.
STORED_MORE_THAN = {FIRST: 3000, SECOND: SECOND_MESSAGES}
LISTED_MORE_THAN = {FIRST: 2900, SECOND: 0.9 * SECOND_MESSAGES}


@pytest.fixture(scope="module")
def demo2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo2") / "demo"
    result = CliRunner().invoke(cli, ["demo", "--accounts", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return {"out": out, "db": Path(f"{out}.duckdb"), "doc": json.loads(result.stdout)}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_both_accounts_land_in_one_store_with_a_pack_each(
    demo2: dict[str, Any], tmp_path: Path
) -> None:
    doc, out = demo2["doc"], demo2["out"]
    assert sorted(doc["accounts"]) == [FIRST, SECOND]
    for name in (FIRST, SECOND):
        assert doc["accounts"][name]["harvest"]["outcome"] == "ok"
        assert doc["accounts"][name]["pack"] == str(out / name)
        verified = verify_pack(out / name)
        assert verified.ok, verified.problems()
    # The first account is the sample quarter: exactly the single-account demo's findings.
    found = keys(_csv(out / FIRST / "findings.csv"))
    assert found == keys(read_json(SAMPLE_DATA / "expected_demo_findings.json"))
    # The second is another rendering of the generator's facts (seed 7, 600 messages), not
    # the one the controls were written beside: exactly what was planted in it.
    second = tmp_path / SECOND
    generate(second, messages=SECOND_MESSAGES, seed=SECOND_SEED)
    planted = keys(read_json(second / "expected_findings.json"))
    assert keys(_csv(out / SECOND / "findings.csv")) == planted


def test_each_pack_lists_exactly_its_accounts_messages(demo2: dict[str, Any]) -> None:
    con = duckdb.connect(str(demo2["db"]), read_only=True)
    try:
        for name in (FIRST, SECOND):
            stored = {
                r[0]
                for r in con.execute(
                    "SELECT id FROM multimail_emails WHERE account = ? AND direction = 'outbound' "
                    "AND created_at >= '2026-07-01' AND created_at < '2026-10-01'",
                    [name],
                ).fetchall()
            }
            listed = {r["message_id"] for r in _csv(demo2["out"] / name / "messages.csv")}
            assert listed == stored and len(listed) > LISTED_MORE_THAN[name]
    finally:
        con.close()


def test_status_shows_each_account_and_commands_take_account(demo2: dict[str, Any]) -> None:
    db = str(demo2["db"])
    runner = CliRunner()
    status = runner.invoke(cli, ["status", "--db", db, "--json"])
    assert status.exit_code == 0, status.output
    accounts = {a["account"]: a for a in json.loads(status.stdout)["accounts"]}
    assert sorted(accounts) == [FIRST, SECOND]
    assert all(a["counts"]["multimail_emails"] > STORED_MORE_THAN[n] for n, a in accounts.items())
    # Without [accounts] in the config, a store's other accounts cannot be named.
    check = runner.invoke(cli, ["check", "--db", db, "--period", "2026Q3", "--account", SECOND])
    assert check.exit_code == 2
    assert "only account is 'default'" in check.output
    config = demo2["out"].parent / "two.toml"
    config.write_text(f"[accounts.{FIRST}]\n\n[accounts.{SECOND}]\n", encoding="utf-8")
    results = {}
    for name in (FIRST, SECOND):
        check = runner.invoke(
            cli,
            ["check", "--db", db, "--config", str(config), "--period", "2026Q3"]
            + ["--account", name, "--json"],
        )
        assert check.exit_code == 10, check.output  # planted violations fail
        results[name] = json.loads(check.stdout)
    # Each account's findings name its own records; a calendar day (PC-001's daily
    # differences) is not a record, and both quarters span the same days.
    targets = {
        name: {
            (c["id"], f["target_id"])
            for c in doc["controls"]
            for f in c["findings"]
            if f["target_type"] != "day"
        }
        for name, doc in results.items()
    }
    assert targets[FIRST] and targets[SECOND] and not targets[FIRST] & targets[SECOND]
    unnamed = runner.invoke(cli, ["check", "--db", db, "--config", str(config)])
    assert unnamed.exit_code == 2
    assert "choose one with --account" in unnamed.output
