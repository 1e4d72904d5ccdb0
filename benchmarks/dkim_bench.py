"""Independent DKIM verification throughput: 10,000 signed messages, offline with pinned keys.

`python -m benchmarks.dkim_bench [--messages N] [--workers 1,2]` signs N messages with the
committed test key into a temporary folder (.eml files; signing is not timed), builds a
store holding the matching harvested emails, then runs `harvest_archive` with `--keys`
semantics once per worker count, each in a fresh process so its peak RSS is its own.
Prints a Markdown section: msgs/s for the full run (read + parse + match + verify +
store) and for bare `verify_message`, and peak memory.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditkit.archive import harvest_archive, iter_archive, parse_message
from auditkit.devtools.archive_sample import (
    DOMAIN,
    SELECTOR,
    TEST_KEY,
    SourceEmail,
    build_message,
    keys_file_line,
    sign,
)
from auditkit.dkim import verify_message
from auditkit.dkim_keys import load_keys_file
from auditkit.store import Store, canonical_json, sha256_hex

WORDS = (
    "order shipped invoice delivery pallet warehouse tracking refund account quote "
    "schedule pickup supplier confirm thanks please review attached update week"
).split()
START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def bench_email(n: int) -> SourceEmail:
    rng = random.Random(n)  # per message, so any worker builds the same message for n
    paragraphs = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))).capitalize() + "."
        for _ in range(rng.randint(2, 8))
    ]
    return SourceEmail(
        id=f"em_b{n:06d}",
        from_address="support@northwind.example",
        to=(f"customer{rng.randint(1, 5000)}@example.com",),
        subject=f"Order NW-{n:06d}: {rng.choice(WORDS)} {rng.choice(WORDS)}",
        markdown="Hello,\n\n" + "\n\n".join(paragraphs) + "\n\nNorthwind Supply Co.\n",
        delivered_at=START + timedelta(seconds=n * 37),
        agent="support-agent",
    )


def _write(args: tuple[Path, int, int]) -> None:
    out, start, stop = args
    key = TEST_KEY.read_bytes()
    for n in range(start, stop):
        e = bench_email(n)
        (out / f"{e.id}.eml").write_bytes(sign(build_message(e), key, e))


def generate(out: Path, messages: int, workers: int = 2) -> None:
    out.mkdir(parents=True, exist_ok=True)
    step = 250
    chunks = [(out, s, min(s + step, messages)) for s in range(0, messages, step)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write, chunks))


def build_store(path: Path, messages: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for n in range(messages):
        e = bench_email(n)
        raw = canonical_json({"id": e.id})
        rows.append(
            {
                "id": e.id,
                "direction": "outbound",
                "from_address": e.from_address,
                "to_addresses": list(e.to),
                "subject": e.subject,
                "status": "delivered",
                "created_at": e.delivered_at - timedelta(minutes=20),
                "delivered_at": e.delivered_at,
                "body_markdown": e.markdown,
                "source_shape": "v1",
                "is_final": True,
                "first_harvested_at": now,
                "raw": raw,
                "raw_sha256": sha256_hex(raw),
                "run_id": "bench",
                "harvested_at": now,
            }
        )
    with Store(path) as store, store.transaction():
        store.upsert("multimail_emails", rows)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_phase(mail: Path, keys: Path, store_path: Path, workers: int) -> dict[str, float]:
    """One measured run in this (fresh) process."""
    lookup = load_keys_file(keys)
    with Store(store_path) as store:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        summary = harvest_archive(store, [mail], lookup, run_id=f"bench-{workers}", workers=workers)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    return {
        "messages": summary.messages,
        "wall": wall,
        "cpu": cpu,
        "pass": summary.dkim.get("pass", 0),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def bare_verify(mail: Path, keys: Path, limit: int) -> float:
    """msgs/s of parse + verify_message alone, one process, first `limit` messages."""
    lookup = load_keys_file(keys)
    t0, count = time.perf_counter(), 0
    for m in iter_archive([mail]):
        parsed = parse_message(m.raw, m.source_path)
        [r] = verify_message(
            m.raw, lookup, from_domain=parsed.from_domain, reference_time=parsed.date or START
        )
        assert r.result == "pass", r
        count += 1
        if count >= limit:
            break
    return count / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to measure")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one measurement
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:
        root: Path = args.dir
        store_path = root / f"store-{args.phase}.duckdb"
        shutil.copyfile(root / "template.duckdb", store_path)
        print(json.dumps(run_phase(root / "mail", root / "keys.txt", store_path, int(args.phase))))
        return 0

    with tempfile.TemporaryDirectory(prefix="dkim-bench-") as tmp:
        root = Path(tmp)
        (root / "keys.txt").write_text(
            keys_file_line(TEST_KEY.read_bytes()) + "\n", encoding="utf-8"
        )
        t0 = time.perf_counter()
        generate(root / "mail", args.messages)
        generate_s = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in (root / "mail").iterdir()) / 2**20
        build_store(root / "template.duckdb", args.messages)
        results = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.dkim_bench",
                    "--phase",
                    str(workers),
                    "--dir",
                    str(root),
                    "--messages",
                    str(args.messages),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            results[workers] = json.loads(proc.stdout.strip().splitlines()[-1])
        bare = bare_verify(root / "mail", root / "keys.txt", limit=min(2000, args.messages))

    print("## DKIM archive verification\n")
    print(
        f"{args.messages:,} messages ({size_mb:.1f} MiB of .eml, 2048-bit RSA, "
        f"s={SELECTOR} d={DOMAIN}) verified offline with a keys file; each run is "
        "read + parse + match to harvested emails + verify + store, in a fresh process.\n"
    )
    print("| measure | value |")
    print("|---|---|")
    for workers, r in results.items():
        assert r["pass"] == r["messages"] == args.messages, r
        print(
            f"| harvest-archive, {workers} worker(s) | {r['wall']:.1f} s, "
            f"{r['messages'] / r['wall']:,.0f} msgs/s, "
            f"{1000 * r['cpu'] / r['messages']:.2f} CPU-ms/msg |"
        )
        rss = f"{r['rss_mb']:.0f} MiB"
        if workers > 1:
            rss += f" (largest worker {r['child_rss_mb']:.0f} MiB)"
        print(f"| peak RSS, {workers} worker(s) | {rss} |")
    print(
        f"| parse + verify_message alone, 1 process (first {min(2000, args.messages):,}) "
        f"| {bare:,.0f} msgs/s |"
    )
    print(f"| signing the messages (not part of verification, 2 processes) | {generate_s:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
