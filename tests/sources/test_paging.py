"""Paginators and the page loop: cursor following, de-duplication, stuck cursors, bad pages."""

from __future__ import annotations

import json

import httpx
import pytest

from auditkit.sources.client import PayloadError
from auditkit.sources.paging import CursorPaginator, SinglePage, StuckCursorError, paginate


def paged_client(pages: dict[str | None, object]) -> tuple[httpx.Client, list[httpx.Request]]:
    """Serve `pages[cursor]` (a body, or raw text when a str) for GET /list?cursor=…"""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = pages[request.url.params.get("cursor")]
        if isinstance(body, str):
            return httpx.Response(200, text=body)
        return httpx.Response(200, json=body)

    return httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(handler)), seen


def test_cursor_pages_are_followed_until_null() -> None:
    client, seen = paged_client(
        {
            None: {"emails": [{"id": "a"}, {"id": "b"}], "cursor": "c1"},
            "c1": {"emails": [{"id": "c"}], "cursor": "c2"},
            "c2": {"emails": [{"id": "d"}], "cursor": None},
        }
    )
    pages = list(paginate(client, "/list", CursorPaginator(("emails",)), params={"limit": "2"}))
    assert [[r["id"] for r in p.records] for p in pages] == [["a", "b"], ["c"], ["d"]]
    assert [p.cursor for p in pages] == ["c1", "c2", None]
    assert all(r.url.params["limit"] == "2" for r in seen)
    assert [r.url.params.get("cursor") for r in seen] == [None, "c1", "c2"]
    assert pages[0].status == 200 and "/list" in pages[0].url


def test_empty_page_ends_even_with_a_cursor() -> None:
    client, seen = paged_client(
        {
            None: {"entries": [{"id": "a"}], "cursor": "c1"},
            "c1": {"entries": [], "cursor": "c2"},
        }
    )
    pages = list(paginate(client, "/list", CursorPaginator(("entries",))))
    assert len(pages) == 2 and len(seen) == 2


def test_duplicate_ids_across_pages_are_dropped_and_counted() -> None:
    client, _ = paged_client(
        {
            None: {"emails": [{"id": "a"}, {"id": "b"}], "cursor": "c1"},
            "c1": {"emails": [{"id": "b"}, {"id": "c"}], "cursor": None},
        }
    )
    pages = list(paginate(client, "/list", CursorPaginator(("emails",))))
    assert [r["id"] for p in pages for r in p.records] == ["a", "b", "c"]
    assert pages[1].duplicates == 1


def test_a_repeat_that_differs_from_the_copy_kept_is_reported() -> None:
    client, _ = paged_client(
        {
            None: {"emails": [{"id": "a", "v": 1}, {"id": "b", "v": 1}], "cursor": "c1"},
            "c1": {"emails": [{"id": "b", "v": 1}, {"id": "a", "v": 2}], "cursor": "c2"},
            "c2": {"emails": [{"id": "c", "v": 1}, {"id": "c", "v": 3}], "cursor": None},
        }
    )
    pages = list(paginate(client, "/list", CursorPaginator(("emails",))))
    assert [r for p in pages for r in p.records] == [
        {"id": "a", "v": 1},
        {"id": "b", "v": 1},
        {"id": "c", "v": 1},
    ]
    assert [p.duplicates for p in pages] == [0, 2, 1]
    assert [p.differing_repeats for p in pages] == [
        [],
        [{"id": "a", "v": 2}],
        [{"id": "c", "v": 3}],
    ]


def test_records_without_id_pass_through_for_quarantine() -> None:
    client, _ = paged_client(
        {None: {"emails": [{"subject": "no id"}, "not an object"], "cursor": None}}
    )
    (page,) = paginate(client, "/list", CursorPaginator(("emails",)))
    assert page.records == [{"subject": "no id"}, "not an object"]


def test_stuck_cursor_raises() -> None:
    client, seen = paged_client(
        {
            None: {"emails": [{"id": "a"}], "cursor": "c1"},
            "c1": {"emails": [{"id": "b"}], "cursor": "c1"},
        }
    )
    with pytest.raises(StuckCursorError, match="c1"):
        list(paginate(client, "/list", CursorPaginator(("emails",))))
    assert len(seen) == 2


def test_cursor_cycle_raises() -> None:
    client, _ = paged_client(
        {
            None: {"emails": [{"id": "a"}], "cursor": "c1"},
            "c1": {"emails": [{"id": "b"}], "cursor": "c2"},
            "c2": {"emails": [{"id": "c"}], "cursor": "c1"},
        }
    )
    with pytest.raises(StuckCursorError):
        list(paginate(client, "/list", CursorPaginator(("emails",))))


def test_single_page_accepts_alternative_record_keys() -> None:
    client, seen = paged_client({None: {"pending": [{"id": "p1"}]}})
    (page,) = paginate(client, "/v1/oversight/pending", SinglePage(("emails", "pending")))
    assert page.records == [{"id": "p1"}] and page.cursor is None and len(seen) == 1


def test_bad_page_is_reported_then_asked_for_again() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(200, text='{"emails": [{"id": "a"')  # truncated
        return httpx.Response(200, json={"emails": [{"id": "a"}], "cursor": None})

    client = httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(handler))
    bad: list[PayloadError] = []
    pages = list(paginate(client, "/list", CursorPaginator(("emails",)), on_bad_page=bad.append))
    assert [r["id"] for r in pages[0].records] == ["a"]
    assert len(bad) == 1 and bad[0].raw_text == '{"emails": [{"id": "a"'


def test_persistently_bad_page_raises_after_retries() -> None:
    client, seen = paged_client({None: json.dumps({"unexpected": []})})
    bad: list[PayloadError] = []
    with pytest.raises(PayloadError, match="none of the keys emails"):
        list(
            paginate(
                client,
                "/list",
                CursorPaginator(("emails",)),
                on_bad_page=bad.append,
                bad_page_retries=2,
            )
        )
    assert len(seen) == 3 and len(bad) == 3
