"""`auditkit export` on the harvested sample quarter: the Iceberg tables read back with
pyiceberg and with DuckDB hold exactly the store's rows, the controls find the same on them,
a second export adds only what changed, one with no change commits nothing, and an export
killed mid-way and rerun leaves the catalog as a clean export does.

The store is built as the demo builds it: harvest the sandbox (real sockets on 127.0.0.1),
apply the source-side mutations, harvest again with a full audit-log scan, then verify the
sent-mail archive offline, so every exported table (archive ones included) has rows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from auditkit import config
from auditkit.cli import cli
from auditkit.controls import run_controls
from auditkit.export.iceberg import export_store, open_catalog
from auditkit.export.read import data_files, store_over_export
from auditkit.export.settings import CatalogTarget, catalog_target
from auditkit.export.tables import EXPORT_TABLES, ROW_DIGEST, with_digest
from auditkit.findings import parse_period
from auditkit.store import Store
from tests.conftest import ROOT, SAMPLE_DATA, sample_quarter_store

pytestmark = pytest.mark.slow
NAMES = [t.name for t in EXPORT_TABLES]


@pytest.fixture(scope="module")
def sample_store(
    harvested_sample_quarter: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, config.Settings]:
    """The harvested sample quarter with its DKIM archive harvested too."""
    from auditkit.archive import harvest_archive
    from auditkit.dkim_keys import load_keys_file

    db, settings = sample_quarter_store(harvested_sample_quarter, tmp_path_factory.mktemp("sample"))
    with Store(db) as store:
        harvest_archive(
            store,
            [SAMPLE_DATA / "archive"],
            load_keys_file(SAMPLE_DATA / "dns" / "keys.txt"),
            run_id="archive-test",
        )
    return db, settings


@pytest.fixture(scope="module")
def exported(
    sample_store: tuple[Path, config.Settings], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The sample store exported once through the CLI, as a user runs it."""
    db, _ = sample_store
    out = tmp_path_factory.mktemp("export") / "lake"
    result = CliRunner().invoke(cli, ["export", "--db", str(db), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [t["table"] for t in summary["tables"]] == NAMES
    return out


def local(out: Path) -> CatalogTarget:
    return catalog_target({}, out_dir=out, env={})


def store_digests(db: Path | str, table: str) -> list[str]:
    """Every row of the store table, as the digest of its exported values, sorted."""
    with Store(db, read_only=True) as store:
        spec = next(t for t in EXPORT_TABLES if t.name == table)
        rows = with_digest(spec.base_sql(store.con, store.base(table)))
        sql = f"SELECT {ROW_DIGEST} FROM ({rows}) ORDER BY 1"
        return [r[0] for r in store.query(sql)]


def exported_columns(db: Path | str, table: str) -> list[str]:
    """The exported columns in the store's order (a column added later sits elsewhere in
    the Iceberg schema; the digest covers the values in the store's order)."""
    with Store(db, read_only=True) as store:
        spec = next(t for t in EXPORT_TABLES if t.name == table)
        return list(store.con.sql(f"{spec.base_sql(store.con, store.base(table))} LIMIT 0").columns)


def digests_of(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> list[str]:
    """Digests recomputed from the values a reader returned (not the stored row_sha256)."""
    con.execute("SET TimeZone = 'UTC'")
    sql = with_digest("SELECT " + ", ".join(f'"{c}"' for c in columns) + f" FROM {relation}")
    return [r[0] for r in con.execute(f"SELECT {ROW_DIGEST} FROM ({sql}) ORDER BY 1").fetchall()]


def duckdb_digests(out: Path, table: str, columns: list[str]) -> list[str]:
    """Read with DuckDB's read_parquet over the files of pyiceberg's scan plan."""
    catalog = open_catalog(local(out))
    files = data_files(catalog.load_table(("auditkit", table)))
    if not files:
        return []
    con = duckdb.connect()
    listed = ", ".join(f"'{f}'" for f in files)
    con.execute(
        f"CREATE VIEW t AS SELECT * FROM read_parquet([{listed}], "
        "hive_partitioning = false, union_by_name = true)"
    )
    return digests_of(con, "t", columns)


def pyiceberg_digests(out: Path, table: str, columns: list[str]) -> list[str]:
    """Read with pyiceberg's own scan (Arrow)."""
    rows = open_catalog(local(out)).load_table(("auditkit", table)).scan().to_arrow()
    con = duckdb.connect()
    con.register("t", rows)
    return digests_of(con, "t", columns)


def assert_equal_to_store(out: Path, db: Path, table: str) -> int:
    """Both readers return exactly the store's rows; how many."""
    expected, columns = store_digests(db, table), exported_columns(db, table)
    assert pyiceberg_digests(out, table, columns) == expected, table
    assert duckdb_digests(out, table, columns) == expected, table
    return len(expected)


def snapshots(out: Path) -> dict[str, list[int]]:
    catalog = open_catalog(local(out))
    return {
        name: [s.snapshot_id for s in catalog.load_table(("auditkit", name)).snapshots()]
        for name in NAMES
    }


def test_every_table_reads_back_with_pyiceberg_and_duckdb_as_the_store_holds_it(
    sample_store: tuple[Path, config.Settings], exported: Path
) -> None:
    db, _ = sample_store
    counts = {name: assert_equal_to_store(exported, db, name) for name in NAMES}
    # Every table the controls read has rows here, so the comparison above means something.
    assert all(counts[name] > 0 for name in NAMES if name != "quarantine"), counts


def test_partitioned_by_account_and_month_of_the_time_column(exported: Path) -> None:
    catalog = open_catalog(local(exported))
    table = catalog.load_table(("auditkit", "multimail_emails"))
    fields = [(f.name, str(f.transform)) for f in table.spec().fields]
    assert fields == [("account", "identity"), ("created_at_month", "month")]
    months = {
        Path(f).parent.name
        for f in data_files(table)
        if "/account=default/" in f.replace("\\", "/")
    }
    assert {"created_at_month=2026-07", "created_at_month=2026-08"} <= months


def test_controls_on_views_over_the_export_find_what_they_find_on_the_store(
    sample_store: tuple[Path, config.Settings], exported: Path
) -> None:
    db, settings = sample_store
    period = parse_period("2026Q3")
    with Store(db, read_only=True) as store:
        expected = [r.to_dict() for r in run_controls(store, settings, period)]
    with store_over_export(open_catalog(local(exported)), "auditkit") as views:
        got = [r.to_dict() for r in run_controls(views, settings, period)]
    assert got == expected
    failing = {r["id"] for r in expected if r["status"] == "fail"}
    assert {"OVS-001", "CS-003", "ID-001"} <= failing  # planted in the sample quarter


def test_no_change_commits_nothing_and_new_rows_are_all_a_second_export_adds(
    sample_store: tuple[Path, config.Settings], tmp_path: Path
) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(sample_store[0], db)
    out = tmp_path / "lake"
    with Store(db, read_only=True) as store:
        first = export_store(store, local(out))
    before = snapshots(out)

    with Store(db, read_only=True) as store:
        again = export_store(store, local(out))
    assert [t.snapshot_id for t in again.tables] == [None] * len(NAMES)
    assert snapshots(out) == before

    with Store(db) as store:
        emails = store.base("multimail_emails")  # writes go to the table, not the view
        store.con.execute(
            f"INSERT INTO {emails} SELECT * REPLACE ('em_new_' || id AS id) "
            f"FROM {emails} WHERE direction = 'outbound' ORDER BY id LIMIT 2"
        )
    with Store(db, read_only=True) as store:
        second = export_store(store, local(out))
    changed = {t.table: t for t in second.tables if t.snapshot_id is not None}
    assert set(changed) == {"multimail_emails"}
    emails = changed["multimail_emails"]
    assert (emails.added, emails.removed) == (2, 0)
    table = open_catalog(local(out)).load_table(("auditkit", "multimail_emails"))
    latest = table.current_snapshot()
    assert latest is not None and latest.summary is not None
    assert latest.summary.operation.value == "append"
    assert latest.summary["added-records"] == "2"
    assert snapshots(out)["multimail_emails"] == before["multimail_emails"] + [emails.snapshot_id]
    assert emails.rows == first.tables[NAMES.index("multimail_emails")].rows + 2


def test_changed_and_removed_rows_are_replaced_and_deleted(
    sample_store: tuple[Path, config.Settings], tmp_path: Path
) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(sample_store[0], db)
    out = tmp_path / "lake"
    with Store(db, read_only=True) as store:
        export_store(store, local(out))
    with Store(db) as store:
        first, second = (r[0] for r in store.query("SELECT id FROM multimail_emails LIMIT 2"))
        store.con.execute(
            f"UPDATE {store.base('multimail_emails')} SET subject = subject || ' (edited)' "
            "WHERE id = ?",
            [first],
        )
        store.con.execute(f"DELETE FROM {store.base('multimail_emails')} WHERE id = ?", [second])
        # One of two rows sharing a key prefix (sha256, signature_index) goes.
        store.con.execute(
            f"DELETE FROM {store.base('archive_dkim_results')} WHERE (sha256, signature_index) IN "
            "(SELECT (sha256, signature_index) FROM archive_dkim_results ORDER BY ALL LIMIT 1)"
        )
    with Store(db, read_only=True) as store:
        summary = export_store(store, local(out))
    by_table = {t.table: t for t in summary.tables}
    assert (by_table["multimail_emails"].added, by_table["multimail_emails"].removed) == (1, 2)
    assert by_table["archive_dkim_results"].removed >= 1
    for name in ("multimail_emails", "archive_dkim_results"):
        assert_equal_to_store(out, db, name)


def test_a_column_a_migration_adds_is_added_to_the_exported_table(
    sample_store: tuple[Path, config.Settings], tmp_path: Path
) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(sample_store[0], db)
    out = tmp_path / "lake"
    with Store(db, read_only=True) as store:
        export_store(store, local(out))
    with Store(db) as store:
        store.con.execute(
            f"ALTER TABLE {store.base('multimail_domains')} ADD COLUMN region VARCHAR DEFAULT 'eu'"
        )
        domains = store.count("multimail_domains")
    with Store(db, read_only=True) as store:
        summary = export_store(store, local(out))
    changed = {t.table: (t.added, t.removed) for t in summary.tables if t.snapshot_id}
    assert changed == {"multimail_domains": (domains, domains)}  # every row has a new value
    table = open_catalog(local(out)).load_table(("auditkit", "multimail_domains"))
    assert "region" in table.schema().column_names
    assert_equal_to_store(out, db, "multimail_domains")


KILL_AT_COMMIT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import pyiceberg.table
    from auditkit.export.iceberg import export_store
    from auditkit.export.settings import catalog_target
    from auditkit.store import Store

    commit = pyiceberg.table.Transaction.commit_transaction
    calls = []

    def dying_commit(self):
        calls.append(1)
        if len(calls) == int(sys.argv[3]):
            print("killed before commit", len(calls), flush=True)
            os._exit(137)  # a crash: no cleanup, no exception handlers
        return commit(self)

    pyiceberg.table.Transaction.commit_transaction = dying_commit
    with Store(sys.argv[1], read_only=True) as store:
        export_store(store, catalog_target({}, out_dir=Path(sys.argv[2]), env={}))
    """
)


def columns_of(catalog: Any, name: str) -> list[str]:
    table = catalog.load_table(("auditkit", name))
    return [f.name for f in table.schema().fields if f.name != ROW_DIGEST]


def catalog_contents(out: Path) -> dict[str, Any]:
    """What a reader of the catalog sees: tables, schemas, partition specs and rows."""
    catalog = open_catalog(local(out))
    return {
        name: (
            str(catalog.load_table(("auditkit", name)).schema()),
            str(catalog.load_table(("auditkit", name)).spec()),
            pyiceberg_digests(out, name, columns_of(catalog, name)),
        )
        for name in sorted(t[1] for t in catalog.list_tables("auditkit"))
    }


def test_an_export_killed_before_a_commit_and_rerun_equals_a_clean_export(
    sample_store: tuple[Path, config.Settings], tmp_path: Path
) -> None:
    db = sample_store[0]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    # The 8th data commit is multimail_emails': seven tables are committed by then and its
    # Parquet files are written, but the catalog never learns of them.
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_COMMIT, str(db), str(killed), "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert "killed before commit 8" in proc.stdout
    catalog = open_catalog(local(killed))
    half = catalog.load_table(("auditkit", "multimail_emails"))
    assert half.current_snapshot() is None  # created, never committed to
    assert list((killed / "warehouse" / "auditkit" / "multimail_emails").rglob("*.parquet"))

    with Store(db, read_only=True) as store:
        rerun = export_store(store, local(killed))
        export_store(store, local(clean))
    committed = {t.table for t in rerun.tables if t.snapshot_id is not None}
    assert committed == set(NAMES[7:]) - {"quarantine"}  # only what the crash left undone
    assert catalog_contents(killed) == catalog_contents(clean)


def test_a_store_without_the_namespaces_account_cannot_wipe_its_tables(
    exported: Path, tmp_path: Path
) -> None:
    before = snapshots(exported)
    Store(tmp_path / "empty.duckdb").close()
    result = CliRunner().invoke(
        cli, ["export", "--db", str(tmp_path / "empty.duckdb"), "--out", str(exported)]
    )
    assert result.exit_code == 6, result.output
    assert "which this store does not hold" in result.output
    assert snapshots(exported) == before
    # Its own namespace is fine.
    result = CliRunner().invoke(
        cli,
        ["export", "--db", str(tmp_path / "empty.duckdb"), "--out", str(exported)]
        + ["--namespace", "other"],
    )
    assert result.exit_code == 0, result.output
