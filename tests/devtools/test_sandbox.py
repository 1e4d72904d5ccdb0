"""The sandbox API: schema contract of every endpoint, auth, paging, faults, latency, keep-alive."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkit.devtools.sandbox import LoggedRequest, RequestLog, SandboxServer
from auditkit.errors import ConfigError
from tests.conftest import IC_TOKEN, MM_KEY, ROOT
from tests.devtools.sandbox_process import interrupt, kill_if_running, start_sandbox


def _reference_schemas_file() -> Path:
    """shared/reference beside the checkout; from a git worktree, beside the main checkout."""
    beside = ROOT.parent / "shared" / "reference" / "multimail-schemas.json"
    common = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if beside.is_file() or common.returncode != 0:
        return beside
    main = Path(common.stdout.strip()).parent
    return main.parent / "shared" / "reference" / "multimail-schemas.json"


# The vendored copy the contract test reads (tests/data/multimail/README.md says where it is
# from), and the team's reference copy it must equal when that is beside the checkout.
SCHEMAS_FILE = ROOT / "tests" / "data" / "multimail" / "multimail-schemas.json"
REFERENCE_SCHEMAS_FILE = _reference_schemas_file()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


@pytest.fixture
def mm(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {MM_KEY}"}, timeout=5
    ) as client:
        yield client


@pytest.fixture
def ic(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {IC_TOKEN}"}, timeout=5
    ) as client:
        yield client


def mailbox_ids(client: httpx.Client) -> dict[str, str]:
    return {m["address"]: m["id"] for m in client.get("/v1/mailboxes").json()["mailboxes"]}


def all_pages(client: httpx.Client, path: str, records: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a cursor-paged list, each body returned as is."""
    pages, cursor = [], None
    for _ in range(10_000):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        cursor = body["cursor"]
        if cursor is None:
            return pages
    raise AssertionError(f"{path} never ended")


# -- contract ---------------------------------------------------------------------------------
def test_the_vendored_schemas_equal_the_reference_copy() -> None:
    if not REFERENCE_SCHEMAS_FILE.is_file():
        pytest.skip(f"no reference copy at {REFERENCE_SCHEMAS_FILE} to compare with")
    assert SCHEMAS_FILE.read_bytes() == REFERENCE_SCHEMAS_FILE.read_bytes(), (
        f"{SCHEMAS_FILE} differs from {REFERENCE_SCHEMAS_FILE}: see tests/data/multimail/README.md"
    )


def test_every_endpoint_matches_the_published_schemas(mm: httpx.Client, ic: httpx.Client) -> None:
    from jsonschema import Draft202012Validator, FormatChecker

    schemas = json.loads(SCHEMAS_FILE.read_text(encoding="utf-8"))

    validators = {
        name: Draft202012Validator(schema, format_checker=FormatChecker())
        for name, schema in schemas.items()
    }

    def check(name: str, body: Any) -> None:
        errors = sorted(validators[name].iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].path)}"

    check("AccountInfo", mm.get("/v1/account").json())
    check("MailboxListResponse", mm.get("/v1/mailboxes").json())
    check("ApiKeyListResponse", mm.get("/v1/api-keys").json())
    check("DomainListResponse", mm.get("/v1/domains").json())
    check("SuppressionListResponse", mm.get("/v1/suppression").json())
    check("WebhookSubscriptionListResponse", mm.get("/v1/webhooks").json())
    check("OversightPendingListResponse", mm.get("/v1/oversight/pending").json())
    for page in all_pages(mm, "/v1/audit-log", "entries", limit=100):
        check("AuditLogListResponse", page)
    usage = mm.get(
        "/v1/usage", params={"from": 0, "to": 2_000_000_000_000, "breakdown": "daily"}
    ).json()
    check("UsageDaily", usage)
    assert usage["data"] and {"date", "event_type", "count"} <= set(usage["data"][0])
    deliveries = all_pages(mm, "/v1/webhook-deliveries", "deliveries", limit=100)
    for page in deliveries:
        check("WebhookDeliveryListResponse", page)
    assert sum(len(p["deliveries"]) for p in deliveries) > 100
    details: set[str] = set()
    for mailbox_id in mailbox_ids(mm).values():
        for page in all_pages(mm, f"/v1/mailboxes/{mailbox_id}/emails", "emails", limit=100):
            check("EmailListResponse", page)
            for summary in page["emails"]:
                if summary["direction"] == "outbound":
                    detail = mm.get(f"/v1/mailboxes/{mailbox_id}/emails/{summary['id']}").json()
                    check("EmailResponse", detail)
                    assert "mailbox_id" not in detail and "direction" not in detail
                    details.add(detail["id"])
    assert len(details) == 3000
    assert "signing_secret" not in mm.get("/v1/webhooks").text


