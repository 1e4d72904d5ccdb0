"""Harvest throughput: 20,000 outbound messages from the sandbox at 25 ms per request.

`python -m benchmarks.harvest_bench [--messages N] [--latency-ms MS] [--concurrency C]`
prints a Markdown section: wall time against the concurrency-bound limit
`(list calls + detail calls) × latency / concurrency`, against a sequential
one-request-at-a-time client (timed on a slice of the same requests in the same run and
scaled to the full count), the store load rate and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from auditkit.config import Settings
from auditkit.harvest import COMMIT_ROWS, harvest
from auditkit.normalise import normalise_email
from auditkit.sources.multimail import AUDIT_PAGE_LIMIT
from auditkit.store import Store

API_KEY = "mm_bench_key"
SEQUENTIAL_SAMPLE = 400  # detail calls timed one at a time; scaled up to the full count


SANDBOX_SCRIPT = """
import sys, time
from pathlib import Path
from auditkit.sandbox import SandboxServer
server = SandboxServer(Path(sys.argv[1]), api_key=sys.argv[2], intercom_token="ic_bench",
                       latency_ms=float(sys.argv[3]))
server.start()
print(server.base_url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
server.stop()
"""


def start_sandbox(data: Path, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    """The sandbox in its own process, so its CPU time and memory are not the harvester's."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SANDBOX_SCRIPT, str(data), API_KEY, str(latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def generate(out: Path, messages: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "auditkit.sample", "--messages", str(messages), "--out", str(out)],
        check=True,
        capture_output=True,
    )


def sequential_seconds(
    base_url: str, store: Store, list_calls: int, detail_calls: int
) -> tuple[float, int]:
    """Time SEQUENTIAL_SAMPLE real detail reads one after another; scale to every call."""
    sample = store.query(
        "SELECT mailbox_id, id FROM multimail_emails WHERE direction = 'outbound' "
        "ORDER BY id LIMIT ?",
        [SEQUENTIAL_SAMPLE],
    )
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as client:
        t0 = time.perf_counter()
        for mailbox_id, email_id in sample:
            client.get(f"/v1/mailboxes/{mailbox_id}/emails/{email_id}").raise_for_status()
        per_call = (time.perf_counter() - t0) / len(sample)
    return per_call * (list_calls + detail_calls), len(sample)


def load_rate(store: Store, scratch: Path) -> tuple[float, int]:
    """Records/s for normalise + Arrow upsert in COMMIT_ROWS-row transactions (as harvested)."""
    raws = store.query("SELECT raw, mailbox_id FROM multimail_emails WHERE direction = 'outbound'")
    records = [(json.loads(r), m) for r, m in raws]
    with Store(scratch / "load.duckdb") as target:
        t0 = time.perf_counter()
        stamp = datetime.now(UTC)
        for start in range(0, len(records), COMMIT_ROWS):
            rows = []
            for record, mailbox_id in records[start : start + COMMIT_ROWS]:
                row = normalise_email(record, mailbox_id=mailbox_id, direction="outbound")
                row.update(run_id="bench", harvested_at=stamp, first_harvested_at=stamp)
                rows.append(row)
            with target.transaction():
                target.upsert("multimail_emails", rows)
        elapsed = time.perf_counter() - t0
    return len(records) / elapsed, len(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="auditkit-bench-") as tmp:
        scratch = Path(tmp)
        data = scratch / "data"
        t0 = time.perf_counter()
        generate(data, args.messages)
        generate_s = time.perf_counter() - t0
        server, base_url = start_sandbox(data, args.latency_ms)
        try:
            settings = Settings(
                db_path=scratch / "bench.duckdb",
                multimail_api_url=base_url,
                multimail_api_key=API_KEY,
                intercom_api_url=base_url,
                concurrency=args.concurrency,
            )
            with Store(settings.db_path) as store:
                t0 = time.perf_counter()
                result = harvest(settings, store)
                wall = time.perf_counter() - t0
                harvest_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                outbound = store.query(
                    "SELECT count(*) FROM multimail_emails WHERE direction='outbound'"
                )[0][0]
                audit_rows = store.count("multimail_audit_log")
                rows = store.count("multimail_emails") + audit_rows
                t0 = time.perf_counter()
                second = harvest(settings, store)
                second_wall = time.perf_counter() - t0
                seq_estimate, seq_n = sequential_seconds(
                    base_url, store, result.list_calls, result.detail_calls
                )
                rate, loaded = load_rate(store, scratch)
        finally:
            server.communicate(input="", timeout=30)
    latency = args.latency_ms / 1000
    bound = (result.list_calls + result.detail_calls) * latency / args.concurrency
    # The audit log pages by an opaque cursor, newest first, after the mail (so every sent
    # message's entries are there): its pages cannot overlap anything. Counting them as
    # sequential gives the limit this design can reach.
    audit_pages = -(-audit_rows // AUDIT_PAGE_LIMIT)
    design_bound = (
        audit_pages * latency
        + (result.list_calls - audit_pages + result.detail_calls) * latency / args.concurrency
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows_table = [
        ("list calls + detail calls", f"{result.list_calls:,} + {result.detail_calls:,}"),
        ("harvest wall time", f"{wall:.1f} s"),
        ("concurrency-bound limit (calls × latency / concurrency)", f"{bound:.1f} s"),
        ("wall time / limit", f"{wall / bound:.2f}"),
        (
            f"limit with the {audit_pages} audit-log pages sequential (cursor paging)",
            f"{design_bound:.1f} s (wall / this = {wall / design_bound:.2f})",
        ),
        (
            f"sequential one-request-at-a-time client (timed on {seq_n} calls, scaled)",
            f"{seq_estimate:.1f} s",
        ),
        ("speed-up over sequential", f"{seq_estimate / wall:.1f}×"),
        (
            "rows stored (emails + audit entries)",
            f"{rows:,} ({rows / wall:,.0f} rows/s end to end)",
        ),
        (
            f"store load rate (normalise + Arrow upsert, {COMMIT_ROWS}-row transactions, "
            f"{loaded:,} emails)",
            f"{rate:,.0f} records/s",
        ),
        (
            "second harvest, nothing new",
            f"{second_wall:.1f} s, {second.detail_calls:,} detail calls (lookback window only)",
        ),
        (
            "peak memory after the first harvest (ru_maxrss; the sandbox is another process)",
            f"{harvest_peak_mb:.0f} MiB",
        ),
        ("peak memory at the end (adds the load-rate copy)", f"{peak_mb:.0f} MiB"),
        ("sample generation (not part of the harvest)", f"{generate_s:.1f} s"),
    ]
    print("## Harvest\n")
    print(
        f"{args.messages:,} generated messages ({outbound:,} outbound read with read_email), "
        f"sandbox latency {args.latency_ms:g} ms per request, concurrency {args.concurrency}, "
        f"outcome `{result.outcome}`.\n"
    )
    print("| measure | value |")
    print("|---|---|")
    for measure, value in rows_table:
        print(f"| {measure} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
