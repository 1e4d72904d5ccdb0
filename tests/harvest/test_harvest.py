"""harvest() and import_emails() against an in-process fake API (httpx.MockTransport)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkit.config import Settings
from auditkit.config_accounts import Account
from auditkit.controls import run_controls
from auditkit.errors import ConfigError, SourceAuthError
from auditkit.findings import parse_period
from auditkit.harvest import audit_log, harvest, import_emails
from auditkit.sources import paging
from auditkit.sources.client import RetryTransport
from auditkit.store import HARVESTED_TABLES, Store, audit_chain, content_digest
from auditkit.store.canonical import canonical_json, sha256_hex
from tests.builders import ScratchStore
from tests.conftest import IC_TOKEN, MM_KEY


def email(
    n: int, mailbox: str, *, final: bool = True, conversation: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"em_{n:04d}",
        "from": f"{mailbox}@nw.example",
        "to": [f"c{n}@example.com"],
        "subject": f"Message {n}",
        "received_at": f"2026-07-{1 + n % 28:02d}T10:00:{n % 60:02d}Z",
        "status": "read" if final else "pending_send_approval",
        "markdown": "hi",
        "delivered_at": f"2026-07-{1 + n % 28:02d}T10:05:00Z" if final else None,
        "approved_by": "lee@nw.example",
        "approved_at": None,
        "tags": {"intercom_conversation_id": conversation} if conversation else {},
    }


class FakeAPI:
    """MultiMail + Intercom routes over in-memory data; records every request path."""

    def __init__(self) -> None:
        self.mailboxes = [
            {"id": "mbx_a", "address": "a@nw.example", "created_at": 1767225600000, "is_active": 1},
            {"id": "mbx_b", "address": "b@nw.example", "created_at": 1767225600000, "is_active": 1},
        ]
        self.emails: dict[str, list[dict[str, Any]]] = {
            "mbx_a": [
                email(n, "a", conversation="ic_1" if n == 1 else None) for n in range(1, 131)
            ],
            "mbx_b": [email(n, "b", final=n % 10 != 0) for n in range(201, 241)],
        }
        self.inbound = {
            "mbx_a": [{**email(900, "x"), "direction": "inbound", "status": "unread"}],
            "mbx_b": [],
        }
        self.audit = [
            {
                "id": f"al_{n:04d}",
                "action": "email.sent",
                "resource_type": "email",
                "resource_id": f"em_{n:04d}",
                "actor_key_id": "key_1",
                "metadata": {},
                "created_at": f"2026-07-01T00:{n // 60:02d}:{n % 60:02d}Z",
            }
            for n in range(1, 251)
        ]
        self.conversations = {
            "ic_1": {
                "type": "conversation",
                "id": "ic_1",
                "state": "closed",
                "created_at": 1783073700,
                "updated_at": 1783073760,
            }
        }
        self.audit_page_size = 100
        self.requests: list[httpx.Request] = []
        self.pending_status = 200
        self.on_pending: Callable[[], None] | None = None
        self.failing_detail_ids: set[str] = set()  # read_email answers 503 for these, always

    def page(
        self, items: list[dict[str, Any]], request: httpx.Request, key: str, limit: int
    ) -> httpx.Response:
        start = int(request.url.params.get("cursor", "0"))
        chunk = items[start : start + limit]
        nxt = str(start + limit) if start + limit < len(items) else None
        return httpx.Response(200, json={key: chunk, "cursor": nxt})

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        parts = path.strip("/").split("/")
        if path == "/me":
            return httpx.Response(200, json={"app": {"id_code": "abc123de", "region": "EU"}})
        if parts[0] == "conversations":
            conv = self.conversations.get(parts[1])
            return (
                httpx.Response(200, json=conv)
                if conv
                else httpx.Response(404, json={"type": "error.list"})
            )
        if request.headers.get("Authorization") != f"Bearer {MM_KEY}":
            return httpx.Response(401, json={"error": "bad key"})
        simple = {
            "/v1/account": {"id": "acc_1", "name": "Northwind", "physical_address": "1 Main St"},
            "/v1/api-keys": {"api_keys": [{"id": "key_1", "scopes": ["send"]}]},
            "/v1/domains": {
                "domains": [{"id": "dom_1", "domain": "nw.example", "dkim_verified": True}]
            },
            "/v1/webhooks": {
                "subscriptions": [{"id": "wh_1", "url": "https://h", "signing_secret": "whsec_S"}]
            },
            "/v1/suppression": {
                "suppressions": [{"id": "sup_1", "email_address": "no@example.com"}]
            },
            "/v1/mailboxes": {"mailboxes": self.mailboxes},
            "/v1/oversight/pending": {"emails": [{"id": "em_0210", "mailbox_id": "mbx_b"}]},
        }
        if path == "/v1/oversight/pending" and self.on_pending is not None:
            self.on_pending()
        if path == "/v1/oversight/pending" and self.pending_status != 200:
            return httpx.Response(self.pending_status, json={"error": "oversight scope required"})
        if path in simple:
            return httpx.Response(200, json=simple[path])
        if path == "/v1/audit-log":
            return self.page(list(reversed(self.audit)), request, "entries", self.audit_page_size)
        if len(parts) == 4 and parts[3] == "emails":
            source = self.emails if request.url.params["direction"] == "outbound" else self.inbound
            after = request.url.params.get("date_after", "")  # same ISO form: compares as text
            ordered = sorted(
                (e for e in source[parts[2]] if e["received_at"] >= after),
                key=lambda e: e["received_at"],
                reverse=True,
            )
            return self.page(ordered, request, "emails", 100)
        if len(parts) == 5:
            if parts[4] in self.failing_detail_ids:
                return httpx.Response(503, json={"error": "unavailable"})
            found = [e for e in self.emails[parts[2]] if e["id"] == parts[4]]
            return (
                httpx.Response(200, json=found[0])
                if found
                else httpx.Response(404, json={"error": "nf"})
            )
        return httpx.Response(404, json={"error": f"no route {path}"})

    def detail_ids(self, since: int = 0) -> list[str]:
        return [
            r.url.path.rsplit("/", 1)[1]
            for r in self.requests[since:]
            if r.url.path.count("/") == 5
        ]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    base = Settings(
        db_path=tmp_path / "s.duckdb",
        multimail_api_url="https://mm.test",
        multimail_api_key=MM_KEY,
        intercom_api_url="https://ic.test",
        concurrency=4,
    )
    return base.with_overrides(**overrides)


def run(api: FakeAPI, settings: Settings, store: Store, **kw: Any) -> Any:
    transport = RetryTransport(
        httpx.MockTransport(api.handler), max_retries=2, sleep=lambda s: None
    )
    return harvest(settings, store, transport=transport, **kw)


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


def test_full_harvest_stores_everything_with_provenance(api: FakeAPI, tmp_path: Path) -> None:
    with ScratchStore() as store:
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok", result.errors
        assert store.count("multimail_emails") == 130 + 40 + 1
        assert result.detail_calls == 170
        assert result.counts["audit_log"] == 250 and store.count("multimail_audit_log") == 250
        assert (
            store.query(
                "SELECT count(*) FROM multimail_emails WHERE run_id <> ? OR raw_sha256 IS NULL",
                [result.run_id],
            )[0][0]
            == 0
        )
        # Order: account-level data first, then mailboxes, then mail and the queue; the audit
        # log is walked beside them and topped up after the last detail read.
        paths = [r.url.path for r in api.requests]
        order = [p for p in paths if p.count("/") <= 2 and p != "/v1/audit-log"]
        assert order[:7] == [
            "/v1/account",  # the preflight: is this MultiMail, and does it take the key?
            "/v1/account",
            "/v1/api-keys",
            "/v1/domains",
            "/v1/webhooks",
            "/v1/suppression",
            "/v1/mailboxes",
        ]
        # Then MultiMail's own counts (this fake API has neither endpoint: a 404 each, recorded
        # as unavailable without failing the run).
        assert paths[-3:] == ["/v1/audit-log", "/v1/usage", "/v1/webhook-deliveries"]
        assert result.skipped["usage_daily_unavailable"] == 1
        # Inbound mail is stored from its summary; read_email is never called for it.
        assert "em_0900" not in api.detail_ids()
        assert store.query("SELECT direction FROM multimail_emails WHERE id = 'em_0900'") == [
            ("inbound",)
        ]
        assert "whsec_S" not in store.query("SELECT raw FROM multimail_webhooks")[0][0]
        run_row = store.query(
            "SELECT outcome, params, error FROM harvest_runs WHERE run_id = ?", [result.run_id]
        )
        assert run_row[0][0] == "ok" and MM_KEY not in run_row[0][1] and run_row[0][2] is None
        # Hash chain: sequential, each link over the previous one.
        chain = store.query(
            "SELECT chain_seq, chain_hash FROM multimail_audit_log ORDER BY created_at, id"
        )
        assert [c[0] for c in chain] == list(range(1, 251))
        assert result.skipped["intercom_no_token"] == 1


def test_second_harvest_skips_final_mail_outside_the_lookback_window(
    api: FakeAPI, tmp_path: Path
) -> None:
    with ScratchStore() as store:
        run(api, settings_for(tmp_path, lookback_days=3), store)
        digest = content_digest(store)
        mark = len(api.requests)
        second = run(api, settings_for(tmp_path, lookback_days=3), store)
        reread = set(api.detail_ids(mark))
        newest = store.query(
            "SELECT max(created_at) FROM multimail_emails WHERE direction='outbound'"
        )[0][0]
        expected = {
            r[0]
            for r in store.query(
                "SELECT id FROM multimail_emails WHERE direction = 'outbound' AND "
                "(NOT is_final OR created_at >= ? - INTERVAL 3 DAY)",
                [newest],
            )
        }
        assert reread == expected
        assert 0 < len(reread) < 170
        # Final mail before the window is not even listed again.
        lists = [r for r in api.requests[mark:] if r.url.path.endswith("/emails")]
        assert lists and all(r.url.params.get("date_after") for r in lists)
        assert second.counts.get("audit_log", 0) == 0
        assert content_digest(store) == digest
        first_seen = store.query("SELECT count(DISTINCT first_harvested_at) FROM multimail_emails")[
            0
        ][0]
        assert first_seen == 1


def list_requests(api: FakeAPI, since: int, mailbox: str) -> list[httpx.Request]:
    return [
        r
        for r in api.requests[since:]
        if r.url.path == f"/v1/mailboxes/{mailbox}/emails"
        and r.url.params["direction"] == "outbound"
    ]


def test_stored_mail_not_final_before_the_window_is_read_by_id(
    api: FakeAPI, tmp_path: Path
) -> None:
    with ScratchStore() as store:
        settings = settings_for(tmp_path, lookback_days=3)
        run(api, settings, store)
        # em_0230 (2026-07-07) waits for approval, well before the window (from 07-25).
        assert store.query("SELECT is_final FROM multimail_emails WHERE id = 'em_0230'") == [
            (False,)
        ]
        source = next(e for e in api.emails["mbx_b"] if e["id"] == "em_0230")
        source.update(status="read", delivered_at="2026-08-01T09:00:00Z")
        # em_0240 (07-17, pending) disappears at the source: quarantined, and kept as stored.
        api.emails["mbx_b"] = [e for e in api.emails["mbx_b"] if e["id"] != "em_0240"]
        mark = len(api.requests)
        result = run(api, settings, store)
        assert result.outcome == "ok", result.errors
        assert store.query(
            "SELECT record_id, reason FROM quarantine WHERE record_id = 'em_0240'"
        ) == [("em_0240", "stored and not final, but read_email now answers 404")]
        assert store.count("multimail_emails") == 130 + 40 + 1
        assert all(r.url.params.get("date_after") for r in list_requests(api, mark, "mbx_b"))
        assert "em_0230" in api.detail_ids(mark)
        assert store.query(
            "SELECT is_final, delivered_at IS NOT NULL FROM multimail_emails WHERE id = 'em_0230'"
        ) == [(True, True)]
        # Final now: the run after that neither lists nor reads it.
        mark = len(api.requests)
        run(api, settings, store)
        assert "em_0230" not in api.detail_ids(mark)


def test_a_failed_detail_read_keeps_the_next_listing_full(api: FakeAPI, tmp_path: Path) -> None:
    with ScratchStore() as store:
        api.failing_detail_ids = {"em_0005"}
        first = run(api, settings_for(tmp_path), store)
        assert first.outcome == "partial" and "em_0005" in first.errors[0]
        marks = dict(
            store.query(
                "SELECT resource, value FROM _auditkit_cursors "
                "WHERE resource LIKE 'emails_listed:%'"
            )
        )
        assert "emails_listed:mbx_a:outbound" not in marks
        assert "emails_listed:mbx_b:outbound" in marks
        api.failing_detail_ids = set()
        mark = len(api.requests)
        second = run(api, settings_for(tmp_path), store)
        assert second.outcome == "ok", second.errors
        # mbx_a is listed in full again (em_0005 is older than any window), mbx_b is not.
        assert not any(r.url.params.get("date_after") for r in list_requests(api, mark, "mbx_a"))
        assert all(r.url.params.get("date_after") for r in list_requests(api, mark, "mbx_b"))
        assert store.count("multimail_emails") == 130 + 40 + 1


def test_a_filtered_harvest_does_not_move_the_listing_watermark(
    api: FakeAPI, tmp_path: Path
) -> None:
    with ScratchStore() as store:
        run(api, settings_for(tmp_path), store, since=datetime(2026, 7, 20, tzinfo=UTC))
        assert store.query(
            "SELECT count(*) FROM _auditkit_cursors WHERE resource LIKE 'emails_listed:%'"
        ) == [(0,)]
        mark = len(api.requests)
        run(api, settings_for(tmp_path), store)
        assert not any(r.url.params.get("date_after") for r in list_requests(api, mark, "mbx_a"))
        assert store.count("multimail_emails") == 130 + 40 + 1


def test_audit_tamper_is_recorded_not_overwritten(api: FakeAPI, tmp_path: Path) -> None:
    with ScratchStore() as store:
        run(api, settings_for(tmp_path), store)
        original = store.query("SELECT raw FROM multimail_audit_log WHERE id = 'al_0100'")[0][0]
        api.audit[99] = {**api.audit[99], "actor_key_id": "key_forged"}
        del api.audit[10]
        api.audit.append(
            {
                "id": "al_0999",
                "action": "email.sent",
                "resource_type": "email",
                "resource_id": "em_1",
                "actor_key_id": "key_1",
                "metadata": None,
                "created_at": "2026-08-01T00:00:00Z",
            }
        )
        result = run(api, settings_for(tmp_path), store, full_audit_scan=True)
        events = store.query(
            "SELECT record_id, change, stored_raw, source_raw FROM integrity_events ORDER BY 1"
        )
        assert [(e[0], e[1]) for e in events] == [("al_0011", "removed"), ("al_0100", "changed")]
        assert "key_forged" in events[1][3] and events[1][2] == original
        assert (
            store.query("SELECT raw FROM multimail_audit_log WHERE id = 'al_0100'")[0][0]
            == original
        )
        assert result.integrity_events == 2
        new = store.query(
            "SELECT chain_seq, chain_hash FROM multimail_audit_log WHERE id = 'al_0999'"
        )
        assert new[0][0] == 251


def test_incremental_audit_paging_stops_at_a_stored_id(api: FakeAPI, tmp_path: Path) -> None:
    with ScratchStore() as store:
        run(api, settings_for(tmp_path), store)
        mark = len(api.requests)
        api.audit.append(
            {
                "id": "al_0999",
                "action": "x",
                "resource_type": "email",
                "resource_id": "e",
                "actor_key_id": "k",
                "metadata": None,
                "created_at": "2026-08-01T00:00:00Z",
            }
        )
        result = run(api, settings_for(tmp_path), store)
        audit_calls = [r for r in api.requests[mark:] if r.url.path == "/v1/audit-log"]
        # One page for the walk beside the mail, one for the top-up after it.
        assert len(audit_calls) == 2 and result.counts["audit_log"] == 1


def test_audit_log_is_walked_while_mail_is_read_and_topped_up_after(
    api: FakeAPI, tmp_path: Path
) -> None:
    late_entry = {
        "id": "al_late",
        "action": "email.sent",
        "resource_type": "email",
        "resource_id": "em_0240",
        "actor_key_id": "key_1",
        "metadata": {},
        "created_at": "2026-07-02T00:00:00Z",
    }
    # Written at the source after the mail was read (the queue is fetched after the mail).
    api.on_pending = lambda: None if late_entry in api.audit else api.audit.append(late_entry)
    with ScratchStore() as store:
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok", result.errors
        # The walk's first page is asked for before the mail is done (the queue comes after
        # the mail), and the top-up after it: the walk overlaps the detail reads.
        paths = [r.url.path for r in api.requests]
        audit_at = [i for i, path in enumerate(paths) if path == "/v1/audit-log"]
        assert audit_at[0] < paths.index("/v1/oversight/pending") < audit_at[-1]
        assert result.counts["audit_log"] == 251
        chain = store.query(
            "SELECT id, chain_seq FROM multimail_audit_log ORDER BY chain_seq DESC LIMIT 1"
        )
        assert chain == [("al_late", 251)]
        assert store.get_cursor("multimail", "audit_log") == "al_late"


def test_audit_staging_left_by_a_killed_run_is_discarded(api: FakeAPI, tmp_path: Path) -> None:
    # A run killed mid-walk leaves staged entries that were never chained: scratch, not evidence.
    with ScratchStore() as store:
        store.con.execute(
            f"INSERT INTO {store.base('_auditkit_audit_walk')} VALUES ('default', 'al_ghost', "
            "true, 'x', 'email', 'e', 'k', "
            "NULL, '2026-07-01 00:00:00+00', '{}', 'sha', 'dead-run', '2026-07-01 00:00:00+00')"
        )
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok", result.errors
        assert result.counts["audit_log"] == 250
        assert store.count("_auditkit_audit_walk") == 0
        assert store.query("SELECT count(*) FROM multimail_audit_log WHERE id = 'al_ghost'") == [
            (0,)
        ]


def test_bad_records_are_quarantined_and_the_rest_lands(api: FakeAPI, tmp_path: Path) -> None:
    api.emails["mbx_a"][5] = {**api.emails["mbx_a"][5], "to": 42}
    api.audit[3] = {"action": "no id", "created_at": "2026-07-01T00:00:00Z"}
    with ScratchStore() as store:
        result = run(api, settings_for(tmp_path), store)
        assert result.quarantined == 2 and result.outcome == "ok"
        reasons = sorted(r[0] for r in store.query("SELECT reason FROM quarantine"))
        assert any("to is int" in r for r in reasons) and any("no id" in r for r in reasons)
        assert store.count("multimail_emails") == 170 and store.count("multimail_audit_log") == 249


def test_killed_run_then_rerun_equals_clean_run(api: FakeAPI, tmp_path: Path) -> None:
    with ScratchStore() as clean:
        run(api, settings_for(tmp_path), clean)
        expected = content_digest(clean)
    with ScratchStore() as store:
        # Killed while committing the second batch of mail: pinned to the store, not to a
        # count of detail reads, because how far the reader threads run ahead of the
        # commits depends on scheduling (this test flaked on a busy machine).
        upsert, batches = store.upsert, []

        def killed_on_second_mail_batch(table: str, rows: Any, *args: Any, **kw: Any) -> Any:
            if table == "multimail_emails":
                batches.append(len(rows))
                if len(batches) == 2:
                    raise KeyboardInterrupt("simulated kill")
            return upsert(table, rows, *args, **kw)

        store.upsert = killed_on_second_mail_batch  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            run(api, settings_for(tmp_path), store)
        store.upsert = upsert  # type: ignore[method-assign]
        assert store.count("multimail_emails") == batches[0] and 0 < batches[0] < 171
        assert store.query("SELECT outcome FROM harvest_runs")[0][0] == "failed"
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok"
        assert content_digest(store) == expected


def test_run_killed_between_chain_batches_then_rerun_equals_clean_run(
    api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # 250 new entries, chained 100 per transaction; killed while writing the second batch.
    monkeypatch.setattr(audit_log, "AUDIT_CHAIN_BATCH", 100)
    with ScratchStore() as clean:
        run(api, settings_for(tmp_path), clean)
        expected = content_digest(clean)
    append, appended = audit_chain.ChainAppend.write, []

    def killed_on_second_batch(self: audit_chain.ChainAppend, store: Store) -> int:
        appended.append(self.entries.num_rows)
        if len(appended) == 2:
            raise KeyboardInterrupt("simulated kill")
        return append(self, store)

    with ScratchStore() as store:
        monkeypatch.setattr(audit_chain.ChainAppend, "write", killed_on_second_batch)
        with pytest.raises(KeyboardInterrupt):
            run(api, settings_for(tmp_path), store)
        monkeypatch.setattr(audit_chain.ChainAppend, "write", append)
        # The oldest 100 are chained; the rest, and the cursor, are not.
        assert store.count("multimail_audit_log") == 100
        assert store.get_cursor("multimail", "audit_log") is None
        # Pages come newest first, so the next run would meet the newest of those 100
        # before older entries it never stored only if MultiMail orders the log as we do.
        # It reads the whole log instead, and says so.
        mark = len(api.requests)
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok", result.errors
        assert "reads the whole audit log" in caplog.text
        audit_pages = [r for r in api.requests[mark:] if r.url.path == "/v1/audit-log"]
        assert len(audit_pages) > 2
        assert result.counts["audit_log"] == 150
        assert content_digest(store) == expected
        chain = store.query("SELECT id FROM multimail_audit_log ORDER BY chain_seq")
        assert chain == [(e["id"],) for e in api.audit]  # oldest first, as a clean run


def test_an_entry_the_source_repeats_within_a_walk_is_chained_once(
    api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 3 entries, newest first: the paging loop remembers a few pages' ids, so an
    # entry repeated ten pages on reaches the staging table twice.
    monkeypatch.setattr(paging, "DEDUP_WINDOW_PAGES", 2)
    api.audit_page_size = 3
    api.audit.insert(200, api.audit[230])
    with ScratchStore() as store:
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok", result.errors
        assert store.count("multimail_audit_log") == 250 == result.counts["audit_log"]
        assert result.integrity_events == 0  # the same copy twice is one entry, nothing more


@pytest.mark.parametrize("pages_apart", [1, 10])
def test_an_entry_the_source_gives_in_two_versions_is_an_integrity_event(
    pages_apart: int, api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Near (the paging loop's window) or far apart, the second version is not dropped
    unsaid: one version is chained, whichever page came first, and the run records an
    `inconsistent` event with both, which AL-001 reports."""
    monkeypatch.setattr(paging, "DEDUP_WINDOW_PAGES", 2)
    api.audit_page_size = 3
    original = api.audit[230]
    forged = {**original, "actor_key_id": "key_forged"}
    api.audit.insert(230 - 3 * pages_apart, forged)  # newest first: met after the original
    with ScratchStore() as store:
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok", result.errors
        assert result.integrity_events == 1
        assert store.count("multimail_audit_log") == 250 == result.counts["audit_log"]
        shas = {json.loads(raw)["actor_key_id"]: sha for raw, sha in (
            (canonical_json(e), sha256_hex(canonical_json(e))) for e in (original, forged)
        )}  # fmt: skip
        kept, other = sorted(shas.values())  # the copy kept is the first by SHA-256
        events = store.query(
            "SELECT record_id, change, stored_sha256, source_sha256, "
            "json_extract_string(source_raw, '$.actor_key_id') FROM integrity_events"
        )
        forged_copy = "key_forged" if other == shas["key_forged"] else original["actor_key_id"]
        assert events == [(original["id"], "inconsistent", kept, other, forged_copy)]
        stored = store.query(
            "SELECT raw_sha256 FROM multimail_audit_log WHERE id = ?", [original["id"]]
        )
        assert stored == [(kept,)]
        (al_001,) = run_controls(
            store, settings_for(tmp_path), parse_period("2026Q3"), only=["AL-001"]
        )
        (finding,) = al_001.findings
        assert finding.target_id == original["id"]
        assert "two different versions within one harvest" in finding.reason
        assert kept in finding.reason and other in finding.reason


