"""Benchmark: what several accounts in one store cost (issue 15).

1. A store in the layout before accounts (migrations up to 0003), filled with the controls
   benchmark's synthetic quarter, is opened by `Store`, which migrates it in place
   (`0005_accounts` rebuilds every scoped table with the account column): seconds and
   peak memory.
2. The controls run through the account's scoped TEMP views and, for comparison, on the
   tables directly (`controls_bench._compare_unscoped`): what the views cost.

    python -m benchmarks.accounts_bench [--messages N]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from auditkit.controls import run_controls
from auditkit.findings import parse_period
from auditkit.store import MIGRATIONS, Store
from benchmarks.controls_bench import SETTINGS, _compare_unscoped, _cpu_seconds, _synthesise


def pre_accounts_store(path: Path, messages: int) -> None:
    """A store as auditkit wrote it before accounts: migrations 0001–0003 and their rows."""
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            "CREATE TABLE _auditkit_migrations (name VARCHAR PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL)"
        )
        for m in MIGRATIONS:
            if m.name == "0005_accounts":
                break
            m.apply(con)
            con.execute("INSERT INTO _auditkit_migrations VALUES (?, now())", [m.name])
        _synthesise(con, messages)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auditkit-accounts-bench-") as tmp:
        path = Path(tmp) / "store.duckdb"
        t0 = time.perf_counter()
        pre_accounts_store(path, args.messages)
        built = time.perf_counter() - t0
        print(f"pre-accounts store of {args.messages:,} messages built in {built:.1f} s")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu0, t1 = _cpu_seconds(), time.perf_counter()
        with Store(path) as store:
            wall, cpu = time.perf_counter() - t1, _cpu_seconds() - cpu0
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(
                f"migration 0005_accounts in place: {wall:.1f} s wall, {cpu:.1f} s CPU, "
                f"peak RSS {rss / 1024:.0f} MiB (before: {rss0 / 1024:.0f} MiB); "
                f"{store.count('multimail_emails'):,} emails, accounts {store.stored_accounts()}"
            )
            scoped = run_controls(store, SETTINGS, parse_period("2026Q3"))  # warm-up
            _compare_unscoped(store, scoped)


if __name__ == "__main__":
    main()
