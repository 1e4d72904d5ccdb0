"""A store written before accounts existed opens, migrates once in place, and gives the same
findings and byte-identical pack files as the code that wrote it (issue 15).

The fixture (`fixtures/pre_accounts.duckdb.gz`) and what that code found and wrote
(`fixtures/pre_accounts_pack.json`) were made by main at 05a7131, the last commit before
accounts merged, with
`fixtures/make_pre_accounts_store.py`: a 50-message sample harvested twice through the
sandbox with source-side tampering between (so integrity events and quarantine exist).
Two file hashes in the manifest were updated at the commit that made OVS-006 measure to
the last harvest: its rationale text, shown in report.html and assessment-results.json,
changed (34 bytes longer in each). They were updated again, with the catalogue version,
at catalogue 2026.12-3: CS-001's to CS-003's rationale texts changed, CS-003's detail now
lists how each suppression reason was read, and the findings' evidence says how they
were read (`suppression_read_as`, `as_sent_copies_checked`, hence findings.csv too); the
findings themselves did not change. At 2026.12-4, AL-001's rationale (report.html and
assessment-results.json, 80 bytes longer in each) also names an entry given in two versions.
When the summary charts became SVG written by auditkit instead of matplotlib, report.html
changed (its charts), and with it assessment-results.json, which holds its hash.
Every other file is still the bytes 05a7131 wrote.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from auditkit.config import load
from auditkit.controls import run_controls
from auditkit.controls.settings import vocabulary_for
from auditkit.errors import StoreError
from auditkit.findings import parse_period
from auditkit.report import write_pack
from auditkit.store import HARVESTED_TABLES, Store
from auditkit.store.accounts import BOOKKEEPING_TABLES
from tests.builders import with_provenance

FIXTURES = Path(__file__).resolve().parent / "fixtures"
Q3 = parse_period("2026Q3")
EXPECTED = json.loads((FIXTURES / "pre_accounts_pack.json").read_text(encoding="utf-8"))


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "old.duckdb"
    path.write_bytes(gzip.decompress((FIXTURES / "pre_accounts.duckdb.gz").read_bytes()))
    return path


def _base_counts(store: Store) -> dict[str, int]:
    return {
        t: store.query(f"SELECT count(*) FROM {store.base(t)}")[0][0]
        for t in (*HARVESTED_TABLES, *BOOKKEEPING_TABLES)
    }


def test_an_old_store_migrates_once_and_every_row_becomes_the_default_accounts(
    old_store: Path,
) -> None:
    with Store(old_store, read_only=True) as before:
        assert "0005_accounts" not in before.applied_migrations()
        counts_before = {t: before.count(t) for t in (*HARVESTED_TABLES, *BOOKKEEPING_TABLES)}
    assert counts_before["multimail_emails"] > 50 and counts_before["integrity_events"] > 0

    with Store(old_store) as store:
        assert "0005_accounts" in store.applied_migrations()
        assert _base_counts(store) == counts_before
        for table in (*HARVESTED_TABLES, *BOOKKEEPING_TABLES):
            accounts = store.query(f"SELECT DISTINCT account FROM {store.base(table)}")
            assert accounts in ([], [("default",)]), table
        key = store.query(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = 'multimail_emails' AND constraint_type = 'PRIMARY KEY'"
        )
        assert key == [(["account", "id"],)]
        assert store.stored_accounts() == ["default"]
    with Store(old_store) as again:  # nothing left to migrate: opening changes nothing
        assert again.pending_migrations() == []
        assert _base_counts(again) == counts_before


def test_a_migrated_store_gives_the_same_findings_and_identical_pack_files(
    old_store: Path, tmp_path: Path
) -> None:
    Store(old_store).close()  # the first writer migrates
    settings = load(config_file=None, env={}, db_path=old_store)
    with Store(old_store, read_only=True) as store:
        vocabulary = vocabulary_for(store.con, settings)
        results = run_controls(store, settings, Q3, vocabulary=vocabulary)
        pack = tmp_path / "pack"
        write_pack(
            store,
            settings,
            Q3,
            pack,
            results=results,
            vocabulary=vocabulary,
            formats=("csv", "html"),
        )
    findings = sorted(
        [r.id, f.target_type, f.target_id, f.state] for r in results for f in r.findings
    )
    assert findings == EXPECTED["findings"]
    assert {r.id: r.status for r in results} == EXPECTED["statuses"]
    # The manifest holds every file's SHA-256 and the store snapshot digest: equal bytes
    # mean every file of the pack is byte-identical to the old code's.
    assert (pack / "manifest.json").read_text(encoding="utf-8") == EXPECTED["manifest"]


def test_an_unmigrated_store_reads_as_the_default_account_only(old_store: Path) -> None:
    # check/report open read-only and never migrate: the old layout is the default account.
    with Store(old_store, read_only=True) as store:
        assert store.count("multimail_emails") > 0
    with pytest.raises(StoreError, match="predates accounts"):
        Store(old_store, read_only=True, account="eu")


def test_a_table_a_later_migration_adds_gets_the_account_column(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Another harvested table (as a later issue adds them): listed in HARVESTED_TABLES and
    # created by a migration of its own that knows nothing about accounts.
    from auditkit.store import schema

    def create_usage(con: Any) -> None:
        con.execute(
            "CREATE TABLE multimail_usage (id VARCHAR PRIMARY KEY, sent INTEGER, "
            "raw JSON NOT NULL, raw_sha256 VARCHAR NOT NULL, run_id VARCHAR NOT NULL, "
            "harvested_at TIMESTAMPTZ NOT NULL)"
        )

    monkeypatch.setattr(schema, "HARVESTED_TABLES", (*HARVESTED_TABLES, "multimail_usage"))
    schema.MIGRATIONS.append(schema.Migration("9999_usage", create_usage))
    try:
        db = tmp_path / "s.duckdb"
        for account, sent in (("eu", 1), ("us", 2)):
            with Store(db, account=account) as store:
                store.upsert("multimail_usage", [with_provenance({"id": "day1", "sent": sent})])
        with Store(db, read_only=True, account="us") as store:
            assert store.query("SELECT id, sent FROM multimail_usage") == [("day1", 2)]
            assert store.query(
                f"SELECT account, sent FROM {store.base('multimail_usage')} ORDER BY 1"
            ) == [("eu", 1), ("us", 2)]
    finally:
        schema.MIGRATIONS.pop()