def test_auth_failure_fails_the_run_without_leaking_the_key(
    api: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ScratchStore() as store:
        with pytest.raises(SourceAuthError) as info:
            run(api, settings_for(tmp_path, multimail_api_key="mm_live_WRONG_k3y"), store)
        assert "mm_live_WRONG_k3y" not in str(info.value) and "mm_live_WRONG_k3y" not in caplog.text
        outcome, error = store.query("SELECT outcome, error FROM harvest_runs")[0]
        assert outcome == "failed" and "401" in error and "WRONG" not in error


def test_a_key_refused_mid_run_is_named_by_its_accounts_variable(
    api: FakeAPI, tmp_path: Path
) -> None:
    # An [accounts.eu] key comes from MULTIMAIL_API_KEY_EU: the error must name that, also
    # when the key is accepted at first and refused later in the run (revoked mid-harvest).
    def revoked_for_detail_reads(request: httpx.Request) -> httpx.Response:
        if len(request.url.path.strip("/").split("/")) == 5:  # /v1/mailboxes/<id>/emails/<id>
            return httpx.Response(401, json={"error": "key revoked"})
        return api.handler(request)

    eu = Account("eu", "https://mm.test", api_key=MM_KEY)
    settings = settings_for(tmp_path, accounts=(eu,), account="eu").for_account("eu")
    transport = RetryTransport(
        httpx.MockTransport(revoked_for_detail_reads), max_retries=2, sleep=lambda s: None
    )
    with Store(":memory:", account="eu") as store:
        with pytest.raises(SourceAuthError) as info:
            harvest(settings, store, transport=transport)
    assert "MULTIMAIL_API_KEY_EU" in str(info.value), info.value
    assert MM_KEY not in str(info.value)


def test_missing_api_key_is_a_config_error(tmp_path: Path) -> None:
    with ScratchStore() as store, pytest.raises(ConfigError, match="MULTIMAIL_API_KEY"):
        harvest(Settings(), store)


def test_intercom_enrichment_maps_rows_and_records_404(api: FakeAPI, tmp_path: Path) -> None:
    api.emails["mbx_a"][1]["tags"] = {"intercom_conversation_id": "ic_gone"}
    with ScratchStore() as store:
        result = run(api, settings_for(tmp_path, intercom_access_token=IC_TOKEN), store)
        rows = store.query(
            "SELECT id, found, http_status, region, app_id, inbox_url, intercom_version "
            "FROM intercom_conversations ORDER BY id"
        )
        assert rows == [
            (
                "ic_1",
                True,
                200,
                "eu",
                "abc123de",
                "https://app.eu.intercom.com/a/inbox/abc123de/inbox/conversation/ic_1",
                "2.14",
            ),
            (
                "ic_gone",
                False,
                404,
                "eu",
                "abc123de",
                "https://app.eu.intercom.com/a/inbox/abc123de/inbox/conversation/ic_gone",
                "2.14",
            ),
        ]
        ic_requests = [r for r in api.requests if r.url.host == "ic.test"]
        assert all(r.headers["Intercom-Version"] == "2.14" for r in ic_requests)
        assert (
            sum(r.url.path == "/conversations/ic_gone" for r in ic_requests) == 1
        )  # 404 not retried
        assert result.counts["intercom_conversations"] == 2
        dump = json.dumps(store.query("SELECT * FROM intercom_conversations"), default=str)
        assert IC_TOKEN not in dump
        # Closed and 404 conversations are not fetched again.
        mark = len(api.requests)
        run(api, settings_for(tmp_path, intercom_access_token=IC_TOKEN), store)
        assert not [r for r in api.requests[mark:] if r.url.path.startswith("/conversations")]


def test_mailbox_filter_limits_mail_but_not_account_data(api: FakeAPI, tmp_path: Path) -> None:
    with ScratchStore() as store:
        run(api, settings_for(tmp_path), store, mailbox_ids=["mbx_b"])
        assert store.query("SELECT DISTINCT mailbox_id FROM multimail_emails") == [("mbx_b",)]
        assert store.count("multimail_mailboxes") == 2


def test_import_both_shapes_and_quarantine(tmp_path: Path) -> None:
    guide = {
        "message_id": "msg_1",
        "to": "x@example.com",
        "decision": {"reviewer": "lee", "action": "approve"},
        "created_at": "2026-07-01T00:00:00Z",
        "status": "delivered",
    }
    v1 = email(5, "a")
    (tmp_path / "a.jsonl").write_text(
        json.dumps(guide) + "\n{broken\n" + json.dumps({"subject": "no id"}) + "\n"
    )
    (tmp_path / "b.json").write_text(json.dumps([v1]))
    with ScratchStore() as store:
        result = import_emails(Settings(), store, [tmp_path / "a.jsonl", tmp_path / "b.json"])
        assert result.counts["emails_imported"] == 2 and result.quarantined == 2
        shapes = store.query("SELECT id, source_shape, direction FROM multimail_emails ORDER BY id")
        assert shapes == [("em_0005", "v1", "outbound"), ("msg_1", "guide", "outbound")]
        assert store.count("quarantine") == 2


def test_the_conversation_tag_is_a_setting(tmp_path: Path) -> None:
    record = {**email(7, "a"), "tags": {"ticket_ref": "ic_77", "intercom_conversation_id": "x"}}
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with ScratchStore() as store:
        import_emails(Settings(intercom_conversation_tag="ticket_ref"), store, [path])
        assert store.query("SELECT conversation_id FROM multimail_emails") == [("ic_77",)]


def test_content_digest_ignores_run_stamps_but_not_content(api: FakeAPI, tmp_path: Path) -> None:
    with ScratchStore() as a, ScratchStore() as b:
        run(api, settings_for(tmp_path), a)
        run(api, settings_for(tmp_path), b)
        assert content_digest(a) == content_digest(b)
        b.con.execute(
            f"UPDATE {b.base('multimail_emails')} SET approved_by = 'someone' WHERE id = 'em_0001'"
        )
        assert content_digest(a) != content_digest(b)
        assert len(HARVESTED_TABLES) == 13


def test_cli_harvest_without_api_key_exits_3(tmp_path: Path) -> None:
    from click.testing import CliRunner

    import auditkit.cli.harvest  # noqa: F401  (registers the commands)
    from auditkit.cli.base import cli

    result = CliRunner().invoke(cli, ["harvest", "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 3
    assert "Error: MULTIMAIL_API_KEY is not set" in result.output


def test_cli_import_json_summary(tmp_path: Path) -> None:
    from click.testing import CliRunner

    import auditkit.cli.harvest  # noqa: F401
    from auditkit.cli.base import cli

    (tmp_path / "r.jsonl").write_text(
        json.dumps(email(1, "a")) + "\n" + json.dumps({"id": 5}) + "\n"
    )
    result = CliRunner().invoke(
        cli, ["import", str(tmp_path / "r.jsonl"), "--db", str(tmp_path / "x.duckdb"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"emails_imported": 1} and summary["quarantined"] == 1


def test_pending_queue_without_oversight_scope_is_a_counted_skip(
    api: FakeAPI, tmp_path: Path
) -> None:
    api.pending_status = 403
    with ScratchStore() as store:
        result = run(api, settings_for(tmp_path), store)
        assert result.outcome == "ok"
        assert result.skipped["pending_no_oversight_scope"] == 1
        assert store.count("multimail_pending") == 0
        assert store.count("multimail_audit_log") == 250  # later stages still ran


def test_watermarks_are_kept_under_the_multimail_source() -> None:
    # The store names the source itself (it knows nothing of HTTP); the two must agree.
    from auditkit.sources import multimail
    from auditkit.store.books import WATERMARK_SOURCE

    assert WATERMARK_SOURCE == multimail.SOURCE
