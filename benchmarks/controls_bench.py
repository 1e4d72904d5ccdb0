"""Benchmark: all controls over a synthetic quarter of 1,000,000 outbound messages.

The store is filled with DuckDB SQL (`range()` plus hash-derived columns, no Python loops),
with proportional audit entries (one `email.sent` per message, approvals for gated mail),
mailboxes, keys, domains, suppressions and Intercom conversations. Then `run_controls`
runs once and the time per control and in total is printed. Target: under 10 s.

    python -m benchmarks.controls_bench [--messages N] [--db PATH]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from auditkit.config import Settings
from auditkit.controls import run_controls
from auditkit.findings import parse_period
from auditkit.store import HARVESTED_TABLES, Store

PROVENANCE = "'{}'::JSON, 'x', 'bench', TIMESTAMPTZ '2026-10-02 00:00:00+00'"

SETTINGS = Settings(
    controls={"reviewers": ["alice@northwind.example", "bob@northwind.example"]},
    mailboxes={
        "mbx0@northwind.example": {"appends_postal_address": True},
        "mbx1@northwind.example": {
            "classification": "transactional",
            "require_conversation_link": True,
        },
        "mbx2@northwind.example": {"require_conversation_link": True},
    },
    classification={"commercial_categories": ["promotion"]},
    waivers=(
        {
            "control": "OVS-002",
            "target": "em_42",
            "justification": "bench",
            "approver": "cfo",
            "expires": "2030-01-01",
        },
    ),
)


ADDRESS = "Northwind Supply Co., 1200 Harbor Blvd, Suite 400, Oakland, CA 94607"
T0 = "TIMESTAMPTZ '2026-01-01 00:00:00+00'"
PROMO_BODY = (
    "'Get 20% off Pro with code SAVE20. [Unsubscribe](https://northwind.example/unsubscribe)'"
    f" || chr(10) || '{ADDRESS}'"
)


def synthesise(
    store: Store, messages: int, *, first_day: str = "2026-07-01", days: int = 92
) -> None:
    """Fill `store`'s account with the synthetic quarter (see `_single_account_layout`), or
    any span of `days` from `first_day` (scale_bench spreads a year)."""
    with _single_account_layout(store) as con:
        _synthesise(con, messages, first_day, days)


@contextmanager
def _single_account_layout(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection on which the harvested tables and integrity_events are TEMP tables in
    the layout before accounts (no account column), so the SQL below names columns by
    position as it always has; on exit their rows go to the store's account."""
    tables = (*HARVESTED_TABLES, "integrity_events")
    con = store.con.cursor()
    try:
        for t in tables:
            con.execute(
                f"CREATE TEMP TABLE {t} AS SELECT * EXCLUDE (account) FROM {store.base(t)} LIMIT 0"
            )
        yield con
        for t in tables:
            con.execute(
                f"INSERT INTO {store.base(t)} SELECT ?, * FROM temp.main.{t}", [store.account]
            )
    finally:
        con.close()


