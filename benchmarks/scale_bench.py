"""Benchmark: a generated year of 10,000,000 outbound messages in one store, on this machine.

The store is synthesised as controls_bench does (DuckDB SQL, no Python loops), spread over
the year 2026. Each step runs in a fresh process measured from outside (benchmarks.child):

1. controls over the year (`run_controls`, as `auditkit check --period 2026-01-01..2026-12-31`),
   `--repeat` times, reported as medians; target < 60 s;
2. the full-year pack, as `auditkit report` builds it (`pipeline.build_pack`: the controls,
   then the pack, PDF pages capped as usual), once; target < 4 min and < 2 GB peak RSS;
3. the Iceberg export round trip (benchmarks.export_bench phases): the first export of every
   table, then reading it back and running the controls over the year on the export.

    python -m benchmarks.scale_bench [--messages N] [--repeat N] [--keep DIR] [--no-export]

With --keep, an existing store of the right size in DIR is reused (synthesis takes minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from auditkit.config import Settings
from auditkit.findings import parse_period
from auditkit.store import Store
from benchmarks.child import Measured, run_measured

YEAR = "2026-01-01..2026-12-31"
PACK_LINE = "auditkit.report: pack: "


def _settings(db: Path) -> Settings:
    from benchmarks.controls_bench import SETTINGS

    return dataclasses.replace(
        SETTINGS, db_path=db, company_name="Northwind Supply Co.", intercom_app_id="abc123de"
    )


def _controls_child(db: Path) -> None:
    from auditkit.controls import run_controls

    timings: dict[str, float] = {}
    with Store(db, read_only=True) as store:
        t0 = time.perf_counter()
        results = run_controls(store, _settings(db), parse_period(YEAR), timings=timings)
        seconds = time.perf_counter() - t0
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:3]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "findings": sum(len(r.findings) for r in results),
                "errors": [r.id for r in results if r.status == "error"],
                "slowest": slowest,
            }
        )
    )


def _pack_child(db: Path, out: Path) -> None:
    """`auditkit report` for the year; the pack's own phase lines come from its log."""
    from auditkit.pipeline import build_pack

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logging.getLogger("auditkit.report").addHandler(Keep())
    logging.getLogger("auditkit.report").setLevel(logging.INFO)
    t0 = time.perf_counter()
    summary = build_pack(_settings(db), parse_period(YEAR), out)
    seconds = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    phases = [line.removeprefix("pack: ") for line in lines if line.startswith("pack: ")]
    counts = summary.get("counts", {})
    print(json.dumps({"seconds": seconds, "phases": phases, "sizes": sizes, "counts": counts}))


def _synthesise(db: Path, messages: int) -> tuple[float, int]:
    from benchmarks.controls_bench import synthesise

    if db.exists():
        with Store(db, read_only=True) as store:
            n = store.count("multimail_emails")
        if n == messages:
            return 0.0, n
        db.unlink()
    t0 = time.perf_counter()
    # The synthesis stages the year in TEMP tables (controls_bench), which the writers'
    # default 512MB cannot hold at 10M rows; it is set-up, not a step measured here.
    with Store(db, memory_limit="8GB") as store:
        synthesise(store, messages, first_day="2026-01-01", days=365)
        n = store.count("multimail_emails")
    return time.perf_counter() - t0, n


def _row(label: str, runs: list[Measured], target: str, note: str) -> str:
    wall = statistics.median(r.wall for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    rss = max(r.rss_mib for r in runs)
    return f"| {label} | {wall:.1f} | {cpu:.1f} | {rss:,.0f} | {target} | {note} |"


def _progress(step: str, run: Measured) -> None:
    """Each step's figures on stderr as it ends, so a long run that dies later keeps them."""
    print(
        f"{step}: {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, {run.rss_mib:,.0f} MiB; "
        f"{run.output[-300:] or run.error}",
        file=sys.stderr,
        flush=True,
    )


def _last_elapsed(phases: list[str]) -> str:
    """The elapsed seconds of the pack's last phase line ("… after 44.0s (CPU 43.2s)")."""
    found = re.search(r"after ([\d.]+)s", phases[-1]) if phases else None
    return found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="controls runs (median)")
    parser.add_argument("--keep", type=Path, default=None, help="keep (and reuse) the store")
    parser.add_argument("--no-export", action="store_true", help="skip the export round trip")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, db, *rest = args.child
        if kind == "controls":
            _controls_child(Path(db))
        else:
            _pack_child(Path(db), Path(rest[0]))
        return

    from benchmarks.export_bench import run_phase

    work = args.keep or Path(tempfile.mkdtemp(prefix="auditkit-scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "year.duckdb"
    try:
        build_s, n = _synthesise(db, args.messages)
        store_mib = db.stat().st_size / 2**20
        load_before = os.getloadavg()
        controls = []
        for _ in range(args.repeat):
            controls.append(run_measured("benchmarks.scale_bench", "--child", "controls", str(db)))
            _progress("controls", controls[-1])
        shutil.rmtree(work / "pack", ignore_errors=True)
        pack = run_measured(
            "benchmarks.scale_bench", "--child", "pack", str(db), str(work / "pack"), check=False
        )
        _progress("pack", pack)
        trip: dict[str, dict[str, float | str]] = {}
        if not args.no_export:
            lake = work / "lake"
            shutil.rmtree(lake, ignore_errors=True)
            trip["export"] = run_phase("export", db, lake)
            print(f"export: {trip['export']}", file=sys.stderr, flush=True)
            trip["read"] = run_phase("read", db, lake, period=YEAR)
        load_after = os.getloadavg()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    checked = [json.loads(r.output.splitlines()[-1]) for r in controls]
    packed = json.loads(pack.output.splitlines()[-1]) if pack.exit_code == 0 else None
    print("## scale\n")
    print(
        f"A generated year: {n:,} outbound messages over 2026 with their audit entries, "
        f"synthesised as controls_bench does"
        + (f" in {build_s:.0f} s" if build_s else " (store reused)")
        + f"; store file {store_mib:,.0f} MiB. Each step is a fresh process; wall and CPU "
        f"are medians of the runs, peak RSS the largest (os.wait4).\n"
    )
    print("| step | wall s | CPU s | peak RSS MiB | target | what it did |")
    print("|---|---:|---:|---:|---|---|")
    slow = ", ".join(f"{c} {s:.1f} s" for c, s in checked[0]["slowest"])
    print(
        _row(
            f"controls over the year ({len(controls)} runs)",
            controls,
            "< 60 s",
            f"{checked[0]['findings']:,} findings; slowest {slow}"
            + (f"; ERRORS in {checked[0]['errors']}" if checked[0]["errors"] else ""),
        )
    )
    if packed is None:
        what = f"FAILED (exit {pack.exit_code}): {pack.error}"
    else:
        what = (
            f"write_pack {_last_elapsed(packed['phases'])} s of it; "
            f"{packed['counts'].get('message_pages', 0):,} message pages; "
            + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in packed["sizes"].items())
        )
    print(_row("full-year pack (controls + pack, 1 run)", [pack], "< 4 min, < 2 GB", what))
    for phase, label in (("export", "first export, every table"), ("read", "read back")):
        if phase in trip:
            r = trip[phase]
            print(
                f"| {label} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mib']:,.0f} | "
                f"| {r['note']} |"
            )
    if packed is not None:
        print("\nPack phases (elapsed inside `write_pack`): " + "; ".join(packed["phases"]) + ".")
    print(
        f"\nLoad average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    sys.exit(main())
