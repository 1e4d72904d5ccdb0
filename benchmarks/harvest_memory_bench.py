"""Benchmark: peak memory of a first harvest as the message count grows (issue 15's bound:
1,000,000 messages in 1 GB or less, flat from 100,000).

For each size, the sample generator writes a quarter of that many messages, the sandbox
serves it from its own process with no added latency, and `auditkit harvest` runs into an
empty store as a fresh process, measured from outside (benchmarks.child: wall, CPU, peak
RSS). The store's own settings are the defaults a user gets.

    python -m benchmarks.harvest_memory_bench [--sizes 100000,1000000] [--keep DIR]

With --keep, generated samples in DIR are reused (generating 1M messages takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.child import Measured, run_measured
from benchmarks.harvest_bench import API_KEY, generate, start_sandbox


def _harvest(base_url: str, db: Path, intercom: bool) -> Measured:
    """`auditkit harvest` from the sandbox; the key reaches the child in its environment,
    never its argv, and no MultiMail or Intercom setting of ours leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIMAIL_", "INTERCOM_"))}
    env |= {"MULTIMAIL_API_URL": base_url, "MULTIMAIL_API_KEY": API_KEY}
    if intercom:
        env |= {"INTERCOM_API_URL": base_url, "INTERCOM_ACCESS_TOKEN": "ic_bench"}
    return run_measured("auditkit", "harvest", "--db", str(db), "--json", env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--keep", type=Path, default=None, help="keep (and reuse) samples")
    parser.add_argument(
        "--no-intercom-from",
        type=int,
        default=None,
        metavar="N",
        help="from N messages on, harvest MultiMail only (Intercom enrichment skipped)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = args.keep or Path(tempfile.mkdtemp(prefix="auditkit-harvest-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    load_before = os.getloadavg()
    try:
        for size in sizes:
            data = work / f"sample-{size}"
            t0 = time.perf_counter()
            if not (data / "multimail").is_dir():
                generate(data, size)
            generate_s = time.perf_counter() - t0
            db = work / f"harvest-{size}.duckdb"
            db.unlink(missing_ok=True)
            Path(f"{db}.wal").unlink(missing_ok=True)
            server, base_url = start_sandbox(data, 0.0)
            try:
                intercom = args.no_intercom_from is None or size < args.no_intercom_from
                run = _harvest(base_url, db, intercom)
                print(f"{size}: {run}", file=sys.stderr, flush=True)
            finally:
                server.communicate(input="", timeout=60)
            summary = json.loads(run.output)
            rows.append((size, generate_s, run, summary, db.stat().st_size / 2**20, intercom))
            db.unlink(missing_ok=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    print("## harvest memory\n")
    print(
        "A first harvest into an empty store, as `auditkit harvest` runs it (a fresh process; "
        "wall, CPU and peak RSS of that process alone), from the sandbox in another process "
        "with no added latency. Target: peak RSS flat as the count grows, 1 GB or less at "
        "1,000,000.\n"
    )
    print(
        "| messages | Intercom | emails stored | audit entries | wall s | CPU s | peak RSS MiB | "
        "store MiB | HTTP requests | CPU ms per request |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, _, run, summary, store_mib, intercom in rows:
        counts = summary["counts"]
        stored = counts.get("emails_outbound", 0) + counts.get("emails_inbound", 0)
        audit = counts.get("audit_log", 0)
        calls = summary["list_calls"] + summary["detail_calls"] + summary["intercom_calls"]
        print(
            f"| {size:,} | {'yes' if intercom else 'skipped'} | {stored:,} | {audit:,} | "
            f"{run.wall:.1f} | {run.cpu:.1f} | "
            f"{run.rss_mib:,.0f} | {store_mib:,.0f} | {calls:,} | {1000 * run.cpu / calls:.2f} |"
        )
    print(
        "\nSample generation (not part of the harvest): "
        + (", ".join(f"{size:,} in {g:.0f} s" for size, g, *_ in rows if g > 0.5) or "reused")
        + f". Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}"
        f"; after: {', '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    sys.exit(main())
