"""Benchmark: the end of a first harvest's audit-log walk, where every staged new entry goes
onto the hash chain (issue 15: a 1M-message first harvest ran out of memory here).

For each size, a store is made with that many staged new audit entries (raw JSON about as
large as the sandbox's), then the chaining step runs as the harvester runs it, in a fresh
process measured from outside (benchmarks.child: wall, CPU, peak RSS) under the writers'
default memory limit: batches of `AUDIT_CHAIN_BATCH` entries, sorted oldest first by DuckDB,
each appended in its own transaction, then the staging table emptied.

    python -m benchmarks.audit_chain_bench [--sizes 1000000,3000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.child import run_measured

STAGE_SQL = """
INSERT INTO {table}
SELECT 'default', 'aud_' || lpad(i::VARCHAR, 12, '0'), true,
       'email.approved', 'email', 'em_' || lpad((i // 2)::VARCHAR, 12, '0'), 'key_01234567',
       '{{"note": "x"}}', TIMESTAMPTZ '2026-01-01' + to_seconds(i * 10),
       json_object('id', 'aud_' || lpad(i::VARCHAR, 12, '0'), 'action', 'email.approved',
                   'resource_type', 'email',
                   'resource_id', 'em_' || lpad((i // 2)::VARCHAR, 12, '0'),
                   'actor_key_id', 'key_01234567',
                   'metadata', json_object('note', repeat('x', 120)),
                   'created_at', (TIMESTAMPTZ '2026-01-01' + to_seconds(i * 10))::VARCHAR),
       sha256(i::VARCHAR), 'run_bench', TIMESTAMPTZ '2026-12-01'
FROM range({count}) t(i)
"""


def stage(db: Path, count: int) -> None:
    """A store whose staging table holds `count` new entries (what a walk leaves)."""
    from auditkit.store import Store
    from auditkit.store.audit_chain import STAGING

    with Store(db) as store:
        store.con.execute(STAGE_SQL.format(table=store.base(STAGING), count=count))


def chain(db: Path) -> None:
    """The harvester's chaining step, alone: batches onto the chain, then the staging table
    emptied (as `finish_audit_walk` does after the walk)."""
    from auditkit.harvest.audit_log import AuditWalk, chain_new_entries
    from auditkit.store import Store
    from auditkit.store import audit_chain as staging

    with Store(db) as store:
        walk = AuditWalk(con=store.cursor(), full_scan=False)
        added = chain_new_entries(store, walk)
        store.commit_batch(also=[staging.EmptyStaging()])
        walk.con.close()
        print(added)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000000,3000000")
    parser.add_argument("--step", choices=("stage", "chain"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "stage":
        stage(args.db, args.count)
        return
    if args.step == "chain":
        chain(args.db)
        return

    from auditkit.harvest.audit_log import AUDIT_CHAIN_BATCH
    from auditkit.store import WRITER_MEMORY_LIMIT

    work = Path(tempfile.mkdtemp(prefix="auditkit-chain-"))
    rows = []
    load_before = os.getloadavg()
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            db = work / f"chain-{size}.duckdb"
            t0 = time.perf_counter()
            run_measured(__spec__.name, "--step", "stage", "--db", str(db), "--count", str(size))
            staged_s = time.perf_counter() - t0
            run = run_measured(__spec__.name, "--step", "chain", "--db", str(db))
            assert int(run.output) == size, run.output
            rows.append((size, staged_s, run))
            db.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    print("## audit chain\n")
    print(
        "The last step of a first harvest's audit-log walk: every staged new entry onto the "
        f"hash chain, {AUDIT_CHAIN_BATCH:,} per transaction, oldest first, then the staging "
        f"table emptied; a fresh process under the writers' {WRITER_MEMORY_LIMIT} DuckDB "
        "limit, measured from outside. Before batching (one INSERT joining every staged entry "
        "to its link, and a keyed staging table), 3,000,000 entries took 90 s and 1,131 MB, "
        "most of the time committing the deletion of 3M keyed staging rows; a 1M-message "
        "first harvest (1.9M entries on top of the mail) ran out of memory there.\n"
    )
    print("| entries | wall s | CPU s | peak RSS MiB |")
    print("|---:|---:|---:|---:|")
    for size, _, run in rows:
        print(f"| {size:,} | {run.wall:.1f} | {run.cpu:.1f} | {run.rss_mib:,.0f} |")
    print(
        "\nStaging the entries (not measured): "
        + ", ".join(f"{size:,} in {s:.0f} s" for size, s, _ in rows)
        + f". Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}"
        f"; after: {', '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    main()