def test_intercom_endpoints(ic: httpx.Client, sample_data: Path) -> None:
    me = ic.get("/me")
    assert me.status_code == 200 and me.json()["app"]["id_code"]
    conversation = read_jsonl(sample_data / "intercom" / "conversations.jsonl")[5]
    found = ic.get(f"/conversations/{conversation['id']}")
    assert found.json() == conversation
    limit, remaining = (
        int(found.headers["X-RateLimit-Limit"]),
        int(found.headers["X-RateLimit-Remaining"]),
    )
    assert remaining < limit and int(found.headers["X-RateLimit-Reset"]) > time.time() - 1
    missing = ic.get("/conversations/999999999")
    assert missing.status_code == 404
    assert (
        missing.json()["type"] == "error.list"
        and missing.json()["errors"][0]["code"] == "not_found"
    )


def test_intercom_rate_limit_answers_429_when_the_window_is_spent(sample_data: Path) -> None:
    with (
        SandboxServer(sample_data, intercom_token=IC_TOKEN, intercom_rate_limit=3) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {IC_TOKEN}"}
        ) as client,
    ):
        by_window: dict[str, list[tuple[int, str]]] = {}
        for _ in range(12):  # 12 calls span at most two 10-second windows
            r = client.get("/me")
            assert r.headers["X-RateLimit-Limit"] == "3"
            by_window.setdefault(r.headers["X-RateLimit-Reset"], []).append(
                (r.status_code, r.headers["X-RateLimit-Remaining"])
            )
    assert any(len(calls) > 3 for calls in by_window.values())
    for calls in by_window.values():
        assert calls[:3] == [(200, "2"), (200, "1"), (200, "0")][: len(calls)]
        assert all(call == (429, "0") for call in calls[3:])


# -- auth and errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": MM_KEY}]
)
def test_multimail_rejects_missing_or_wrong_keys(
    sandbox: SandboxServer, headers: dict[str, str]
) -> None:
    response = httpx.get(f"{sandbox.base_url}/v1/account", headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()
    assert "oauth-protected-resource" in response.headers["WWW-Authenticate"]
    assert MM_KEY not in response.text


def test_intercom_rejects_the_multimail_key(sandbox: SandboxServer) -> None:
    response = httpx.get(f"{sandbox.base_url}/me", headers={"Authorization": f"Bearer {MM_KEY}"})
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "unauthorized"
    assert "X-RateLimit-Limit" not in response.headers


def test_unknown_paths_and_bad_parameters(mm: httpx.Client) -> None:
    support = mailbox_ids(mm)["support@northwind.example"]
    assert mm.get("/v1/nope").status_code == 404
    assert mm.get("/v1/mailboxes/NOPE/emails").status_code == 404
    missing = mm.get(f"/v1/mailboxes/{support}/emails/01J0000000000000000000NONE")
    assert (missing.status_code, missing.json()) == (404, {"error": "Email not found"})
    for limit in ("0", "101", "ten"):
        assert mm.get(f"/v1/mailboxes/{support}/emails", params={"limit": limit}).status_code == 400
        assert mm.get("/v1/audit-log", params={"limit": limit}).status_code == 400
    assert mm.get(f"/v1/mailboxes/{support}/emails", params={"cursor": "abc"}).status_code == 400
    assert mm.get("/v1/audit-log", params={"cursor": "%%%"}).status_code == 400
    assert mm.post("/v1/account", json={"name": "x"}).status_code == 405


def test_missing_data_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="auditkit.sample"):
        SandboxServer(tmp_path).start()


