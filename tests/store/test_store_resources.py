"""DuckDB's memory limit and spill folder: set by the Store, read from `[store]`."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from auditkit.config import load
from auditkit.errors import ConfigError
from auditkit.store import READER_MEMORY_LIMIT, WRITER_MEMORY_LIMIT, Store
from auditkit.store.spill import SpillFolder


def setting(store: Store, name: str) -> str:
    return str(store.query(f"SELECT current_setting('{name}')")[0][0])


def as_bytes(size: str) -> float:
    """DuckDB shows a limit as e.g. '488.2 MiB'; compare limits by bytes."""
    number, unit = size.split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


def test_a_writer_is_capped_and_spills_beside_the_store(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    with Store(db) as store:
        assert as_bytes(setting(store, "memory_limit")) == pytest.approx(512e6, rel=0.01)
        spill = Path(setting(store, "temp_directory"))
        assert spill.parent == tmp_path and spill.name.startswith("auditkit-spill-")
        assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    assert not spill.exists()  # removed on close
    assert WRITER_MEMORY_LIMIT == "512MB"


def test_a_reader_is_capped_at_1gb_not_duckdbs_share_of_ram(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    Store(db).close()
    with Store(db, read_only=True) as store:
        assert READER_MEMORY_LIMIT == "1GB"
        assert as_bytes(setting(store, "memory_limit")) == pytest.approx(1e9, rel=0.01)
        assert Path(setting(store, "temp_directory")).parent != tmp_path


def test_configured_limit_and_temp_directory(tmp_path: Path) -> None:
    db, temp = tmp_path / "a.duckdb", tmp_path / "spills" / "here"
    with Store(db, memory_limit="256MB", temp_directory=temp) as store:
        assert as_bytes(setting(store, "memory_limit")) == pytest.approx(256e6, rel=0.01)
        spill = Path(setting(store, "temp_directory"))
        assert spill.parent == temp
        # Two stores never share a spill folder.
        with Store(":memory:", temp_directory=temp) as other:
            assert Path(setting(other, "temp_directory")) != spill
    assert temp.is_dir() and not list(temp.iterdir())


def test_a_size_duckdb_refuses_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a size DuckDB accepts"):
        Store(tmp_path / "a.duckdb", memory_limit="lots")


def test_store_settings_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "store.toml"  # not ./auditkit.toml: tests run in tmp_path, read by default
    cfg.write_text('[store]\nmemory_limit = "1GB"\ntemp_directory = "/srv/tmp"\n', encoding="utf-8")
    settings = load(cfg, env={})
    assert settings.store_options() == {
        "memory_limit": "1GB",
        "temp_directory": Path("/srv/tmp"),
    }
    assert load(env={}).store_options() == {"memory_limit": None, "temp_directory": None}
    cfg.write_text('[store]\nmemory_limit = "lots"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"store\.memory_limit must be a size such as 512MB"):
        load(cfg, env={})


def spill_folders(base: Path) -> list[Path]:
    return sorted(p for p in base.glob("auditkit-spill-*") if p.is_dir())


def test_opening_a_store_sweeps_spill_folders_no_live_process_holds(tmp_path: Path) -> None:
    """A killed process never closes its store: its spill folder stays unless a later open
    removes it. Only folders whose lock no one holds go; a live store's, a folder without
    a lock file (an older auditkit's) and other files stay."""
    db = tmp_path / "a.duckdb"
    live = SpillFolder(tmp_path)  # another process's open store, as far as flock can tell
    dead = SpillFolder(tmp_path)
    os.close(dead._fd)  # its process died: the kernel let go of the lock, nothing was removed
    (dead.path / "duckdb_temp_storage-0.tmp").write_bytes(b"\0" * 4096)
    legacy = tmp_path / "auditkit-spill-legacy"
    legacy.mkdir()
    (tmp_path / "auditkit-spill-a-file").write_text("not a folder", encoding="utf-8")
    with Store(db) as store:
        own = Path(setting(store, "temp_directory"))
        assert spill_folders(tmp_path) == sorted([live.path, legacy, own])
    assert spill_folders(tmp_path) == sorted([live.path, legacy])
    assert (tmp_path / "auditkit-spill-a-file").exists()
    live.remove()


def test_a_killed_writers_spill_folder_goes_at_the_next_open(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from auditkit.store import Store; s = Store(sys.argv[1]); "
            "print(s.query(\"SELECT current_setting('temp_directory')\")[0][0], flush=True); "
            "time.sleep(600)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        left = Path(holder.stdout.readline().strip())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert left.parent == tmp_path and left.is_dir()  # SIGKILL: nothing closed it
    with Store(db, read_only=True, temp_directory=tmp_path) as store:
        assert not left.exists()
        assert spill_folders(tmp_path) == [Path(setting(store, "temp_directory"))]
    assert spill_folders(tmp_path) == []
