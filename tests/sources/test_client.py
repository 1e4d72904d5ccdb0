"""RetryTransport, build_client and error mapping, driven through httpx.MockTransport."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from auditkit import USER_AGENT
from auditkit.errors import RetriesExhaustedError, SourceAuthError, SourceError
from auditkit.sources.client import (
    PayloadError,
    RetryTransport,
    build_client,
    decode_json,
    parse_retry_after,
    raise_for_status,
    redact_url,
)
from tests.conftest import MM_KEY

NOW = 1_800_000_000.0


def scripted(
    responses: list[httpx.Response | Exception],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering with `responses` in order (exceptions are raised)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses[min(len(seen) - 1, len(responses) - 1)]
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler), seen


def client_with(
    responses: list[httpx.Response | Exception], *, max_retries: int = 3
) -> tuple[httpx.Client, list[float], list[httpx.Request], RetryTransport]:
    sleeps: list[float] = []
    inner, seen = scripted(responses)
    transport = RetryTransport(
        inner, max_retries=max_retries, sleep=sleeps.append, clock=lambda: NOW
    )
    client = build_client("https://api.example.test", MM_KEY, timeout=5, transport=transport)
    return client, sleeps, seen, transport


def test_429_retry_after_seconds_is_honoured() -> None:
    client, sleeps, seen, _ = client_with(
        [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={"ok": True})]
    )
    response = client.get("/v1/account")
    assert response.status_code == 200
    assert sleeps == [7.0]
    assert len(seen) == 2


def test_429_retry_after_http_date_is_honoured() -> None:
    when = datetime.fromtimestamp(NOW, tz=UTC) + timedelta(seconds=12)
    client, sleeps, _, _ = client_with(
        [
            httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}),
            httpx.Response(200, json={}),
        ]
    )
    assert client.get("/v1/account").status_code == 200
    assert sleeps == [pytest.approx(12.0, abs=1.0)]


def test_retry_after_zero_does_not_spin_and_counts_attempts() -> None:
    client, sleeps, seen, _ = client_with(
        [httpx.Response(429, headers={"Retry-After": "0"})], max_retries=4
    )
    with pytest.raises(RetriesExhaustedError):
        client.get("/v1/audit-log")
    assert len(seen) == 5  # first try + 4 retries, then stop
    assert sleeps == [0.05] * 4


def test_intercom_rate_limit_reset_used_when_no_retry_after() -> None:
    client, sleeps, _, _ = client_with(
        [
            httpx.Response(429, headers={"X-RateLimit-Reset": str(int(NOW) + 3)}),
            httpx.Response(200, json={}),
        ]
    )
    assert client.get("/conversations/1").status_code == 200
    assert sleeps == [3.0]


def test_5xx_then_success_backs_off_exponentially_with_jitter() -> None:
    client, sleeps, seen, transport = client_with(
        [
            httpx.Response(503),
            httpx.Response(500),
            httpx.Response(502),
            httpx.Response(200, json={}),
        ]
    )
    assert client.get("/v1/mailboxes").status_code == 200
    assert len(seen) == 4
    # attempt n waits between half and all of base * 2**n
    for n, delay in enumerate(sleeps):
        assert 0.5 * 2**n / 2 <= delay <= 0.5 * 2**n
    assert transport.retries == 3


def test_backoff_is_capped() -> None:
    sleeps: list[float] = []
    inner, _ = scripted([httpx.Response(500)])
    transport = RetryTransport(
        inner, max_retries=10, backoff_base=1, backoff_cap=4, sleep=sleeps.append
    )
    with pytest.raises(RetriesExhaustedError):
        httpx.Client(transport=transport).get("https://x.test/v1/a")
    assert max(sleeps) <= 4
    assert len(sleeps) == 10


def test_exhausted_names_the_path_but_no_query_or_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client, _, _, _ = client_with([httpx.Response(503)], max_retries=2)
    with pytest.raises(RetriesExhaustedError) as info:
        client.get(
            "/v1/mailboxes/mbx_1/emails", params={"cursor": "abc", "access_token": "zzz-secret"}
        )
    message = str(info.value)
    assert "/v1/mailboxes/mbx_1/emails" in message
    assert "503" in message and "3 attempts" in message
    assert "zzz-secret" not in message and MM_KEY not in message
    assert "zzz-secret" not in caplog.text and MM_KEY not in caplog.text
    assert "access_token=REDACTED" in caplog.text
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    # Routine retries are INFO: a retry that then succeeds is no warning for a cron mail.
    assert len(retries) == 2 and {r.levelname for r in retries} == {"INFO"}


def test_connection_errors_are_retried_then_exhausted() -> None:
    client, sleeps, seen, _ = client_with(
        [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200, json={})]
    )
    assert client.get("/v1/account").status_code == 200
    assert len(sleeps) == 2
    client, _, seen, _ = client_with([httpx.RemoteProtocolError("dropped")], max_retries=1)
    with pytest.raises(RetriesExhaustedError, match="RemoteProtocolError") as info:
        client.get("/v1/account")
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    assert len(seen) == 2


class CutBody(httpx.SyncByteStream):
    """A body whose connection fails after its first bytes, as a real socket's can, after
    the status and headers have arrived; records whether it was closed."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"emails": [{"id": "01J'
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow body"), httpx.RemoteProtocolError("incomplete body")]
)
def test_a_body_cut_after_the_headers_is_retried(error: Exception) -> None:
    cut = CutBody(error)
    client, sleeps, seen, transport = client_with(
        [httpx.Response(200, stream=cut), httpx.Response(200, json={"emails": []})]
    )
    response = client.get("/v1/mailboxes/m/emails")
    assert response.json() == {"emails": []}
    assert len(seen) == 2 and len(sleeps) == 1 and transport.retries == 1
    assert cut.closed, "the cut response was not closed before the retry"