def test_mutations_need_a_running_server(sample_data: Path) -> None:
    with pytest.raises(RuntimeError, match="start"):
        SandboxServer(sample_data).apply_mutations()


# -- paging ----------------------------------------------------------------------------------
def test_email_pages_cover_every_outbound_message(mm: httpx.Client, sample_data: Path) -> None:
    emails = read_jsonl(sample_data / "multimail" / "emails.jsonl")
    for address, mailbox_id in mailbox_ids(mm).items():
        expected = {
            e["id"]
            for e in emails
            if e["mailbox_id"] == mailbox_id and e["direction"] == "outbound"
        }
        pages = all_pages(
            mm, f"/v1/mailboxes/{mailbox_id}/emails", "emails", limit=7, direction="outbound"
        )
        seen = [e["id"] for page in pages for e in page["emails"]]
        assert set(seen) == expected, address
        # The timestamp cursor repeats the boundary item; nothing else repeats.
        for earlier, later in zip(pages, pages[1:], strict=False):
            overlap = {e["id"] for e in earlier["emails"]} & {e["id"] for e in later["emails"]}
            assert overlap <= {earlier["emails"][-1]["id"]}
            assert earlier["cursor"] == str(_ms(earlier["emails"][-1]["received_at"]))
        assert len(seen) - len(set(seen)) <= max(len(pages) - 1, 0)
        received = [e["received_at"] for page in pages for e in page["emails"]]
        assert received == sorted(received, reverse=True), "newest first"


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def test_email_list_filters(mm: httpx.Client) -> None:
    support = mailbox_ids(mm)["support@northwind.example"]
    path = f"/v1/mailboxes/{support}/emails"
    window = [
        e
        for p in all_pages(
            mm,
            path,
            "emails",
            limit=100,
            date_after="2026-08-01T00:00:00Z",
            date_before="2026-08-08T00:00:00Z",
        )
        for e in p["emails"]
    ]
    assert window and all("2026-08-01" <= e["received_at"] < "2026-08-08" for e in window)
    inbound = mm.get(path, params={"direction": "inbound", "limit": 100}).json()["emails"]
    assert inbound and all(e["direction"] == "inbound" for e in inbound)
    rejected = mm.get(path, params={"status": "rejected", "limit": 100}).json()["emails"]
    assert rejected and all(e["status"] == "rejected" for e in rejected)
    newest = mm.get(path, params={"limit": 5}).json()["emails"]
    since = mm.get(path, params={"since_id": newest[2]["id"], "limit": 100}).json()["emails"]
    assert {e["id"] for e in since} == {e["id"] for e in newest[:2]}
    assert len(mm.get(path).json()["emails"]) == 20  # default limit


def test_audit_log_pages_are_complete_newest_first(mm: httpx.Client, sample_data: Path) -> None:
    audit = read_jsonl(sample_data / "multimail" / "audit_log.jsonl")
    pages = all_pages(mm, "/v1/audit-log", "entries", limit=100)
    served = [e for page in pages for e in page["entries"]]
    assert [e["id"] for e in served] == [
        e["id"] for e in sorted(audit, key=lambda a: (a["created_at"], a["id"]), reverse=True)
    ]
    assert len(mm.get("/v1/audit-log").json()["entries"]) == 50  # default limit


