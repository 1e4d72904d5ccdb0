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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa

from auditkit.config import Settings
from auditkit.harvest import harvest, import_emails
from auditkit.harvest.mailboxes import COMMIT_ROWS
from auditkit.normalise import normalise_email
from auditkit.sources.multimail import AUDIT_PAGE_LIMIT
from auditkit.store import Store
from auditkit.store.upsert import rows_to_arrow, with_account

API_KEY = "mm_bench_key"
SEQUENTIAL_SAMPLE = 400  # detail calls timed one at a time; scaled up to the full count


SANDBOX_SCRIPT = """
import sys, time
from pathlib import Path
from auditkit.devtools.sandbox import SandboxServer
server = SandboxServer(Path(sys.argv[1]), api_key=sys.argv[2], intercom_token="ic_bench",
                       latency_ms=float(sys.argv[3]))
server.start()
print(server.base_url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
server.stop()
"""


def per_limit(wall: float, limit: float) -> str:
    """wall / limit, or why there is none (no latency: the limit is zero)."""
    return f"{wall / limit:.2f}" if limit > 0 else "n/a (no latency, no limit)"


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


LOAD_REPEATS = 3  # timed loads per measure, each into a fresh store; the median is reported


@dataclass
class LoadRates:
    """Records/s for each step between an API response and a committed store row."""

    emails: int
    normalise: float  # normalise_email alone (Python), emails
    load: float  # Arrow build + upsert + commit, COMMIT_ROWS-row transactions, new emails
    checkpoint_seconds: float  # folding the emails' WAL into the data file (on close)
    reload: float  # the same emails again (lookback re-reads, re-imports): delete + insert
    audit_entries: int
    audit_load: float  # audit entries, Arrow + insert in one transaction
    harvest_mix: float  # emails and audit entries together, as one harvest stores them
    # Where the emails' load time goes, in seconds for all of them (medians):
    arrow_build_seconds: float  # rows_to_arrow: Python dicts into typed Arrow columns
    insert_only_seconds: float  # DuckDB alone: INSERT of the prebuilt Arrow + COMMIT
    insert_one_txn_seconds: float  # the same INSERT, every email in one transaction
    normalise_and_load: float  # what the harvest's main thread spends per email
    import_rate: float  # `auditkit import` of the emails as JSONL: parse + normalise + load


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def load_rates(store: Store, scratch: Path) -> LoadRates:
    """Time each step of loading on the emails and audit entries the harvest just stored.

    One untimed load first warms the allocator and DuckDB's caches, as the first batches of
    a harvest do; then each measure is the median of LOAD_REPEATS loads into fresh stores.
    """
    raws = store.query(
        "SELECT raw, mailbox_id FROM multimail_emails WHERE direction = 'outbound' ORDER BY id"
    )
    records = [(json.loads(r), m) for r, m in raws]
    stamp = datetime.now(UTC)
    rows: list[dict[str, object]] = []

    def normalise_all() -> None:
        for record, mailbox_id in records:
            row = normalise_email(record, mailbox_id=mailbox_id, direction="outbound")
            row.update(run_id="bench", harvested_at=stamp, first_harvested_at=stamp)
            rows.append(row)

    normalise_s = timed(normalise_all)
    audit = store.con.sql("SELECT * FROM multimail_audit_log").to_arrow_table().to_pylist()

    def load_emails(target: Store) -> None:
        for start in range(0, len(rows), COMMIT_ROWS):
            with target.transaction():
                target.upsert("multimail_emails", rows[start : start + COMMIT_ROWS])

    def load_audit(target: Store) -> None:
        with target.transaction():
            target.upsert("multimail_audit_log", audit)

    def fresh_store(name: str) -> Store:
        path = scratch / f"{name}.duckdb"
        path.unlink(missing_ok=True)
        return Store(path)

    batches = [rows[start : start + COMMIT_ROWS] for start in range(0, len(rows), COMMIT_ROWS)]

    def build_arrow(target: Store) -> list[pa.Table]:
        return [
            with_account(
                target, "multimail_emails", rows_to_arrow(target, "multimail_emails", b), []
            )[0]
            for b in batches
        ]

    def insert_only(target: Store, tables: list[pa.Table], per_transaction: int) -> None:
        # The floor under `upsert`: no key check, no duplicate check, the Arrow already built.
        table = target.base("multimail_emails")
        for start in range(0, len(tables), per_transaction):
            with target.transaction():
                for arrow in tables[start : start + per_transaction]:
                    target.con.register("_bench_batch", arrow)
                    cols = ", ".join(f'"{c}"' for c in arrow.column_names)
                    target.con.execute(
                        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _bench_batch"
                    )
                    target.con.unregister("_bench_batch")

    with fresh_store("warm-up") as target:
        load_emails(target)
        load_audit(target)

    def floor_times() -> tuple[float, float, float]:
        """Seconds to build the Arrow, to INSERT it in COMMIT_ROWS-row transactions, and
        to INSERT it in one transaction, each into a fresh store."""
        tables: list[pa.Table] = []
        with fresh_store("floor") as target:
            arrow_seconds = timed(lambda: tables.extend(build_arrow(target)))
            insert_seconds = timed(lambda: insert_only(target, tables, 1))
        with fresh_store("floor") as target:
            insert_one_seconds = timed(lambda: insert_only(target, tables, len(tables)))
        return arrow_seconds, insert_seconds, insert_one_seconds

    email_s, checkpoint_s, reload_s, audit_s = [], [], [], []
    arrow_s, insert_s, insert_one_s = [], [], []
    for _ in range(LOAD_REPEATS):
        arrow_seconds, insert_seconds, insert_one_seconds = floor_times()
        arrow_s.append(arrow_seconds)
        insert_s.append(insert_seconds)
        insert_one_s.append(insert_one_seconds)
        with fresh_store("load") as target:
            email_s.append(timed(lambda: load_emails(target)))
            checkpoint_s.append(timed(lambda: target.con.execute("CHECKPOINT")))
            reload_s.append(timed(lambda: load_emails(target)))
        with fresh_store("audit") as target:
            audit_s.append(timed(lambda: load_audit(target)))
    export = scratch / "emails.jsonl"
    export.write_text("".join(r + "\n" for r, _ in raws), encoding="utf-8")
    with fresh_store("import") as target:
        import_s = timed(lambda: import_emails(Settings(), target, [export]))
    n, median = len(rows), statistics.median
    return LoadRates(
        emails=n,
        normalise=n / normalise_s,
        load=n / median(email_s),
        checkpoint_seconds=median(checkpoint_s),
        reload=n / median(reload_s),
        audit_entries=len(audit),
        audit_load=len(audit) / median(audit_s),
        harvest_mix=(n + len(audit)) / (median(email_s) + median(audit_s)),
        arrow_build_seconds=median(arrow_s),
        insert_only_seconds=median(insert_s),
        insert_one_txn_seconds=median(insert_one_s),
        normalise_and_load=n / (normalise_s + median(email_s)),
        import_rate=n / import_s,
    )


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
                rates = load_rates(store, scratch)
        finally:
            server.communicate(input="", timeout=30)
    latency = args.latency_ms / 1000
    # With --latency-ms 0 both limits are 0 s: the ratios to them say so instead of dividing.
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
    email_seconds = rates.emails / rates.load
    key_check_seconds = email_seconds - rates.arrow_build_seconds - rates.insert_only_seconds
    rows_table = [
        ("list calls + detail calls", f"{result.list_calls:,} + {result.detail_calls:,}"),
        ("harvest wall time", f"{wall:.1f} s"),
        ("concurrency-bound limit (calls × latency / concurrency)", f"{bound:.1f} s"),
        ("wall time / limit", per_limit(wall, bound)),
        (
            f"limit with the {audit_pages} audit-log pages sequential (cursor paging)",
            f"{design_bound:.1f} s (wall / this = {per_limit(wall, design_bound)})",
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
            f"store load, a harvest's records ({rates.emails:,} emails in "
            f"{COMMIT_ROWS:,}-row transactions + {rates.audit_entries:,} audit entries in one; "
            f"Arrow + upsert + commit, median of {LOAD_REPEATS})",
            f"{rates.harvest_mix:,.0f} records/s",
        ),
        ("store load, emails only (~1.7 KB rows)", f"{rates.load:,.0f} records/s"),
        (
            "where the emails' load time goes (seconds for all of them)",
            f"{email_seconds:.2f} s: building the typed Arrow {rates.arrow_build_seconds:.2f} s; "
            f"DuckDB's INSERT + COMMIT of that Arrow alone {rates.insert_only_seconds:.2f} s "
            f"({rates.emails / rates.insert_only_seconds:,.0f} records/s); the key and "
            f"duplicate checks the rest, {key_check_seconds:+.2f} s",
        ),
        (
            "DuckDB's INSERT alone, every email in one transaction",
            f"{rates.insert_one_txn_seconds:.2f} s "
            f"({rates.emails / rates.insert_one_txn_seconds:,.0f} records/s)",
        ),
        ("store load, audit entries only (~0.7 KB rows)", f"{rates.audit_load:,.0f} records/s"),
        (
            "store load, the same emails again (replacing rows: lookback re-reads)",
            f"{rates.reload:,.0f} records/s",
        ),
        (
            "CHECKPOINT of the emails' WAL into the data file (DuckDB does it on close)",
            f"{rates.checkpoint_seconds:.2f} s",
        ),
        (
            "normalise_email alone (pure Python, before the load)",
            f"{rates.normalise:,.0f} records/s",
        ),
        (
            "normalise + store load (the harvest main thread's work per email)",
            f"{rates.normalise_and_load:,.0f} records/s",
        ),
        (
            "`auditkit import` of the emails as JSONL (parse + normalise + load)",
            f"{rates.import_rate:,.0f} records/s",
        ),
        (
            "second harvest, nothing new",
            f"{second_wall:.1f} s: {second.list_calls:,} list + {second.detail_calls:,} detail "
            "calls (the lookback window, and mail not final yet)",
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
    one_txn_rate = rates.emails / rates.insert_one_txn_seconds
    print(
        f"\nIssue 15's target for email rows is 100,000 records/s; they load at "
        f"{rates.load:,.0f}. DuckDB's INSERT of the already built Arrow, with no key check, "
        f"reaches {rates.emails / rates.insert_only_seconds:,.0f} records/s in "
        f"{COMMIT_ROWS:,}-row transactions and {one_txn_rate:,.0f} in one transaction on "
        "this machine, so the target is above DuckDB's own insert rate here; building the "
        f"Arrow from the normalised rows adds {rates.arrow_build_seconds:.2f} s per "
        f"{rates.emails:,} emails."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
