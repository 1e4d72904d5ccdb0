"""Benchmark: the evidence pack for a quarter of 1,000,000 outbound messages, and a
single-message evidence pack through the CLI.

The store is filled with DuckDB SQL by `controls_bench.synthesise` (no Python loops), and
a few thousand hand-built findings stand in for the control results, so this measures the
report alone. The pack is written in a fresh process whose wall time and peak RSS are
measured from outside; then `auditkit evidence ID` runs as a subprocess, start-up included.
Targets (issue 15): whole pack < 20 s and < 1.5 GB peak RSS; single-message evidence < 1 s.
Then `report_signing` measures attaching the CSVs to the PDF/A-3 and signing +
timestamping, each alone, and the whole pack again, signed.

    python -m benchmarks.report_bench [--messages N] [--findings N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from auditkit.config import Settings
from auditkit.findings import ControlResult, Finding, parse_period
from auditkit.store import Store
from benchmarks.startup_bench import fresh_process_median

SETTINGS = Settings(company_name="Northwind Supply Co.", intercom_app_id="abc123de")


def synthetic_results(store: Store, findings: int) -> list[ControlResult]:
    """`findings` email findings spread over three controls, chosen by a hash of the id."""
    every = max(1, store.count("multimail_emails") // max(findings, 1))
    ids = [
        r[0]
        for r in store.query(
            f"SELECT id FROM multimail_emails WHERE hash(id) % {every} = 0 "
            f"ORDER BY id LIMIT {findings}"
        )
    ]
    controls = [
        ("OVS-001", "Gated mail approved before sending", "high"),
        ("CS-05", "Opt-out notice in commercial mail", "medium"),
        ("TR-001", "Email linked to an Intercom conversation", "low"),
    ]
    out = []
    for n, (cid, title, severity) in enumerate(controls):
        picked = ids[n :: len(controls)]
        out.append(
            ControlResult(
                id=cid,
                title=title,
                severity=severity,
                status="fail" if picked else "pass",
                checked=1_000_000,
                rationale="Synthetic benchmark control.",
                reference="benchmark",
                findings=tuple(
                    Finding(cid, "email", i, f"Synthetic finding for {i}.", {"email_id": i, "n": k})
                    for k, i in enumerate(picked)
                ),
            )
        )
    return out


def write_pack_child(db: Path, out: Path, findings: int) -> None:
    """Runs in the measured child process: open read-only, write the pack, print JSON."""
    from auditkit.report import write_pack

    with Store(db, read_only=True) as store:
        results = synthetic_results(store, findings)
        t0 = time.perf_counter()
        pack = write_pack(store, SETTINGS, parse_period("2026Q3"), out, results=results)
        seconds = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(json.dumps({"seconds": seconds, "counts": pack.counts, "sizes": sizes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--findings", type=int, default=3_000)
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the store and packs in this folder"
    )
    parser.add_argument("--child", nargs=2, metavar=("DB", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        logging.getLogger("weasyprint").setLevel(logging.ERROR)
        write_pack_child(Path(args.child[0]), Path(args.child[1]), args.findings)
        return

    from benchmarks.controls_bench import synthesise

    load = os.getloadavg()  # wall times mean little on a busy machine: the section says so
    work = args.keep or Path(tempfile.mkdtemp(prefix="auditkit-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.duckdb"
    db.unlink(missing_ok=True)
    try:
        t0 = time.perf_counter()
        with Store(db) as store:
            synthesise(store, args.messages)
            store.con.execute("CHECKPOINT")
            n = store.count("multimail_emails")
            one_id = store.query("SELECT id FROM multimail_emails ORDER BY id LIMIT 1")[0][0]
        build = time.perf_counter() - t0

        load_before = os.getloadavg()
        cpu0 = _children_cpu()
        t1 = time.perf_counter()
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.report_bench",
                "--findings",
                str(args.findings),
                "--child",
                str(db),
                str(work / "pack"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t1
        pack_cpu = _children_cpu() - cpu0  # the pack process and its PDF worker
        if child.returncode != 0:
            raise SystemExit(f"pack child failed:\n{child.stderr[-3000:]}")
        phases = [
            line.split(": ", 1)[1]
            for line in child.stderr.splitlines()
            if "auditkit.report: pack: " in line
        ]
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
        report = json.loads(child.stdout.strip().splitlines()[-1])

        # This interpreter's auditkit (python -m), not whatever `auditkit` script is on disk.
        cmd = [sys.executable, "-m", "auditkit", "-v", "evidence", one_id]
        cmd += ["--db", str(db), "--out", str(work / "one")]
        t2 = time.perf_counter()
        cpu1 = _children_cpu()
        single = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env={**os.environ}
        )
        single_s = time.perf_counter() - t2
        single_cpu = _children_cpu() - cpu1
        load_after = os.getloadavg()
        if single.returncode != 0:
            raise SystemExit(f"auditkit evidence failed:\n{single.stderr[-3000:]}")
        imports = {
            what: fresh_process_median([sys.executable, "-c", code], IMPORT_RUNS)[0]
            for what, code in IMPORT_PROBES.items()
        }

        # -- PDF/A attaching and signing: separate steps (benchmarks/report_signing.py) --
        from benchmarks import report_signing

        signing_steps = report_signing.measure(db, work / "pack", work, args.findings)
        # -- end of PDF/A attaching and signing --
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    mb = {k: v / 1e6 for k, v in report["sizes"].items()}
    print("## report\n")
    print(
        f"Synthetic store: {n:,} outbound messages (built with DuckDB SQL in {build:.1f} s), "
        f"{args.findings:,} findings. Load average (1, 5, 15 min) at the start: "
        + "/".join(f"{x:.1f}" for x in load)
        + f" on {os.cpu_count()} cores (above the core count, wall times are inflated; "
        "CPU times are not).\n"
    )
    print("| measure | value | target |\n|---|---|---|")
    print(f"| whole pack, `write_pack` | {report['seconds']:.1f} s | < 20 s |")
    print(f"| whole pack, process wall time incl. start-up | {wall:.1f} s | |")
    print(f"| whole pack, CPU time (user + sys, PDF worker included) | {pack_cpu:.1f} s | |")
    print(f"| peak RSS of the pack process | {peak_mb:,.0f} MB | < 1,500 MB |")
    print(
        "| `auditkit evidence ID` (one message, subprocess incl. start-up and controls) "
        f"| {single_s:.2f} s | < 1 s |"
    )
    print(f"| `auditkit evidence ID`, CPU time (user + sys) | {single_cpu:.2f} s | |")
    print(
        "| message evidence pages in the PDF "
        f"| {report['counts'].get('message_pages', 0):,} | flagged ≤ 200 + sample 25 |"
    )
    print(
        "\nPhases (elapsed inside `write_pack`): "
        + "; ".join(p.removeprefix("pack: ") for p in phases)
        + "."
    )
    print("\nFile sizes: " + ", ".join(f"{k} {v:.1f} MB" for k, v in mb.items()))
    print("\n" + report_signing.markdown(signing_steps))  # PDF/A attaching and signing
    print(_cpu_split(phases, pack_cpu))
    print(_evidence_split(single.stderr, single_s, imports))
    print(
        "\nLoad average (1, 5, 15 min) before the pack: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after the evidence run: "
        + ", ".join(f"{x:.2f}" for x in load_after)
        + "."
    )


def _cpu_split(phases: list[str], pack_cpu: float) -> str:
    """Where the pack's CPU went: each phase's CPU in the pack process, from the
    "(CPU n s)" of its log line, and the PDF worker's as the rest of the process tree's."""
    marks = [
        (m.group(1), float(m.group(2)))
        for p in phases
        if (m := re.match(r"pack: (.+?) after [\d.]+s \(CPU ([\d.]+)s\)", p))
    ]
    if not marks:
        return ""
    steps, previous = [], 0.0
    for name, cpu in marks:
        steps.append(f"{name} {cpu - previous:.1f} s")
        previous = cpu
    return (
        f"\nCPU by phase, pack process (until each log line): {'; '.join(steps)}; "
        f"the PDF worker process plus start-up, OSCAL and manifest {pack_cpu - previous:.1f} s; "
        f"total {pack_cpu:.1f} s."
    )


# Fresh-process probes for what every `auditkit evidence` pays before its own work, each
# timed as the median of IMPORT_RUNS runs.
IMPORT_RUNS = 5
IMPORT_PROBES = {
    "the interpreter": "pass",
    "the CLI (duckdb, pyarrow, httpx and auditkit)": "import auditkit.cli.report, auditkit.store",
    "WeasyPrint (Pango and HarfBuzz through cffi)": "import weasyprint",
}


def _evidence_split(stderr: str, total: float, imports: dict[str, float]) -> str:
    """Where the one-message evidence time goes: its -v log lines (controls, then each
    `write_pack` phase) and the fresh-process cost of the imports it needs."""
    lines = [
        line.split(": ", 1)[1]
        for line in stderr.splitlines()
        if "auditkit.pipeline: pack: " in line or "auditkit.report: pack: " in line
    ]
    probes = "; ".join(f"{what} {seconds:.2f} s" for what, seconds in imports.items())
    return (
        f"\nWhere the {total:.2f} s of `auditkit evidence ID` go, from its `-v` log: "
        + "; ".join(line.removeprefix("pack: ") for line in lines)
        + f". Imports, each timed alone in a fresh process (median of {IMPORT_RUNS}): {probes}."
    )


def _children_cpu() -> float:
    """User + system CPU seconds of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