def test_apply_mutations_changes_and_removes_audit_entries(
    sandbox: SandboxServer, mm: httpx.Client, sample_data: Path
) -> None:
    spec = json.loads((sample_data / "multimail" / "mutations.json").read_text())["mutations"]
    changed = next(m for m in spec if m["op"] == "set")
    removed = next(m for m in spec if m["op"] == "delete")
    pages = all_pages(mm, "/v1/audit-log", "entries", limit=100)
    before = [e for p in pages for e in p["entries"]]
    # A cursor handed out while the removed entry was the last one served.
    position = [e["id"] for e in before].index(removed["id"])
    previous_cursor = pages[position // 100 - 1]["cursor"] if position >= 100 else None
    params = {
        "limit": position % 100 + 1,
        **({"cursor": previous_cursor} if previous_cursor else {}),
    }
    boundary = mm.get("/v1/audit-log", params=params).json()
    assert boundary["entries"][-1]["id"] == removed["id"]

    assert sandbox.apply_mutations() == 2
    resumed = mm.get("/v1/audit-log", params={"cursor": boundary["cursor"], "limit": 2}).json()[
        "entries"
    ]
    assert [e["id"] for e in resumed] == [e["id"] for e in before[position + 1 : position + 3]]
    after = {
        e["id"]: e
        for p in all_pages(mm, "/v1/audit-log", "entries", limit=100)
        for e in p["entries"]
    }
    before_by_id = {e["id"]: e for e in before}
    assert set(before_by_id) - set(after) == {removed["id"]}
    assert after[changed["id"]]["metadata"]["reason"] == changed["value"]
    assert before_by_id[changed["id"]]["metadata"]["reason"] != changed["value"]
    assert {k: v for k, v in after.items() if k != changed["id"]} == {
        k: v for k, v in before_by_id.items() if k not in (changed["id"], removed["id"])
    }
    assert sandbox.apply_mutations() == 2  # applying again changes nothing more
    assert (
        mm.get("/v1/audit-log", params={"limit": 100}).json()["entries"]
        == [after[e["id"]] for e in before if e["id"] != removed["id"]][:100]
    )


def test_reading_inbound_detail_marks_it_read(mm: httpx.Client) -> None:
    for mailbox_id in mailbox_ids(mm).values():
        unread = mm.get(
            f"/v1/mailboxes/{mailbox_id}/emails",
            params={"direction": "inbound", "status": "unread", "limit": 1},
        ).json()["emails"]
        if unread:
            detail = mm.get(f"/v1/mailboxes/{mailbox_id}/emails/{unread[0]['id']}").json()
            assert detail["status"] == "unread"  # the answer shows the state before the read
            again = mm.get(f"/v1/mailboxes/{mailbox_id}/emails/{unread[0]['id']}").json()
            assert again["status"] == "read"
            return
    pytest.fail("sample has no unread inbound mail")


# -- faults, latency, keep-alive ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_scripted_server_errors(sandbox: SandboxServer, mm: httpx.Client, kind: str) -> None:
    sandbox.faults.add(r"^/v1/account$", kind, times=2)
    assert [mm.get("/v1/account").status_code for _ in range(3)] == [int(kind), int(kind), 200]
    assert mm.get("/v1/domains").status_code == 200
    statuses = [r.status for r in sandbox.requests if r.path == "/v1/account"]
    assert statuses == [int(kind), int(kind), 200]


def test_scripted_429_carries_retry_after(sandbox: SandboxServer, mm: httpx.Client) -> None:
    sandbox.faults.add(r"/v1/audit-log", "429", retry_after="1")
    sandbox.faults.add(r"/v1/audit-log", "429", retry_after=None)
    first, second = mm.get("/v1/audit-log"), mm.get("/v1/audit-log")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "1")
    assert second.status_code == 429 and "Retry-After" not in second.headers
    assert mm.get("/v1/audit-log").status_code == 200
    assert len(sandbox.faults) == 0


def test_drop_closes_without_an_answer(sandbox: SandboxServer, mm: httpx.Client) -> None:
    sandbox.faults.add(r"/v1/mailboxes$", "drop")
    with pytest.raises(httpx.RemoteProtocolError):
        mm.get("/v1/mailboxes")
    assert mm.get("/v1/mailboxes").status_code == 200


