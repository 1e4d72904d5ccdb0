"""End-to-end: the harvester against the sandbox over real sockets, with faults and kills."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from auditkit.config import Settings
from auditkit.harvest import harvest
from auditkit.sources.client import RetryTransport
from auditkit.store import Store, content_digest
from tests.builders import ScratchStore
from tests.conftest import IC_TOKEN, MM_KEY, ROOT, FirstHarvest

pytestmark = pytest.mark.slow


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def settings_for(server: Any, db: Path | str, **overrides: Any) -> Settings:
    aimed = server.aim(Settings(db_path=Path(db), concurrency=8, max_retries=8))
    return aimed.with_overrides(**overrides)


def fast_retries() -> RetryTransport:
    """Real sockets, but backoff in milliseconds so fault runs stay quick."""
    return RetryTransport(
        httpx.HTTPTransport(),
        max_retries=8,
        backoff_base=0.01,
        backoff_cap=0.1,
        max_server_delay=0.1,
    )


def request_paths(server: Any) -> list[str]:
    return [entry.path for entry in server.requests.snapshot()]


def is_detail_read(path: str) -> bool:
    """GET /v1/mailboxes/{mailbox}/emails/{id}: one read_email call."""
    return path.startswith("/v1/mailboxes/") and path.count("/") == 5


def detail_ids(paths: list[str]) -> list[str]:
    return [p.rsplit("/", 1)[1] for p in paths if is_detail_read(p)]


def repeated_ids_across_pages(server: Any) -> int:
    """How many ids the sandbox served twice while paging the biggest mailbox's outbound list."""
    headers = {"Authorization": f"Bearer {MM_KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        mailboxes = client.get("/v1/mailboxes").json()["mailboxes"]
        counts = []
        for mailbox in mailboxes:
            seen: list[str] = []
            cursor = None
            while True:
                params = {
                    "direction": "outbound",
                    "limit": "100",
                    **({"cursor": cursor} if cursor else {}),
                }
                body = client.get(f"/v1/mailboxes/{mailbox['id']}/emails", params=params).json()
                seen += [e["id"] for e in body["emails"]]
                cursor = body["cursor"]
                if not cursor:
                    break
            counts.append(len(seen) - len(set(seen)))
    return max(counts)


def cursor_rows(store: Store) -> list[tuple[Any, ...]]:
    """Cursors, minus what legitimately differs between a clean run and a rerun: listing
    watermarks are a run's start time (kept: whether one is set) and a listing's last page
    depends on its window (kept: whether the listing completed)."""

    def comparable(resource: str, value: Any) -> Any:
        if resource.startswith("emails_listed:"):
            return "<run start>"
        if resource.startswith("emails:"):
            return {"complete": json.loads(value)["complete"]}
        return value

    return [
        (source, resource, comparable(resource, value))
        for source, resource, value in store.query(
            "SELECT source, resource, value FROM _auditkit_cursors ORDER BY 1, 2"
        )
    ]


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-message quarter from the same generator: keeps the many fault runs fast."""
    out = tmp_path_factory.mktemp("sample") / "data"
    subprocess.run(
        [sys.executable, "-m", "auditkit.sample", "--messages", "400", "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return out


def start_sandbox(data: Path, **kwargs: Any) -> Any:
    from auditkit.devtools.sandbox import SandboxServer

    server = SandboxServer(data, api_key=MM_KEY, intercom_token=IC_TOKEN, **kwargs)
    server.start()
    return server


@pytest.fixture
def small_sandbox(small_sample: Path) -> Iterator[Any]:
    server = start_sandbox(small_sample)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def baseline(small_sample: Path) -> dict[str, Any]:
    """One fault-free harvest of the small quarter: its digest, cursors and counts."""
    server = start_sandbox(small_sample)
    try:
        with ScratchStore() as store:
            result = harvest(settings_for(server, ":memory:"), store)
            assert result.outcome == "ok"
            return {
                "digest": content_digest(store),
                "cursors": cursor_rows(store),
                "result": result,
                "emails": store.count("multimail_emails"),
                "conversations": store.query(
                    "SELECT id, found, resolved_by IS NOT NULL, inbox_url "
                    "FROM intercom_conversations ORDER BY id"
                ),
            }
    finally:
        server.stop()


def test_full_harvest_matches_the_sample_data(
    sandbox: Any, sample_data: Path, first_harvest_of_sample_quarter: FirstHarvest
) -> None:
    """The sample quarter's first full harvest (the run's shared one: see conftest) holds
    every record the sandbox served, once."""
    emails = read_jsonl(sample_data / "multimail" / "emails.jsonl")
    audit = read_jsonl(sample_data / "multimail" / "audit_log.jsonl")
    mailboxes = json.loads((sample_data / "multimail" / "mailboxes.json").read_text())
    mailboxes = mailboxes.get("mailboxes", mailboxes) if isinstance(mailboxes, dict) else mailboxes
    result = first_harvest_of_sample_quarter.result
    assert result["outcome"] == "ok", result["errors"]
    assert result["quarantined"] == 0
    outbound = sum(e.get("direction") == "outbound" for e in emails)
    assert result["detail_calls"] == outbound
    with Store(first_harvest_of_sample_quarter.store, read_only=True) as store:
        assert (
            store.query("SELECT count(*) FROM multimail_emails WHERE direction = 'outbound'")[0][0]
            == outbound
        )
        assert store.count("multimail_emails") == len(emails)
        assert store.count("multimail_audit_log") == len(audit)
        assert store.count("multimail_mailboxes") == len(mailboxes)
        # Every linked conversation is enriched, the EU workspace's too (the sandbox serves
        # both workspaces and aims both tokens at them).
        linked = {(e.get("tags") or {}).get("intercom_conversation_id") for e in emails} - {None}
        assert result["skipped"] == {}
        assert result["intercom_calls"] >= len(linked)
        assert {r[0] for r in store.query("SELECT id FROM intercom_conversations")} == linked
        # Nothing secret lands in the store.
        dump = json.dumps(
            [
                store.query(f"SELECT * FROM {t}")
                for t in ("multimail_webhooks", "harvest_runs", "intercom_conversations")
            ],
            default=str,
        )
    assert MM_KEY not in dump and IC_TOKEN not in dump and "whsec_" not in dump
    # The list cursor is a timestamp, so page boundaries repeat records (as the real API
    # does): the counts above hold only because paging de-duplicates by id.
    assert repeated_ids_across_pages(sandbox) > 0


def test_intercom_enrichment_covers_every_linked_conversation(
    small_sample: Path, baseline: dict[str, Any]
) -> None:
    emails = read_jsonl(small_sample / "multimail" / "emails.jsonl")
    linked = {e.get("tags", {}).get("intercom_conversation_id") for e in emails} - {None}
    served = {c["id"] for c in read_jsonl(small_sample / "intercom" / "conversations.jsonl")}
    rows = baseline["conversations"]
    assert {r[0] for r in rows} == linked
    assert {r[0] for r in rows if r[1]} == linked & served
    assert all(r[2] for r in rows if r[1])  # every closed sample conversation has a resolver
    app_id = json.loads((small_sample / "intercom" / "me.json").read_text())["app"]["id_code"]
    assert all(
        r[3] == f"https://app.intercom.com/a/inbox/{app_id}/inbox/conversation/{r[0]}" for r in rows
    )
    assert baseline["result"].intercom_calls == len(linked) + 1  # GET /me + one per conversation


def test_second_harvest_lists_and_reads_only_the_lookback_window(small_sandbox: Any) -> None:
    sandbox = small_sandbox
    with ScratchStore() as store:
        settings = settings_for(sandbox, ":memory:")
        first = harvest(settings, store)
        first_lists = [e for e in sandbox.requests.snapshot() if e.kind == "list"]
        assert first_lists and all("date_after" not in e.query for e in first_lists)
        digest = content_digest(store)
        mark = len(request_paths(sandbox))
        not_final = {
            r[0]
            for r in store.query(
                "SELECT id FROM multimail_emails WHERE direction='outbound' AND NOT is_final"
            )
        }
        second = harvest(settings, store)
        requests = sandbox.requests.snapshot()[mark:]
        reread = detail_ids([e.path for e in requests])
        newest = store.query(
            "SELECT max(created_at) FROM multimail_emails WHERE direction='outbound'"
        )[0][0]
        floor = newest - timedelta(days=settings.lookback_days)
        final_outside = {
            r[0]
            for r in store.query(
                "SELECT id FROM multimail_emails WHERE direction='outbound' AND is_final "
                "AND created_at < ?",
                [floor],
            )
        }
        assert final_outside, "the sample should have final mail older than the lookback window"
        # Lists start at the window; final mail before it is neither listed nor read again,
        # and mail not final yet is read again however old it is.
        second_lists = [e for e in requests if e.kind == "list"]
        assert {e.query.get("date_after") for e in second_lists} == {
            floor.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        }
        assert len(second_lists) < len(first_lists)
        assert not final_outside & set(reread)
        assert not_final <= set(reread)
        assert second.detail_calls == len(reread) < first.detail_calls
        assert content_digest(store) == digest


FAULTS: dict[str, Callable[[Any], None]] = {
    "429 storm with Retry-After": lambda s: (
        s.faults.add(r"/v1/mailboxes/[^/]+/emails/", "429", times=40, retry_after="0"),
        s.faults.add(r"/v1/mailboxes/[^/]+/emails$", "429", times=3, retry_after="0.1"),
        s.faults.add(r"/conversations/", "429", times=10, retry_after="0"),
    ),
    "dropped connections": lambda s: s.faults.add(r"/v1/mailboxes/[^/]+/emails/", "drop", times=25),
    "malformed page": lambda s: s.faults.add(r"/v1/audit-log", "malformed", times=1),
    "read timeouts": lambda s: s.faults.add(
        r"/v1/mailboxes/[^/]+/emails/", "timeout", times=4, seconds=1.0
    ),
    # The headers and half the body, then the connection closes: deterministic, no clock.
    "bodies cut mid-way": lambda s: (
        s.faults.add(r"/v1/mailboxes/[^/]+/emails/", "truncated", times=10),
        s.faults.add(r"/v1/mailboxes/[^/]+/emails$", "truncated", times=2),
        s.faults.add(r"/v1/audit-log", "truncated", times=2),
        s.faults.add(r"/conversations/", "truncated", times=3),
    ),
    "5xx bursts": lambda s: (
        s.faults.add(r"/v1/mailboxes/[^/]+/emails/", "503", times=20),
        s.faults.add(r"/v1/mailboxes$", "500", times=2),
        s.faults.add(r"/conversations/", "502", times=5),
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_leave_the_same_store_as_a_clean_run(
    fault: str, small_sandbox: Any, baseline: dict[str, Any]
) -> None:
    sandbox = small_sandbox
    FAULTS[fault](sandbox)
    with ScratchStore() as store:
        # A short read timeout so the "timeout" fault (the server says nothing for 1 s) trips it.
        settings = settings_for(sandbox, ":memory:", timeout_seconds=0.5)
        result = harvest(settings, store, transport=fast_retries())
        assert result.outcome == "ok", result.errors
        assert result.retries > 0 or result.quarantined > 0
        assert content_digest(store) == baseline["digest"]
        assert cursor_rows(store) == baseline["cursors"]
        if fault == "malformed page":
            assert (
                store.query("SELECT count(*) FROM quarantine WHERE reason LIKE 'invalid page%'")[0][
                    0
                ]
                == 1
            )


def test_random_failures_at_20_percent(small_sample: Path, baseline: dict[str, Any]) -> None:
    server = start_sandbox(small_sample, fail_rate=0.2, seed=7)
    try:
        with ScratchStore() as store:
            result = harvest(
                settings_for(server, ":memory:", concurrency=16), store, transport=fast_retries()
            )
            assert result.outcome == "ok", result.errors
            assert result.retries > 100
            assert content_digest(store) == baseline["digest"]
    finally:
        server.stop()


def test_tampered_audit_log_is_detected(small_sandbox: Any, small_sample: Path) -> None:
    sandbox = small_sandbox
    mutations = json.loads((small_sample / "multimail" / "mutations.json").read_text())["mutations"]
    with ScratchStore() as store:
        settings = settings_for(sandbox, ":memory:")
        harvest(settings, store)
        before = dict(store.query("SELECT id, raw FROM multimail_audit_log"))
        sandbox.apply_mutations()
        result = harvest(settings, store, full_audit_scan=True)
        events = store.query(
            "SELECT record_type, record_id, change, stored_raw, source_raw FROM integrity_events"
        )
        expected = {(m["id"], {"set": "changed", "delete": "removed"}[m["op"]]) for m in mutations}
        assert {(e[1], e[2]) for e in events} == expected
        assert all(e[0] == "audit_entry" for e in events)
        assert result.integrity_events == len(events) == 2
        for _, record_id, change, stored_raw, source_raw in events:
            # Stored evidence is untouched; the event holds both versions.
            assert (
                store.query("SELECT raw FROM multimail_audit_log WHERE id = ?", [record_id])[0][0]
                == before[record_id]
            )
            assert stored_raw == before[record_id]
            if change == "changed":
                assert "reason edited later" in source_raw
            else:
                assert source_raw is None
        # A rerun finds the same two events (idempotent ids), not new ones.
        harvest(settings, store, full_audit_scan=True)
        assert store.count("integrity_events") == 2


HARVEST_SCRIPT = """
import sys
import threading
from pathlib import Path
from auditkit.config import Settings
from auditkit.harvest import harvest
from auditkit.store import Store
url, db, key, token = sys.argv[1:5]
settings = Settings(db_path=Path(db), multimail_api_url=url, multimail_api_key=key,
                    intercom_api_url=url, intercom_access_token=token, concurrency=8)
