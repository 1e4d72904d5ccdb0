"""Writer memory against store size: does the memory of loading new emails grow with what
the store already holds?

A first harvest's peak RSS rose from 714 MiB at 100k messages to 926 MiB at 1M
(`harvest_memory`). This isolates the store's part: a synthetic store of each size (as
controls_bench builds it), then in a fresh process under the writers' 512MB DuckDB limit,
new emails upserted in 2,000-row transactions as a harvest does, and DuckDB's own memory
accounting by tag (`duckdb_memory()`) at the end, beside the process's peak RSS.

    python -m benchmarks.writer_memory_bench [--sizes 100000,1000000] [--batches 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from auditkit.harvest.mailboxes import COMMIT_ROWS as BATCH_ROWS  # a harvest's transaction
from benchmarks.child import run_measured


def build(db: Path, messages: int) -> None:
    from auditkit.store import Store
    from benchmarks.controls_bench import synthesise

    with Store(db) as store:
        synthesise(store, messages)
        store.con.execute("CHECKPOINT")


def load(db: Path, batches: int) -> None:
    """Upsert `batches` × BATCH_ROWS new emails (copies of a stored one under new ids) and
    print what DuckDB holds, by tag, as JSON. A writer's Store is under WRITER_MEMORY_LIMIT,
    as a harvest's is."""
    from auditkit.store import Store

    with Store(db) as store:
        stored = store.count("multimail_emails")
        template = store.con.sql("SELECT * FROM multimail_emails LIMIT 1").to_arrow_table()
        row = template.to_pylist()[0]
        for batch in range(batches):
            rows = [dict(row, id=f"writer-bench-{batch}-{i}") for i in range(BATCH_ROWS)]
            with store.transaction():
                store.upsert("multimail_emails", rows)
        tags = store.con.sql(
            "SELECT tag, memory_usage_bytes FROM duckdb_memory() "
            "WHERE memory_usage_bytes > 0 ORDER BY memory_usage_bytes DESC"
        ).fetchall()
    print(json.dumps({"stored": stored, "tags": {tag: size for tag, size in tags}}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--child", choices=("build", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "build":
        build(args.db, args.messages)
        return 0
    if args.child == "load":
        load(args.db, args.batches)
        return 0

    module = "benchmarks.writer_memory_bench"
    rows = []
    with tempfile.TemporaryDirectory(prefix="auditkit-writer-memory-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            db = Path(tmp) / f"store-{size}.duckdb"
            run_measured(module, "--child", "build", "--db", str(db), "--messages", str(size))
            measured = run_measured(
                module, "--child", "load", "--db", str(db), "--batches", str(args.batches)
            )
            result = json.loads(measured.output)
            tags = ", ".join(f"{t} {b / 2**20:.1f}" for t, b in result["tags"].items())
            rows.append(
                f"| {result['stored']:,} | {db.stat().st_size / 2**20:,.0f} | "
                f"{measured.wall:.1f} | {measured.cpu:.1f} | {measured.rss_mib:,.0f} | {tags} |"
            )
    print("## writer memory\n")
    print(__doc__.split("\n\n")[1].replace("\n", " ") + "\n")
    print(
        f"{args.batches} × {BATCH_ROWS:,} new emails per store; wall, CPU and peak RSS are the "
        "loading process's own (os.wait4).\n"
    )
    print(
        "| emails stored | store MiB | wall s | CPU s | peak RSS MiB | DuckDB memory by tag, MiB |"
    )
    print("|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