def _synthesise(con: duckdb.DuckDBPyConnection, messages: int, first_day: str, days: int) -> None:
    con.execute(
        f"""
    INSERT INTO multimail_account VALUES ('acct', 'Northwind Supply Co.', 'northwind', 'pro',
        'ops@northwind.example', '{ADDRESS}', true, false, {PROVENANCE});
    INSERT INTO multimail_mailboxes
    SELECT 'mbx_' || i, 'mbx' || i || '@northwind.example', 'Mailbox ' || i,
           ['gated_send', 'gated_all', 'monitored', 'autonomous'][i % 4 + 1],
           NULL, NULL, CASE WHEN i % 2 = 0 THEN '{ADDRESS}' END,
           'gate_first', {T0}, true, {PROVENANCE}
    FROM range(20) t(i);
    INSERT INTO multimail_domains VALUES
        ('dom1', 'northwind.example', 'active', true, true, true, true, {T0}, NULL, {PROVENANCE}),
        ('dom2', 'promo.northwind.example', 'pending', false, false, false, false, {T0}, NULL,
         {PROVENANCE});
    INSERT INTO multimail_api_keys
    SELECT 'key_' || i, 'key ' || i, 'mm_live_' || i,
           CASE WHEN i = 7 THEN ['send', 'oversight']
                WHEN i % 2 = 0 THEN ['send'] ELSE ['oversight'] END,
           {T0}, NULL, i % 10 <> 3, {PROVENANCE}
    FROM range(50) t(i);
    """
    )
    # h picks the mailbox (h % 4 = 0/1: gated); h2 drives content, status and violations.
    con.execute(
        f"""
    CREATE TEMP TABLE bench_src AS
    SELECT i, hash(i) AS h, hash(i * 31 + 7) AS h2,
           TIMESTAMPTZ '{first_day} 00:00:00+00'
             + to_seconds((hash(i) % ({days} * 86400))::BIGINT) AS created,
           h % 4 IN (0, 1) AND h2 % 1000 NOT IN (1, 2, 5) AS approved
    FROM range({messages}) t(i);
    INSERT INTO multimail_emails (id, mailbox_id, direction, from_address, to_addresses,
        cc_addresses, subject, status, created_at, thread_id, body_markdown, delivered_at,
        approved_at, approved_by, dkim_verified, conversation_id, agent, tags, source_shape,
        is_final, first_harvested_at, raw, raw_sha256, run_id, harvested_at)
    SELECT 'em_' || i, 'mbx_' || (h % 20), 'outbound',
           CASE WHEN h2 % 500 = 0 THEN 'x@promo.northwind.example'
                ELSE 'mbx' || (h % 20) || '@northwind.example' END,
           ['cust' || (h2 % 200000) || '@example.com'], [],
           CASE WHEN h2 % 50 = 0 THEN 'Re: your plan'
                WHEN h2 % 7 = 0 THEN 'Summer deals inside' ELSE 'About your order' END,
           CASE WHEN h2 % 1000 = 1 THEN 'pending_send_approval'
                WHEN h2 % 1000 = 2 THEN 'rejected' END,
           created, 'thr_' || (i // 2),
           CASE WHEN h2 % 700 = 0 THEN 'Get 20% off Pro with code SAVE20.'
                WHEN h2 % 7 = 0 THEN {PROMO_BODY}
                WHEN h2 % 301 = 0 THEN 'Your refund is done. See https://northwind.example/pricing'
                ELSE 'Your order #' || (h2 % 99999) || ' has shipped. Tracking number attached.'
           END,
           CASE WHEN h2 % 1000 NOT IN (1, 3) THEN created + INTERVAL 5 MINUTE END,
           CASE WHEN approved THEN created + INTERVAL 2 MINUTE END,
           CASE WHEN approved AND h2 % 997 = 0 THEN 'key_0'
                WHEN approved THEN 'alice@northwind.example' END,
           NULL,
           CASE WHEN h2 % 13 <> 0 THEN 'conv_' || (h2 % 60000) END,
           'fin',
           CASE WHEN h2 % 7 = 0 THEN '{{"category": "promotion"}}' END,
           'v1', true, TIMESTAMPTZ '2026-10-02 00:00:00+00', {PROVENANCE}
    FROM bench_src;
    INSERT INTO multimail_audit_log
    SELECT 'aud_sent_' || i, 'email.sent', 'email', 'em_' || i, 'key_' || ((h % 25) * 2),
           json_object('mailbox_id', 'mbx_' || (h % 20), 'agent', 'fin'), created, i, 'c',
           {PROVENANCE}
    FROM bench_src;
    INSERT INTO multimail_audit_log
    SELECT 'aud_appr_' || i, 'oversight.approved', 'email', 'em_' || i, 'key_1',
           json_object('reviewer', 'alice@northwind.example'), created + INTERVAL 2 MINUTE,
           {messages} + i, 'c', {PROVENANCE}
    FROM bench_src WHERE approved AND h2 % 3001 <> 0;
    INSERT INTO multimail_audit_log
    SELECT 'aud_mode_' || i, 'mailbox.oversight_mode_changed', 'mailbox', 'mbx_' || i, 'key_1',
           json_object('from', 'autonomous', 'to', 'monitored',
                       'changed_by', 'ops@northwind.example'),
           TIMESTAMPTZ '2026-08-15 00:00:00+00', 3 * {messages} + i, 'c', {PROVENANCE}
    FROM range(2, 20, 4) t(i);
    INSERT INTO multimail_suppressions
    SELECT 'sup_' || i, 'cust' || (hash(i) % 200000) || '@example.com', 'unsubscribe', NULL,
           TIMESTAMPTZ '2026-07-01 00:00:00+00'
             + to_seconds((hash(i * 3) % (60 * 86400))::BIGINT),
           {PROVENANCE}
    FROM range({max(messages // 100, 1)}) t(i);
    INSERT INTO intercom_conversations (id, found, http_status, fetched_at,
        raw, raw_sha256, run_id, harvested_at)
    SELECT 'conv_' || i, i % 500 <> 0, CASE WHEN i % 500 = 0 THEN 404 ELSE 200 END,
           TIMESTAMPTZ '2026-10-02 00:00:00+00', {PROVENANCE}
    FROM range(60000) t(i);
    INSERT INTO integrity_events
    SELECT 'ie_' || i, 'bench', TIMESTAMPTZ '2026-10-02 00:00:00+00', 'audit_entry',
           'aud_sent_' || (i * 1000), 'changed', 'a', 'b', NULL, NULL
    FROM range(20) t(i);
    DROP TABLE bench_src;
    """
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _compare_unscoped(store: Store, scoped: Any, rounds: int = 3) -> None:
    """The controls through the account's scoped views, and through cursors without them
    (unqualified names reach the tables, account column and all), alternating, after the
    first (warm-up) run; medians of wall and CPU seconds."""
    from auditkit.store import accounts

    install = accounts.install_scope
    samples: dict[str, list[tuple[float, float]]] = {"scoped views": [], "tables directly": []}
    same = True
    for _ in range(rounds):
        for label in samples:
            if label == "tables directly":
                accounts.install_scope = lambda con, account: None  # type: ignore[assignment]
            try:
                cpu0, t1 = _cpu_seconds(), time.perf_counter()
                results = run_controls(store, SETTINGS, parse_period("2026Q3"))
                samples[label].append((time.perf_counter() - t1, _cpu_seconds() - cpu0))
            finally:
                accounts.install_scope = install
            same = same and [(r.id, r.status, len(r.findings)) for r in results] == [
                (r.id, r.status, len(r.findings)) for r in scoped
            ]
    for label, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{label}: median of {rounds}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"same results: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="store file (default: in memory)")
    parser.add_argument(
        "--compare-unscoped",
        action="store_true",
        help="run the controls a second time on the tables themselves, without the account's "
        "scoped views (what the views cost; the store holds one account, so same results)",
    )
    args = parser.parse_args()

    with Store(args.db or ":memory:") as store:
        t0 = time.perf_counter()
        synthesise(store, args.messages)
        build_s = time.perf_counter() - t0
        print(
            f"synthesised {store.count('multimail_emails'):,} emails and "
            f"{store.count('multimail_audit_log'):,} audit entries in {build_s:.1f} s"
        )

        timings: dict[str, float] = {}
        cpu0 = _cpu_seconds()
        t1 = time.perf_counter()
        results = run_controls(store, SETTINGS, parse_period("2026Q3"), timings=timings)
        total = time.perf_counter() - t1
        cpu = _cpu_seconds() - cpu0
        if args.compare_unscoped:
            _compare_unscoped(store, results)

    print(f"{'control':8}  {'status':14}  {'checked':>9}  {'findings':>8}  {'seconds':>7}")
    for r in results:
        print(
            f"{r.id:8}  {r.status:14}  {r.checked:>9,}  {len(r.findings):>8,}  "
            f"{timings[r.id]:>7.2f}"
        )
    errors = [r.id for r in results if r.status == "error"]
    print(
        f"total     {total:.2f} s wall, {cpu:.2f} s CPU for {len(results)} controls (target < 10 s)"
        + (f"; ERRORS in {', '.join(errors)}" if errors else "")
    )


if __name__ == "__main__":
    main()
