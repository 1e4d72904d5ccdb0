"""Benchmark: the Iceberg export round trip on a synthetic 1,000,000-message store.

The store is synthesised as controls_bench does (DuckDB SQL, no Python loops) into a file.
Then each phase runs in its own process, so its peak RSS is its own (os.wait4):

1. first export: every table into a local SQLite catalog (`auditkit export --out`);
2. read back: pyiceberg streams multimail_emails (Arrow batches), DuckDB views over the scan
   plan's data files count every table, and all controls run on those views;
3. export again with nothing changed (no commit: the cost of comparing digests);
4. export after 10,000 new messages (adds just those).

    python -m benchmarks.export_bench [--messages N]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from auditkit.store import Store
from benchmarks.child import run_measured

NEW_MESSAGES = 10_000
WHY_ICEBERG = (
    "Iceberg (pyiceberg), not DuckLake: DuckLake could not be measured here, because DuckDB "
    "2.0.1 cannot load its `ducklake` extension on this machine (`INSTALL ducklake` downloads "
    "from DuckDB's extension server, which is unreachable; the pip-packaged build, "
    "duckdb-extension-ducklake 1.5.5, refuses to load: built for v1.5.5 only). The same holds "
    "for DuckDB's `iceberg` extension, so DuckDB reads the Parquet files pyiceberg's scan plans."
)


def run_phase(phase: str, db: Path, out: Path, period: str = "2026Q3") -> dict[str, float | str]:
    """Run one phase in a child process; wall, CPU and peak RSS of that child alone.
    `period` is the one the read-back phase runs the controls over."""
    m = run_measured(
        "benchmarks.export_bench", "--phase", phase, str(db), str(out), "--period", period
    )
    return {"wall": m.wall, "cpu": m.cpu, "rss_mib": m.rss_mib, "note": m.output}


def _phase(phase: str, db: Path, out: Path, period: str) -> None:
    """Child side: do one phase and print a one-line note."""
    from auditkit.export.iceberg import export_store
    from auditkit.export.settings import catalog_target

    target = catalog_target({}, out_dir=out, env={})
    if phase in ("export", "unchanged", "incremental"):
        with Store(db, read_only=True) as store:
            summary = export_store(store, target)
        print(summary.one_line())
    elif phase == "read":
        _read_back(target, period)
    else:
        raise SystemExit(f"unknown phase {phase}")


def _read_back(target: object, period: str) -> None:
    from auditkit.controls import run_controls
    from auditkit.export.iceberg import open_catalog
    from auditkit.export.read import store_over_export
    from auditkit.export.settings import CatalogTarget
    from auditkit.export.tables import EXPORT_TABLES
    from auditkit.findings import parse_period
    from benchmarks.controls_bench import SETTINGS

    assert isinstance(target, CatalogTarget)
    catalog = open_catalog(target)
    t0 = time.perf_counter()
    emails = catalog.load_table((target.namespace, "multimail_emails"))
    streamed = sum(b.num_rows for b in emails.scan().to_arrow_batch_reader())
    pyiceberg_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    with store_over_export(catalog, target.namespace) as views:
        counted = sum(views.count(t.name) for t in EXPORT_TABLES)
        count_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        results = run_controls(views, SETTINGS, parse_period(period))
        controls_s = time.perf_counter() - t2
    errors = [r.id for r in results if r.status == "error"]
    print(
        f"pyiceberg streamed {streamed:,} emails in {pyiceberg_s:.1f} s; DuckDB views counted "
        f"{counted:,} rows in {count_s:.1f} s; {len(results)} controls on the views in "
        f"{controls_s:.1f} s" + (f"; ERRORS in {', '.join(errors)}" if errors else "")
    )


def _folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--phase", nargs=3, metavar=("PHASE", "DB", "OUT"), default=None)
    parser.add_argument("--period", default="2026Q3", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _phase(args.phase[0], Path(args.phase[1]), Path(args.phase[2]), args.period)
        return

    from benchmarks.controls_bench import synthesise

    with tempfile.TemporaryDirectory(prefix="auditkit-export-bench-") as tmp:
        db, out = Path(tmp) / "store.duckdb", Path(tmp) / "lake"
        t0 = time.perf_counter()
        with Store(db) as store:
            synthesise(store, args.messages)
            counts = {
                t: store.count(t)
                for t in ("multimail_emails", "multimail_audit_log", "intercom_conversations")
            }
        build_s = time.perf_counter() - t0
        store_mib = db.stat().st_size / 2**20
        load_before = os.getloadavg()
        rows = {}
        rows["export"] = run_phase("export", db, out)
        lake_mib = _folder_mib(out)
        rows["read"] = run_phase("read", db, out)
        rows["unchanged"] = run_phase("unchanged", db, out)
        with Store(db) as store:
            store.con.execute(
                "INSERT INTO multimail_emails SELECT * REPLACE ('em_new_' || id AS id) "
                f"FROM multimail_emails ORDER BY id LIMIT {NEW_MESSAGES}"
            )
        rows["incremental"] = run_phase("incremental", db, out)
        load_after = os.getloadavg()

    print("## export\n")
    print(
        f"Export round trip on a synthetic store of {counts['multimail_emails']:,} messages, "
        f"{counts['multimail_audit_log']:,} audit entries and "
        f"{counts['intercom_conversations']:,} conversations (synthesised as controls_bench "
        f"does, in {build_s:.0f} s; store file {store_mib:,.0f} MiB). Local SQLite catalog, "
        f"Parquet (zstd) files {lake_mib:,.0f} MiB after the first export. Each phase is its "
        "own process; peak RSS is that process's (os.wait4).\n"
    )
    print(WHY_ICEBERG + "\n")
    print("| phase | wall s | CPU s | peak RSS MiB | what it did |")
    print("|---|---:|---:|---:|---|")
    labels = {
        "export": "first export (every table)",
        "read": "read back (pyiceberg + DuckDB + controls)",
        "unchanged": "export again, nothing changed",
        "incremental": f"export after {NEW_MESSAGES:,} new messages",
    }
    for phase, label in labels.items():
        r = rows[phase]
        print(f"| {label} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mib']:,.0f} | {r['note']} |")
    print(
        f"\nLoad average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)} (2 cores shared with other "
        "work: wall times are inflated by load, CPU seconds less so)."
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"\nSynthesis process peak RSS {usage.ru_maxrss / 1024:,.0f} MiB (not part of the trip).")


if __name__ == "__main__":
    main()
