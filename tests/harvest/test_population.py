"""Harvesting MultiMail's own counts (daily usage, webhook deliveries) for PC-001: what lands,
what is quarantined, and a 403 or 404 recorded as an unavailable source, not a failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from auditkit.errors import SourceAuthError
from auditkit.harvest.population import harvest_population, usage_range
from auditkit.harvest.recorder import HarvestResult, RunRecorder
from auditkit.store import Store
from tests.builders import ScratchStore, StoreBuilder, ts

Handler = Callable[[httpx.Request], httpx.Response]
USAGE = {
    "from": 0,
    "to": 1,
    "breakdown": "daily",
    "data": [
        {"date": "2026-08-03", "event_type": "emails_sent", "count": 4},
        {"date": "2026-08-03", "event_type": "api_calls", "count": 40},
        {"date": "2026-08-04", "event_type": "emails_sent", "count": "many"},  # bad
        {"date": "2026-08-03", "event_type": "emails_sent", "count": 5},  # repeated pair
    ],
}
DELIVERIES = [
    {
        "id": f"wd_{i}",
        "event_type": "message.sent",
        "url": "https://hooks.example/events",
        "status": "delivered",
        "attempts": 1,
        "response_status": 200,
        "created_at": f"2026-08-0{3 + i % 2}T10:00:0{i}Z",
        "last_attempt_at": None,
    }
    for i in range(5)
]


@pytest.fixture
def store() -> Iterator[Store]:
    with ScratchStore() as s:
        StoreBuilder(s).email("em_1", created_at=ts("2026-08-03 10:00"))
        StoreBuilder(s).email("em_2", created_at=ts("2026-08-04 09:00"))
        yield s


def api(usage: Handler | None = None, deliveries: Handler | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/usage":
            return usage(request) if usage else httpx.Response(200, json=USAGE)
        if request.url.path == "/v1/webhook-deliveries":
            if deliveries:
                return deliveries(request)
            start = int(request.url.params.get("cursor", "0"))
            page = DELIVERIES[start : start + 2]
            more = start + 2 < len(DELIVERIES)
            return httpx.Response(
                200, json={"deliveries": page, "cursor": str(start + 2) if more else None}
            )
        return httpx.Response(404, json={"error": "Not found"})

    return handle


def run(store: Store, handler: Handler) -> tuple[RunRecorder, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    books = RunRecorder(HarvestResult("run_pop"))
    with httpx.Client(
        base_url="https://api.test", transport=httpx.MockTransport(recording)
    ) as client:
        harvest_population(client, store, books)
    return books, seen


def coverage(store: Store) -> dict[str, dict[str, Any]]:
    result = store.con.execute("SELECT * EXCLUDE (raw, raw_sha256) FROM multimail_source_coverage")
    names = [d[0] for d in result.description or ()]
    return {r[0]: dict(zip(names, r, strict=True)) for r in result.fetchall()}


def test_usage_and_deliveries_land_with_their_coverage(store: Store) -> None:
    books, seen = run(store, api())
    usage_call = next(r for r in seen if r.url.path == "/v1/usage")
    # Whole UTC days from the oldest stored email to the end of yesterday (the run's clock).
    today = books.harvested_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert dict(usage_call.url.params) == {
        "from": str(int(datetime(2026, 8, 3, tzinfo=UTC).timestamp() * 1000)),
        "to": str(int(today.timestamp() * 1000) - 1),
        "breakdown": "daily",
    }
    assert store.query("SELECT id, count FROM multimail_usage_daily ORDER BY id") == [
        ("2026-08-03|api_calls", 40),
        ("2026-08-03|emails_sent", 4),
    ]
    # The bad count and the repeated (day, event type) are quarantined, never summed.
    reasons = [r[0] for r in store.query("SELECT reason FROM quarantine ORDER BY reason")]
    assert any("count" in r and "many" in r for r in reasons)
    assert any("repeats day and event type 2026-08-03|emails_sent" in r for r in reasons)
    assert books.result.quarantined == 2
    assert store.count("multimail_webhook_deliveries") == 5
    cov = coverage(store)
    assert cov["usage_daily"]["available"] and cov["usage_daily"]["covered_from"] == datetime(
        2026, 8, 3, tzinfo=UTC
    )
    assert cov["usage_daily"]["covered_to"] == today
    assert cov["webhook_deliveries"]["covered_from"] == datetime(2026, 8, 3, 10, 0, 0, tzinfo=UTC)
    assert books.result.errors == []


@pytest.mark.parametrize("status", [403, 404])
def test_a_refused_endpoint_is_recorded_unavailable_not_failed(store: Store, status: int) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        body = {"error": "Insufficient scope" if status == 403 else "Not found"}
        return httpx.Response(status, json=body)

    books, _ = run(store, api(usage=refuse, deliveries=refuse))
    assert books.result.errors == []
    assert books.result.skipped == {
        "usage_daily_unavailable": 1,
        "webhook_deliveries_unavailable": 1,
    }
    cov = coverage(store)
    for source, path in (
        ("usage_daily", "/v1/usage"),
        ("webhook_deliveries", "/v1/webhook-deliveries"),
    ):
        assert not cov[source]["available"] and cov[source]["http_status"] == status
        assert path in cov[source]["reason"]
        assert ("scope" if status == 403 else "404") in cov[source]["reason"]
    assert store.count("multimail_usage_daily") == 0


def test_an_unauthorised_key_still_fails_the_run(store: Store) -> None:
    def unauthorised(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "Invalid API key"})

    with pytest.raises(SourceAuthError):
        run(store, api(usage=unauthorised))


def test_a_server_error_fails_the_stage_and_keeps_the_last_coverage(store: Store) -> None:
    run(store, api())
    books, _ = run(store, api(usage=lambda r: httpx.Response(500, json={"error": "boom"})))
    assert any("usage_daily" in e and "500" in e for e in books.result.errors)
    assert coverage(store)["usage_daily"]["available"]  # the earlier read still stands


def test_a_body_that_is_not_json_is_quarantined(store: Store) -> None:
    books, _ = run(store, api(usage=lambda r: httpx.Response(200, text="<html>oops")))
    assert any("usage_daily" in e for e in books.result.errors)
    assert store.query("SELECT count(*) FROM quarantine WHERE endpoint = '/v1/usage'")[0][0] == 1


def test_usage_range_stops_before_today(store: Store) -> None:
    StoreBuilder(store).email("em_today", created_at=ts("2026-08-20 10:00"))
    start, end = usage_range(store, None, datetime(2026, 8, 20, 15, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 8, 3, tzinfo=UTC), datetime(2026, 8, 20, tzinfo=UTC))


def test_usage_range_reaches_yesterday_past_the_newest_stored_email(store: Store) -> None:
    """Mail sent after the last message the listings returned is what PC-001 must see, so
    the range does not stop at the newest stored email's day."""
    StoreBuilder(store).email("em_last", created_at=ts("2026-08-20 10:00"))
    start, end = usage_range(store, None, datetime(2026, 8, 27, 15, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 8, 3, tzinfo=UTC), datetime(2026, 8, 27, tzinfo=UTC))


def test_usage_range_ends_where_an_until_harvest_stopped_listing(store: Store) -> None:
    StoreBuilder(store).email("em_last", created_at=ts("2026-08-20 10:00"))
    now = datetime(2026, 9, 27, 15, tzinfo=UTC)
    # --until 2026-08-24 lists up to the end of that day (the CLI passes the next midnight).
    assert usage_range(store, None, now, datetime(2026, 8, 25, tzinfo=UTC))[1] == datetime(
        2026, 8, 25, tzinfo=UTC
    )
    # A time inside a day: that day was not listed whole.
    assert usage_range(store, None, now, datetime(2026, 8, 25, 9, tzinfo=UTC))[1] == datetime(
        2026, 8, 25, tzinfo=UTC
    )
    assert usage_range(store, None, now, datetime(2026, 10, 1, tzinfo=UTC))[1] == datetime(
        2026, 9, 27, tzinfo=UTC
    )