def test_malformed_is_a_200_with_broken_json(sandbox: SandboxServer, mm: httpx.Client) -> None:
    sandbox.faults.add(r"/v1/api-keys", "malformed")
    response = mm.get("/v1/api-keys")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_timeout_outlasts_the_client(sandbox: SandboxServer) -> None:
    sandbox.faults.add(r"/v1/account", "timeout", seconds=1.0)
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {MM_KEY}"}, timeout=0.2
    ) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/v1/account")
        # The fault was used up: the next call is answered (a generous timeout, as a loaded
        # CI machine may take longer than 0.2 s to answer any request).
        assert client.get("/v1/account", timeout=30).status_code == 200


def test_faults_only_hit_matching_paths_and_validate(
    sandbox: SandboxServer, mm: httpx.Client
) -> None:
    sandbox.faults.add(r"/conversations/", "503", times=5)
    assert mm.get("/v1/account").status_code == 200
    assert len(sandbox.faults) == 5
    sandbox.faults.clear()
    with pytest.raises(ValueError):
        sandbox.faults.add(".*", "418")


def test_fail_rate_is_seeded(sample_data: Path) -> None:
    def statuses(seed: int) -> list[int]:
        with (
            SandboxServer(sample_data, api_key=MM_KEY, fail_rate=0.3, seed=seed) as server,
            httpx.Client(
                base_url=server.base_url, headers={"Authorization": f"Bearer {MM_KEY}"}
            ) as client,
        ):
            out = [client.get("/v1/account").status_code for _ in range(60)]
            retry_afters = {
                r.headers.get("Retry-After")
                for r in [client.get("/v1/domains") for _ in range(40)]
                if r.status_code == 429
            }
            assert retry_afters <= {"0", "1"}
            return out

    first = statuses(3)
    assert first == statuses(3)
    failures = [s for s in first if s != 200]
    assert 5 <= len(failures) <= 35
    assert set(failures) <= {429, 500, 502, 503}


def test_latency_is_applied_per_request(sample_data: Path) -> None:
    with (
        SandboxServer(sample_data, api_key=MM_KEY, latency_ms=40) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {MM_KEY}"}
        ) as client,
    ):
        client.get("/v1/account")
        t0 = time.perf_counter()
        for _ in range(5):
            client.get("/v1/account")
        assert time.perf_counter() - t0 >= 5 * 0.04


def test_keep_alive_reuses_one_connection(sandbox: SandboxServer, mm: httpx.Client) -> None:
    ports = set()
    for _ in range(20):
        response = mm.get("/v1/account")
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(response.content))
        stream = response.extensions["network_stream"]
        ports.add(stream.get_extra_info("client_addr")[1])
    assert len(ports) == 1


def test_request_log_counts_route_kinds(
    sandbox: SandboxServer, mm: httpx.Client, ic: httpx.Client
) -> None:
    support = mailbox_ids(mm)["support@northwind.example"]
    page = mm.get(f"/v1/mailboxes/{support}/emails", params={"limit": 2}).json()
    mm.get(f"/v1/mailboxes/{support}/emails/{page['emails'][0]['id']}")
    mm.get("/v1/audit-log", params={"limit": 1})
    ic.get("/me")
    counts = sandbox.requests.counts()
    assert counts == {"mailboxes": 1, "list": 1, "detail": 1, "audit": 1, "intercom_me": 1}
    listed = next(r for r in sandbox.requests if r.kind == "list")
    assert listed.method == "GET" and listed.query == {"limit": "2"}
    sandbox.requests.clear()
    assert len(sandbox.requests) == 0 and sandbox.requests.counts() == {}