class Finished:
    # Each stage's end, printed as it happens: the kill test waits on these lines.
    def start(self, stage, total): pass
    def advance(self, stage, n): pass
    def finish(self, stage, count): print("finished", stage, flush=True)
with Store(db) as store:
    print(harvest(settings, store, progress=Finished()).outcome)
"""


def start_harvest(server: Any, db: Path) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MULTIMAIL_", "INTERCOM_", "AUDITKIT_"))
    }
    return subprocess.Popen(
        [sys.executable, "-c", HARVEST_SCRIPT, server.base_url, str(db), MM_KEY, IC_TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def served_since(server: Any, mark: int) -> list[Any]:
    return server.requests.snapshot()[mark:]


class KillPoint(NamedTuple):
    name: str
    hold: str  # path regex of the requests held, so the run stops in place
    reached: Callable[[list[Any], list[str]], bool]  # (requests served, lines printed)


def kill_points(sample: Path) -> list[KillPoint]:
    """Where to kill, each fixed by what the run cannot get past rather than by wall time,
    so each kill lands in the same state on a loaded CI machine and a fast laptop:
    - mid-mailboxes: the third mailbox's detail reads are held, and the second mailbox has
      finished (mail is committed in listing order, so exactly the first two are stored);
    - audit log in flight: every audit-log request is held, and the pending list is asked
      for (which happens after all mail is committed): all mail, no audit log;
    - Intercom: Intercom conversation reads are held, and one was asked for (the audit log
      is committed before enrichment starts): all mail and audit log, no conversation."""
    mailboxes = json.loads((sample / "multimail" / "mailboxes.json").read_text())["mailboxes"]
    second = f"mailbox {mailboxes[1].get('address') or mailboxes[1]['id']}"
    third = mailboxes[2]["id"]
    return [
        KillPoint(
            "mid-mailboxes",
            rf"^/v1/mailboxes/{re.escape(third)}/emails/[^/]+$",
            lambda _log, lines: f"finished {second}" in lines,
        ),
        KillPoint(
            "audit log in flight",
            r"^/v1/audit-log",
            lambda log, _lines: any(e.kind == "pending" for e in log),
        ),
        KillPoint(
            "Intercom held",
            r"/conversations/",
            lambda log, _lines: any(e.kind == "intercom_conversation" for e in log),
        ),
    ]


def _read_lines(stream: Any, into: list[str]) -> threading.Thread:
    def pump() -> None:
        for line in stream:
            into.append(line.strip())

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def test_sigkill_at_several_points_then_rerun_equals_a_clean_run(
    small_sample: Path, tmp_path: Path, baseline: dict[str, Any]
) -> None:
    server = start_sandbox(small_sample, latency_ms=2)
    db = tmp_path / "killed.duckdb"
    mailboxes = json.loads((small_sample / "multimail" / "mailboxes.json").read_text())
    first_two = {m["id"] for m in mailboxes["mailboxes"][:2]}
    try:
        after_kill = []
        for point in kill_points(small_sample):
            server.faults.hold(point.hold)
            mark = len(server.requests)
            proc = start_harvest(server, db)
            lines: list[str] = []
            errors: list[str] = []  # drained too, so a full pipe can never stall the run
            readers = [_read_lines(proc.stdout, lines), _read_lines(proc.stderr, errors)]
            # No deadline of our own: the hold keeps the run alive until it is killed, and
            # pytest's own timeout (or the CI job's) catches a kill point never reached.
            while not point.reached(served_since(server, mark), lines):
                assert proc.poll() is None, f"the harvest ended before {point.name!r}: {lines}"
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            for reader, stream in zip(readers, (proc.stdout, proc.stderr), strict=True):
                reader.join(timeout=60)
                assert stream is not None
                stream.close()
            assert proc.returncode == -signal.SIGKILL
            server.faults.clear()
            with Store(db) as store:
                after_kill.append(
                    (
                        store.count("multimail_emails"),
                        store.count("multimail_audit_log"),
                        store.count("intercom_conversations"),
                        store.query(
                            "SELECT count(*) FROM multimail_emails WHERE NOT list_contains(?, "
                            "mailbox_id)",
                            [sorted(first_two)],
                        )[0][0],
                    )
                )
        proc = start_harvest(server, db)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip().splitlines()[-1] == "ok"
        with Store(db) as store:
            assert content_digest(store) == baseline["digest"]
            assert cursor_rows(store) == baseline["cursors"]
            runs = store.query("SELECT outcome, error FROM harvest_runs ORDER BY started_at")
            assert [r[0] for r in runs] == ["failed", "failed", "failed", "ok"]
            assert all("interrupted" in r[1] for r in runs[:3])
        # Each kill landed in its phase, exactly.
        (emails_1, _, convs_1, beyond_1), second, third = after_kill
        assert 0 < emails_1 < baseline["emails"] and beyond_1 == 0 and convs_1 == 0, after_kill
        assert second[:3] == (baseline["emails"], 0, 0), after_kill
        assert third[0] == baseline["emails"] and third[1] > 0 and third[2] == 0, after_kill
    finally:
        server.stop()


@pytest.fixture
def cli_env(small_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("MULTIMAIL_API_URL", small_sandbox.base_url)
    monkeypatch.setenv("MULTIMAIL_API_KEY", MM_KEY)
    yield small_sandbox


def test_cli_harvest_json_summary(cli_env: Any, tmp_path: Path, baseline: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from auditkit.cli import cli

    db = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(cli, ["harvest", "--db", str(db), "--json", "--concurrency", "8"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "ok"
    assert summary["detail_calls"] == baseline["result"].detail_calls
    assert (
        summary["skipped"]["intercom_no_token"] > 0
    )  # no INTERCOM_ACCESS_TOKEN in this environment
    assert MM_KEY not in result.output
    # Not a terminal: one summary line per stage on stderr, stdout stays pure JSON.
    assert "harvest: account: 1 records" in result.stderr
    assert "harvest: audit_log:" in result.stderr
    status = CliRunner().invoke(cli, ["status", "--db", str(db), "--json"])
    assert status.exit_code == 0, status.output
    listed = json.loads(status.stdout)["mailboxes"]
    assert listed and all(m["outbound_listed_in_full_at"] for m in listed)
    with Store(db, read_only=True) as store:  # the library call gives what status prints
        doc = store.status().to_dict(str(db), datetime.now(UTC))
    shown = json.loads(status.stdout)
    del doc["hours_since_last_successful_harvest"], shown["hours_since_last_successful_harvest"]
    assert json.loads(json.dumps(doc, sort_keys=True, default=str)) == shown
    text = CliRunner().invoke(cli, ["status", "--db", str(db)])
    assert (
        "mailboxes (address, id), outbound listing:" in text.stdout
        and "complete as of" in text.stdout
    )
    with Store(db) as store:
        params = json.loads(store.query("SELECT params FROM harvest_runs")[0][0])
        assert params["concurrency"] == 8 and params["multimail_api_key_set"] is True


def test_cli_filters_reach_the_list_calls(cli_env: Any, tmp_path: Path, small_sample: Path) -> None:
    from click.testing import CliRunner

    from auditkit.cli import cli

    sandbox = cli_env
    mailbox = json.loads((small_sample / "multimail" / "mailboxes.json").read_text())["mailboxes"][
        0
    ]
    mark = len(sandbox.requests)
    db = tmp_path / "filtered.duckdb"
    args = ["harvest", "--db", str(db), "--since", "2026-08-01", "--until", "2026-08-31"]
    result = CliRunner().invoke(cli, [*args, "--mailbox", mailbox["id"]])
    assert result.exit_code == 0, result.output
    lists = [e for e in served_since(sandbox, mark) if e.kind == "list"]
    assert lists and {e.path.split("/")[3] for e in lists} == {mailbox["id"]}
    assert all(e.query["date_after"] == "2026-08-01T00:00:00Z" for e in lists)
    # A bare --until date covers that whole day.
    assert all(e.query["date_before"] == "2026-09-01T00:00:00Z" for e in lists)
    with Store(db) as store:
        assert store.query("SELECT DISTINCT mailbox_id FROM multimail_emails") == [(mailbox["id"],)]
        span = store.query("SELECT min(created_at), max(created_at) FROM multimail_emails")[0]
        assert span[0].isoformat() >= "2026-08-01" and span[1].isoformat() < "2026-09-01"
        params = json.loads(store.query("SELECT params FROM harvest_runs")[0][0])
        assert params["mailbox_ids"] == [mailbox["id"]] and params["since"].startswith("2026-08-01")
    # The address works as well as the id (status prints both), in any case.
    mark = len(sandbox.requests)
    by_address = CliRunner().invoke(
        cli,
        [
            *args,
            "--db",
            str(tmp_path / "by-address.duckdb"),
            "--mailbox",
            mailbox["address"].upper(),
        ],
    )
    assert by_address.exit_code == 0, by_address.output
    lists = [e for e in served_since(sandbox, mark) if e.kind == "list"]
    assert lists and {e.path.split("/")[3] for e in lists} == {mailbox["id"]}
    unknown = CliRunner().invoke(
        cli, [*args, "--db", str(tmp_path / "none.duckdb"), "--mailbox", "nobody@northwind.example"]
    )
    assert unknown.exit_code == 4 and "no mailbox with that id or address" in unknown.output


def test_second_writer_fails_fast_with_store_in_use(cli_env: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from auditkit.cli import cli

    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from auditkit.store import Store; s = Store(sys.argv[1]); "
            "print('open', flush=True); "
            "time.sleep(600)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = CliRunner().invoke(cli, ["harvest", "--db", str(db)])
        assert result.exit_code == 5
        assert f"in use by PID {holder.pid}" in result.output
        # It failed fast, not by waiting for the lock: the holder still has it (no clock
        # is read, so a busy machine cannot make this flaky).
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.communicate()


# A deadlock guard, not a speed check: a read held here is released by the run itself.
HOLD_GUARD_SECONDS = 120


def test_a_failed_run_lets_its_reads_in_flight_end_before_their_client_closes(
    small_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails while detail reads are mid-way waits for them before closing their
    client. Closed under them, a failing read is retried on a new connection in the
    transport's pool, which outlives the client, so nothing ever closes it.

    No clock decides the order: each detail read is held until the run either starts
    draining its read pool (the fix) or closes the transport (the bug), and the test reads
    which came first from the order the reads ended and the transport closed."""
    from concurrent.futures import ThreadPoolExecutor

    import auditkit.harvest.run as run_module
    from auditkit.harvest.mailboxes import _MailHarvest

    release, reading = threading.Event(), threading.Event()
    events: list[str] = []
    lock = threading.Lock()

    def note(event: str) -> None:
        with lock:
            events.append(event)

    class HeldDetailReads(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if not is_detail_read(request.url.path):
                return self.inner.handle_request(request)
            note("read started")
            reading.set()
            try:
                assert release.wait(HOLD_GUARD_SECONDS), "a held read was never released"
                response = self.inner.handle_request(request)
                response.read()
                return response
            finally:
                note("read ended")

        def close(self) -> None:
            note("closed")
            if reading.is_set():  # not the preflight's close, before any read
                release.set()
            self.inner.close()

    class ReleasingPool(ThreadPoolExecutor):
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            release.set()
            super().shutdown(wait=wait, cancel_futures=cancel_futures)

    def settling_fails(self: Any, entry: Any) -> None:
        # Fails only once a read is in flight (held), however slowly the pool starts.
        assert reading.wait(HOLD_GUARD_SECONDS), "no detail read started"
        raise RuntimeError("settling failed")

    monkeypatch.setattr(run_module, "ThreadPoolExecutor", ReleasingPool)
    monkeypatch.setattr(_MailHarvest, "_settle", settling_fails)
    with ScratchStore() as store, pytest.raises(RuntimeError, match="settling failed"):
        harvest(settings_for(small_sandbox, ":memory:"), store, transport=HeldDetailReads())
    assert "read started" in events, events
    last_close = max(i for i, e in enumerate(events) if e == "closed")
    ended = [i for i, e in enumerate(events) if e == "read ended"]
    assert ended and max(ended) < last_close, events
