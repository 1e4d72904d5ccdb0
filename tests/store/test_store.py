"""Store: migrations, bulk upsert semantics, cursors with data, locking and permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditkit.errors import StoreError
from auditkit.store import (
    MIGRATIONS,
    Cursor,
    IntegrityEvent,
    Load,
    Quarantined,
    Store,
    canonical_json,
    sha256_hex,
)

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def key_row(key_id: str, name: str, scopes: list[str] | None) -> dict[str, object]:
    raw = canonical_json({"id": key_id, "name": name, "scopes": scopes})
    return {
        "id": key_id,
        "name": name,
        "scopes": scopes,
        "raw": raw,
        "raw_sha256": sha256_hex(raw),
        "run_id": "r1",
        "harvested_at": NOW,
    }


def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        assert store.applied_migrations() == [m.name for m in MIGRATIONS]
        assert store.pending_migrations() == []
    with Store(path) as store:  # reopening applies nothing twice
        assert store.migrate() == []


def test_upsert_dedupes_within_batch_last_wins_and_replaces() -> None:
    with Store(":memory:") as store:
        n = store.upsert(
            "multimail_api_keys",
            [key_row("k1", "old", ["read"]), key_row("k1", "new", ["read", "send"])],
        )
        assert n == 2
        assert store.query("SELECT id, name, scopes FROM multimail_api_keys") == [
            ("k1", "new", ["read", "send"])
        ]
        store.upsert("multimail_api_keys", [key_row("k1", "again", None), key_row("k2", "two", [])])
        assert store.query("SELECT id, name, scopes FROM multimail_api_keys ORDER BY id") == [
            ("k1", "again", None),
            ("k2", "two", []),
        ]


def test_upsert_replacing_full_rows_is_atomic_with_the_callers_transaction() -> None:
    # Existing keys are deleted and re-inserted; a rollback must bring the old rows back.
    with Store(":memory:") as store:
        store.upsert(
            "multimail_api_keys", [key_row("k1", "old", ["read"]), key_row("k2", "two", None)]
        )
        with pytest.raises(RuntimeError), store.transaction():
            store.upsert(
                "multimail_api_keys", [key_row("k1", "new", None), key_row("k3", "three", None)]
            )
            assert store.count("multimail_api_keys") == 3
            raise RuntimeError("crash before commit")
        assert store.query("SELECT id, name, scopes FROM multimail_api_keys ORDER BY id") == [
            ("k1", "old", ["read"]),
            ("k2", "two", None),
        ]
        with store.transaction():
            store.upsert(
                "multimail_api_keys", [key_row("k1", "new", None), key_row("k3", "three", None)]
            )
        assert store.query("SELECT id, name, scopes FROM multimail_api_keys ORDER BY id") == [
            ("k1", "new", None),
            ("k2", "two", None),
            ("k3", "three", None),
        ]


def test_upsert_of_partial_rows_keeps_the_columns_not_given() -> None:
    with Store(":memory:") as store:
        store.upsert("multimail_api_keys", [key_row("k1", "old", ["read"])])
        partial = {k: v for k, v in key_row("k1", "renamed", None).items() if k != "scopes"}
        store.upsert("multimail_api_keys", [partial])
        assert store.query("SELECT name, scopes FROM multimail_api_keys") == [("renamed", ["read"])]


def test_upsert_with_a_composite_key_replaces_only_matching_pairs() -> None:
    def result(sig: int, status: str) -> dict[str, object]:  # a full row: delete + insert
        return {
            "sha256": "m1",
            "signature_index": sig,
            "domain": "nw.example",
            "selector": "s1",
            "result": status,
            "reason": None,
            "aligned_with_from": True,
            "key_record_id": None,
            "verified_at": NOW,
            "run_id": "r1",
        }

    with Store(":memory:") as store:
        store.upsert(
            "archive_dkim_results",
            [result(0, "pass"), result(1, "fail")],
            pk=["sha256", "signature_index"],
        )
        store.upsert("archive_dkim_results", [result(1, "pass")], pk=["sha256", "signature_index"])
        assert store.query(
            "SELECT signature_index, result FROM archive_dkim_results ORDER BY signature_index"
        ) == [(0, "pass"), (1, "pass")]


def test_upsert_rejects_unknown_column() -> None:
    with Store(":memory:") as store, pytest.raises(StoreError, match="has no column 'bogus'"):
        store.upsert("multimail_api_keys", [{**key_row("k", "n", None), "bogus": 1}])


def test_cursor_rolls_back_with_its_data() -> None:
    with Store(":memory:") as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.upsert("multimail_api_keys", [key_row("k1", "n", None)])
            store.set_cursor("multimail", "api_keys", "c1", "r1")
            raise RuntimeError("crash between data and commit")
        assert store.count("multimail_api_keys") == 0
        assert store.get_cursor("multimail", "api_keys") is None
        with store.transaction():
            store.upsert("multimail_api_keys", [key_row("k1", "n", None)])
            store.set_cursor("multimail", "api_keys", "c1", "r1")
        assert store.get_cursor("multimail", "api_keys") == "c1"


def test_commit_batch_lands_rows_books_and_cursors_together_or_not_at_all() -> None:
    quarantined = [Quarantined("r1", "multimail", "/v1/api-keys", "missing id", '{"x":1}')]
    event = IntegrityEvent("r1", "email", "e1", "changed", "a", '{"a":1}', "b", '{"b":1}')
    cursor = Cursor("multimail", "api_keys", "c1", "r1")
    with Store(":memory:") as store:
        with pytest.raises(StoreError, match="has no column 'bogus'"):
            store.commit_batch(
                "multimail_api_keys",
                [key_row("k1", "n", None)],
                also=[Load("multimail_domains", [{"bogus": 1}])],
                cursors=[cursor],
                quarantine=quarantined,
                integrity=[event],
            )
        for table in ("multimail_api_keys", "quarantine", "integrity_events"):
            assert store.count(table) == 0
        assert store.get_cursor("multimail", "api_keys") is None
        written = store.commit_batch(
            "multimail_api_keys",
            [key_row("k1", "n", None), key_row("k2", "m", None)],
            cursors=[cursor],
            quarantine=quarantined,
            integrity=[event, event],  # the same change twice is one event
        )
        assert written == 2
        assert [store.count(t) for t in ("quarantine", "integrity_events")] == [1, 1]
        assert store.get_cursor("multimail", "api_keys") == "c1"
        # A snapshot replaces the whole table; replace_where only the rows it names.
        store.commit_batch("multimail_api_keys", [key_row("k3", "o", None)], replace_all=True)
        assert store.query("SELECT id FROM multimail_api_keys") == [("k3",)]
        store.commit_batch(
            also=[
                Load(
                    "multimail_api_keys",
                    [key_row("k4", "p", None)],
                    replace_where=("id", ["k3", "absent"]),
                )
            ]
        )
        assert store.query("SELECT id FROM multimail_api_keys") == [("k4",)]


def test_status_counts_runs_and_listing_watermarks() -> None:
    with Store(":memory:") as store:
        assert store.status().last_successful_harvest is None
        store.start_run("r1", "harvest", {})
        store.finish_run("r1", "ok", {})
        store.start_run("r2", "harvest", {})
        store.upsert("multimail_api_keys", [key_row("k1", "n", None)])
        raw = canonical_json({"id": "mb1"})
        store.upsert(
            "multimail_mailboxes",
            [
                {"id": mb, "address": f"{mb}@x.example", "raw": raw, "raw_sha256": sha256_hex(raw)}
                | {"run_id": "r1", "harvested_at": NOW}
                for mb in ("mb1", "mb2")
            ],
        )
        store.set_cursor("multimail", "emails_listed:mb1:outbound", NOW.isoformat(), "r1")
        status = store.status()
        assert status.counts["multimail_api_keys"] == 1 and status.counts["quarantine"] == 0
        assert {(r[0], r[4]) for r in status.runs} == {("r1", "ok"), ("r2", "running")}
        assert status.mailboxes == [
            ("mb1", "mb1@x.example", NOW.isoformat()),
            ("mb2", "mb2@x.example", None),
        ]
        assert status.last_successful_harvest is not None
        doc = status.to_dict("s.duckdb", status.last_successful_harvest)
        assert doc["hours_since_last_successful_harvest"] == 0
        assert doc["runs"][0].keys() == {
            "run_id",
            "command",
            "started_at",
            "finished_at",
            "outcome",
            "duration_seconds",
        }


def test_quarantine_is_idempotent() -> None:
    with Store(":memory:") as store:
        for _ in range(2):
            store.quarantine("r1", "multimail", "/v1/audit-log", "missing id", '{"action":"x"}')
        assert store.count("quarantine") == 1


def test_store_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_second_writer_process_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path):
        code = (
            "import sys\nfrom auditkit.store import Store\n"
            "from auditkit.errors import StoreInUseError\n"
            f"try:\n    Store({str(path)!r})\n"
            "except StoreInUseError as e:\n    print(e); sys.exit(5)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 5, proc.stderr
    # The holder is named (this test's own process), and why a reader has to wait too.
    assert f"is in use by PID {os.getpid()}" in proc.stdout, proc.stdout
    assert "readers included" in proc.stdout


def test_corrupt_and_missing_store_are_store_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be opened"):
        Store(bad)
    with pytest.raises(StoreError, match="does not exist: run `auditkit harvest` first"):
        Store(tmp_path / "absent.duckdb", read_only=True)


def test_snapshot_digest_changes_with_content() -> None:
    with Store(":memory:") as store:
        empty = store.snapshot_digest(["multimail_api_keys"])
        store.upsert("multimail_api_keys", [key_row("k1", "n", None)])
        one = store.snapshot_digest(["multimail_api_keys"])
        assert one != empty
        assert store.snapshot_digest(["multimail_api_keys"]) == one


def test_snapshot_digest_matches_its_documented_definition() -> None:
    import hashlib

    with Store(":memory:") as store:
        store.upsert("multimail_api_keys", [key_row(f"k{i}", "n", None) for i in range(2500)])
        expected = hashlib.sha256()
        for table in ["multimail_api_keys", "multimail_domains"]:
            expected.update(table.encode())
            for rid, digest in store.query(f"SELECT id, raw_sha256 FROM {table} ORDER BY id"):
                expected.update(f"\n{rid}\t{digest}".encode())
        assert (
            store.snapshot_digest(["multimail_domains", "multimail_api_keys"])
            == expected.hexdigest()
        )


@pytest.mark.parametrize("read", ["count", "get_cursor", "database_name"])
def test_store_reads_leave_no_result_open(read: str) -> None:
    """DuckDB 2.0 keeps a fetchone() result open, and `register` (how the bulk load hands
    DuckDB an Arrow table) then refuses the connection: the store's reads leave none open."""
    import pyarrow as pa

    from auditkit.store.schema import database_name

    with Store(":memory:") as store:
        store.commit_batch(cursors=[Cursor("multimail", "api_keys", "c1", "r1")])
        {
            "count": lambda: store.count("multimail_api_keys"),
            "get_cursor": lambda: store.get_cursor("multimail", "api_keys"),
            "database_name": lambda: database_name(store.con),
        }[read]()
        store.con.register("_probe", pa.table({"a": [1]}))  # raises if a result is open
        store.con.unregister("_probe")