def test_request_log_keeps_the_latest_entries_but_counts_all() -> None:
    log = RequestLog(max_entries=3)
    for i in range(5):
        log.record(LoggedRequest("GET", f"/v1/x{i}", {}, "detail", 200))
    assert [e.path for e in log] == ["/v1/x2", "/v1/x3", "/v1/x4"]
    assert log.count("detail") == 5 and len(log) == 3


def test_stop_is_prompt_even_during_a_timeout_fault(sample_data: Path) -> None:
    server = SandboxServer(sample_data, api_key=MM_KEY).start()
    server.faults.add(r"/v1/account", "timeout", seconds=600)
    with (
        httpx.Client(base_url=server.base_url, timeout=0.2) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get("/v1/account")
    t0 = time.perf_counter()
    server.stop()
    # Far below the 600 s the handler would otherwise sleep, however loaded the machine.
    assert time.perf_counter() - t0 < 60


def test_port_in_use_is_a_config_error(sandbox: SandboxServer, sample_data: Path) -> None:
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match="cannot listen"):
        SandboxServer(sample_data, port=port).start()


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_serves_until_interrupted(sample_data: Path, how: int) -> None:
    proc = start_sandbox("--port", "0", "--data", str(sample_data), "--api-key", MM_KEY)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" on ", 1)[1].split(" ", 1)[0]
        exports = [proc.stdout.readline() for _ in range(5)]
        assert f"export MULTIMAIL_API_URL={url}\n" in exports
        assert f"export MULTIMAIL_API_KEY={MM_KEY}\n" in exports
        response = httpx.get(f"{url}/v1/account", headers={"Authorization": f"Bearer {MM_KEY}"})
        assert response.json()["slug"] == "northwind"
        out, err = interrupt(proc, how)
        assert proc.returncode == 0, err
        assert "stopped" in out  # shut down through the command's own cleanup
    finally:
        kill_if_running(proc)


# -- population sources (PC-001) ----------------------------------------------------------------
def test_usage_serves_the_days_in_range_and_refuses_a_bad_one(
    mm: httpx.Client, sample_data: Path
) -> None:
    everything = json.loads((sample_data / "multimail" / "usage_daily.json").read_text("utf-8"))
    july = mm.get(
        "/v1/usage",
        # 2026-07-01T00:00Z .. the last millisecond of 2026-07-31
        params={"from": 1782864000000, "to": 1785542399999, "breakdown": "daily"},
    ).json()
    assert july["breakdown"] == "daily" and july["from"] == 1782864000000
    assert {d["date"] for d in july["data"]} == {f"2026-07-{n:02d}" for n in range(1, 32)}
    assert july["data"] == [d for d in everything["data"] if d["date"].startswith("2026-07")]
    bad = mm.get("/v1/usage", params={"from": "yesterday", "to": 1, "breakdown": "daily"})
    assert bad.status_code == 400 and "from" in bad.json()["error"]


def test_webhook_deliveries_page_newest_first(mm: httpx.Client, sample_data: Path) -> None:
    stored = read_jsonl(sample_data / "multimail" / "webhook_deliveries.jsonl")
    pages = all_pages(mm, "/v1/webhook-deliveries", "deliveries", limit=37)
    served = [d for p in pages for d in p["deliveries"]]
    assert len(served) == len(stored) and len(pages) == -(-len(stored) // 37)
    assert served == sorted(stored, key=lambda d: (d["created_at"], d["id"]), reverse=True)


def test_population_endpoints_answer_404_when_the_data_set_has_none(
    sample_data: Path, tmp_path: Path
) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(sample_data, data, symlinks=True)
    (data / "multimail" / "usage_daily.json").unlink()
    (data / "multimail" / "webhook_deliveries.jsonl").unlink()
    with (
        SandboxServer(data, api_key=MM_KEY) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {MM_KEY}"}
        ) as client,
    ):
        usage = client.get("/v1/usage", params={"from": 0, "to": 1, "breakdown": "daily"})
        assert usage.status_code == 404
        assert client.get("/v1/webhook-deliveries").status_code == 404
