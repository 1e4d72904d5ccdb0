"""Benchmark: how long `auditkit --help`, `--version` and `status` take to start, and what the
interpreter and DuckDB alone cost, as the median of several fresh processes.

Wall time and CPU time (user + sys) are both given, with the load average: on a shared
machine the wall time mostly measures the other processes, and the CPU time is the
figure to compare. Target (issue 15): under 0.3 s each.

    python -m benchmarks.startup_bench [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from auditkit.store import Store

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pyarrow", "numpy", "pandas", "weasyprint", "httpx", "pyhanko")


def fresh_process_median(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU (user + sys) seconds of `cmd` run `runs` times, each a fresh
    process started from the repository root."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        )
    return statistics.median(walls), statistics.median(cpus)


def _heavy_imports(args: list[str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "auditkit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return sorted(n for n in names if n in (*HEAVY, "duckdb"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="auditkit-startup-") as tmp:
        db = Path(tmp) / "store.duckdb"
        with Store(db):
            pass
        cases = [
            ("`python -c pass` (the interpreter alone)", [py, "-c", "pass"], None),
            ("`python -c 'import duckdb'`", [py, "-c", "import duckdb"], None),
            ("`auditkit --help`", [py, "-m", "auditkit", "--help"], ["--help"]),
            ("`auditkit --version`", [py, "-m", "auditkit", "--version"], ["--version"]),
            (
                "`auditkit status` (empty store)",
                [py, "-m", "auditkit", "status", "--db", str(db)],
                ["status", "--db", str(db)],
            ),
        ]
        load_before = os.getloadavg()
        rows = []
        for label, cmd, auditkit_args in cases:
            wall, cpu = fresh_process_median(cmd, args.runs)
            loaded = _heavy_imports(auditkit_args) if auditkit_args else None
            rows.append((label, wall, cpu, loaded))
        load_after = os.getloadavg()
    print("## start-up\n")
    print(
        f"Median of {args.runs} fresh processes each. Target: `--help`, `--version` and "
        "`status` under 0.3 s.\n"
    )
    print("| command | wall | CPU (user + sys) | heavy libraries imported |\n|---|---|---|---|")
    for label, wall, cpu, loaded in rows:
        libs = "" if loaded is None else (", ".join(loaded) or "none")
        print(f"| {label} | {wall:.3f} s | {cpu:.3f} s | {libs} |")
    print(
        "\nLoad average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in load_after)
        + "."
    )


if __name__ == "__main__":
    main()