def test_bodies_cut_every_time_exhaust_the_retries_naming_the_error() -> None:
    client, _, seen, _ = client_with(
        [httpx.Response(200, stream=CutBody(httpx.ReadTimeout("slow body"))) for _ in range(3)],
        max_retries=2,
    )
    with pytest.raises(RetriesExhaustedError, match="after 3 attempts: ReadTimeout"):
        client.get("/v1/mailboxes/m/emails")
    assert len(seen) == 3


def test_post_is_never_retried() -> None:
    client, sleeps, seen, _ = client_with([httpx.Response(503)])
    assert client.post("/v1/oversight/decide", json={}).status_code == 503
    assert len(seen) == 1 and sleeps == []


def test_404_is_not_retried() -> None:
    client, sleeps, seen, _ = client_with([httpx.Response(404)])
    assert client.get("/conversations/9").status_code == 404
    assert len(seen) == 1 and sleeps == []


def test_failed_responses_are_closed_before_retrying() -> None:
    closed: list[bool] = []

    class TrackingStream(httpx.ByteStream):
        def close(self) -> None:
            closed.append(True)

    client, _, _, _ = client_with(
        [httpx.Response(503, stream=TrackingStream(b"busy")), httpx.Response(200, json={})]
    )
    client.get("/v1/account")
    assert closed, "the 503 response was not closed before the retry"


def test_build_client_sets_headers_timeout_and_auth() -> None:
    inner, seen = scripted([httpx.Response(200, json={})])
    client = build_client(
        "https://api.example.test/",
        MM_KEY,
        timeout=12.5,
        transport=inner,
        extra_headers={"Intercom-Version": "2.14"},
    )
    client.get("/me")
    request = seen[0]
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Authorization"] == f"Bearer {MM_KEY}"
    assert request.headers["Intercom-Version"] == "2.14"
    assert client.timeout.read == 12.5
    assert str(request.url) == "https://api.example.test/me"
    assert MM_KEY not in repr(client)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, '{"error": "Invalid API key"}', "key in MULTIMAIL_API_KEY is wrong"),
        (403, '{"error": "Insufficient scope: admin required"}', "lacks the scope"),
        (403, "error code: 1020", "Cloudflare WAF"),
    ],
)
def test_auth_errors_explain_the_cause_without_the_token(
    status: int, body: str, expected: str
) -> None:
    request = httpx.Request(
        "GET",
        "https://api.example.test/v1/audit-log?limit=100",
        headers={"Authorization": f"Bearer {MM_KEY}"},
    )
    response = httpx.Response(status, text=body, request=request)
    with pytest.raises(SourceAuthError) as info:
        raise_for_status(response, source="MultiMail", credential="MULTIMAIL_API_KEY")
    assert expected in str(info.value)
    assert "/v1/audit-log" in str(info.value)
    assert MM_KEY not in str(info.value)


def test_other_client_errors_become_source_errors() -> None:
    request = httpx.Request("GET", "https://api.example.test/v1/domains")
    with pytest.raises(SourceError, match="HTTP 400 for /v1/domains: bad cursor"):
        raise_for_status(
            httpx.Response(400, json={"error": "bad cursor"}, request=request),
            source="MultiMail",
            credential="MULTIMAIL_API_KEY",
        )


def test_non_json_body_is_a_payload_error_with_the_raw_text() -> None:
    request = httpx.Request("GET", "https://api.example.test/v1/audit-log?cursor=x")
    with pytest.raises(PayloadError, match="not JSON") as info:
        decode_json(httpx.Response(200, text="<html>gateway</html>", request=request))
    assert info.value.raw_text == "<html>gateway</html>"


def test_redact_url_masks_secret_parameters_and_userinfo() -> None:
    url = "https://user:pw@api.example.test/v1/x?cursor=abc&api_key=SEKRIT&token=T0K&limit=5"
    redacted = redact_url(url)
    assert "SEKRIT" not in redacted and "T0K" not in redacted and "pw" not in redacted
    assert "cursor=abc" in redacted and "limit=5" in redacted


def test_parse_retry_after_rejects_garbage() -> None:
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None
    assert parse_retry_after("1.5", now=NOW) == 1.5
    assert parse_retry_after("-3", now=NOW) == 0.0
