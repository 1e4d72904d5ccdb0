"""Intercom facts: conversation → row mapping, inbox links, /me, rate-limit gate, 404 handling."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from auditkit.config import IntercomWorkspace, Settings
from auditkit.errors import SourceAuthError
from auditkit.sources.client import RetryTransport
from auditkit.sources.intercom import (
    IntercomApp,
    RateLimitGate,
    build_intercom_client,
    conversation_row,
    fetch_app,
    fetch_conversation,
    inbox_url,
    region_from_url,
)
from tests.builders import ScratchStore
from tests.conftest import IC_TOKEN

FETCHED = datetime(2026, 10, 1, tzinfo=UTC)
APP = IntercomApp(app_id="abc123de", region="us")


def fin_part(part_type: str, *, ai: bool) -> dict[str, object]:
    return {
        "type": "conversation_part",
        "part_type": part_type,
        "author": {"type": "bot", "id": "8123456", "from_ai_agent": ai, "is_ai_answer": ai},
    }


FIN_RESOLVED = {
    "type": "conversation",
    "id": "215471234567890",
    "created_at": 1760950800,
    "updated_at": 1760951460,
    "state": "closed",
    "admin_assignee_id": 0,
    "team_assignee_id": 77,
    "source": {"author": {"type": "user", "id": "c1", "email": "dana.ortiz@example.com"}},
    "contacts": {"contacts": [{"type": "contact", "id": "65f1c2", "external_id": "cust_48213"}]},
    "tags": {"tags": [{"type": "tag", "id": "9", "name": "billing-duplicate-charge"}]},
    "statistics": {
        "last_close_at": 1760951460,
        "last_closed_by_id": "8123456",
        "count_conversation_parts": 2,
    },
    "conversation_parts": {
        "total_count": 2,
        "conversation_parts": [fin_part("comment", ai=True), fin_part("close", ai=False)],
    },
    "ai_agent_participated": True,
    "ai_agent": {"resolution_state": "confirmed_resolution"},
}


def test_fin_resolved_conversation_maps_to_the_table() -> None:
    row = conversation_row(
        "215471234567890", 200, FIN_RESOLVED, app=APP, intercom_version="2.14", fetched_at=FETCHED
    )
    with ScratchStore() as store:
        # As the account sees the table: the store adds `account` itself.
        visible = store.con.execute("SELECT * FROM intercom_conversations LIMIT 0").description
        cols = {d[0] for d in visible}
        assert set(row) == cols - {"run_id", "harvested_at"}
        store.upsert("intercom_conversations", [{**row, "run_id": "r", "harvested_at": FETCHED}])
    assert row["found"] is True and row["state"] == "closed"
    assert row["created_at"] == datetime.fromtimestamp(1760950800, tz=UTC)
    assert row["closed_at"] == datetime.fromtimestamp(1760951460, tz=UTC)
    assert row["contact_id"] == "65f1c2" and row["contact_email"] == "dana.ortiz@example.com"
    assert row["admin_assignee_id"] is None and row["team_assignee_id"] == "77"
    assert (
        row["ai_agent_participated"] is True
        and row["ai_resolution_state"] == "confirmed_resolution"
    )
    assert row["resolved_by"] == "ai_agent"
    assert row["tags"] == ["billing-duplicate-charge"]
    assert row["part_count"] == 2 and row["parts_truncated"] is False
    assert (
        row["inbox_url"]
        == "https://app.intercom.com/a/inbox/abc123de/inbox/conversation/215471234567890"
    )


def test_teammate_close_and_truncated_parts() -> None:
    body = {
        **FIN_RESOLVED,
        "ai_agent": {"resolution_state": "escalated"},
        "conversation_parts": {
            "total_count": 812,
            "conversation_parts": [{"part_type": "close", "author": {"type": "admin", "id": "42"}}],
        },
        "statistics": {"count_conversation_parts": 812, "last_close_at": 1760951460},
    }
    row = conversation_row("1", 200, body, app=APP, intercom_version="2.14", fetched_at=FETCHED)
    assert row["resolved_by"] == "teammate"
    assert row["part_count"] == 812 and row["parts_truncated"] is True


def test_open_conversation_has_no_resolver() -> None:
    body = {**FIN_RESOLVED, "state": "open", "ai_agent": None}
    row = conversation_row("1", 200, body, app=APP, intercom_version="2.14", fetched_at=FETCHED)
    assert row["resolved_by"] is None and row["closed_at"] is None


def test_404_row_records_not_found() -> None:
    row = conversation_row(
        "9",
        404,
        {"type": "error.list", "errors": [{"code": "not_found"}]},
        app=APP,
        intercom_version="2.14",
        fetched_at=FETCHED,
    )
    assert row["found"] is False and row["http_status"] == 404 and row["state"] is None
    assert "not_found" in row["raw"]


@pytest.mark.parametrize(
    ("region", "host"),
    [("us", "app.intercom.com"), ("eu", "app.eu.intercom.com"), ("au", "app.au.intercom.com")],
)
def test_inbox_url_uses_the_regional_host(region: str, host: str) -> None:
    assert inbox_url("abc", "5", region) == f"https://{host}/a/inbox/abc/inbox/conversation/5"
    assert inbox_url(None, "5", region) is None


def test_region_from_api_url() -> None:
    assert region_from_url("https://api.eu.intercom.io") == "eu"
    assert region_from_url("http://127.0.0.1:5000") == "us"


def test_fetch_app_pins_version_and_reads_region() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"type": "admin", "app": {"id_code": "xyz", "region": "AU"}}
        )

    settings = Settings(
        intercom_access_token=IC_TOKEN, intercom_version="2.11", intercom_api_url="https://ic.test"
    )
    client = build_intercom_client(settings, transport=httpx.MockTransport(handler))
    app = fetch_app(client, fallback_app_id=None, fallback_region="us")
    assert app == IntercomApp(app_id="xyz", region="au")
    assert seen[0].headers["Intercom-Version"] == "2.11"
    assert seen[0].headers["Accept"] == "application/json"
    assert seen[0].headers["Authorization"] == f"Bearer {IC_TOKEN}"


def test_fetch_conversation_404_is_returned_and_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            404, json={"type": "error.list", "errors": [{"code": "conversation_not_found"}]}
        )

    transport = RetryTransport(httpx.MockTransport(handler), max_retries=3, sleep=lambda s: None)
    client = httpx.Client(base_url="https://ic.test", transport=transport)
    status, body = fetch_conversation(client, "123", gate=RateLimitGate(sleep=lambda s: None))
    assert status == 404 and body["errors"][0]["code"] == "conversation_not_found"
    assert len(calls) == 1


def test_rate_limit_gate_waits_for_reset_when_nothing_remains() -> None:
    sleeps: list[float] = []
    gate = RateLimitGate(sleep=sleeps.append, clock=lambda: 1000.0)
    gate.after_response({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "1004"})
    gate.before_request()
    assert sleeps == []
    gate.after_response({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1004"})
    gate.before_request()
    assert sleeps == [4.0] and gate.waits == 1


def test_workspace_client_uses_its_own_host_token_and_credential_name() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/me":
            return httpx.Response(200, json={"app": {"id_code": "eu99", "region": "EU"}})
        return httpx.Response(401, json={"type": "error.list"})

    settings = Settings(intercom_access_token=IC_TOKEN, intercom_api_url="https://ic.test")
    eu = IntercomWorkspace(
        name="eu", region="eu", api_url="https://api.eu.intercom.io", access_token="tok_eu_x"
    )
    client = build_intercom_client(settings, transport=httpx.MockTransport(handler), workspace=eu)
    app = fetch_app(client, fallback_app_id=None, fallback_region="eu", credential=eu.credential)
    assert app == IntercomApp(app_id="eu99", region="eu")
    assert inbox_url(app.app_id, "c1", app.region) == (
        "https://app.eu.intercom.com/a/inbox/eu99/inbox/conversation/c1"
    )
    assert seen[0].url.host == "api.eu.intercom.io"
    assert seen[0].headers["Authorization"] == "Bearer tok_eu_x"
    with pytest.raises(SourceAuthError, match="INTERCOM_ACCESS_TOKEN_EU") as info:
        fetch_conversation(client, "c1", gate=RateLimitGate(), credential=eu.credential)
    assert "tok_eu_x" not in str(info.value)
