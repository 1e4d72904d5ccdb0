"""Explicit paginators and the one page loop every list endpoint goes through.

Each endpoint states where its records are and how the next page is asked for; nothing is
guessed from the response. The loop de-duplicates records by primary key across nearby pages
(the email cursor is a timestamp, so page boundaries can repeat a record) and refuses to
spin when a cursor does not advance.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from auditkit.errors import SourceError
from auditkit.sources.client import PayloadError, decode_json, raise_for_status, redact_url

logger = logging.getLogger(__name__)

# How many pages' records the loop remembers to de-duplicate by: a timestamp cursor repeats
# the records at a page boundary, so the pages just before matter. Bounded, so paging
# millions of records holds a few pages, not every id of the run. A repeat further apart is
# still de-duplicated by key where the records land (Store.upsert; the audit log's staged
# entries, which also report copies that differ).
DEDUP_WINDOW_PAGES = 4


class StuckCursorError(SourceError):
    """The API handed back a cursor we already followed: paging would never end."""


def records_at(body: Any, record_paths: tuple[str, ...], *, where: str) -> list[Any]:
    """The record list under the first of `record_paths` present in `body`."""
    if not isinstance(body, dict):
        raise PayloadError(f"{where}: expected a JSON object, got {type(body).__name__}")
    for key in record_paths:
        if key in body:
            records = body[key]
            if not isinstance(records, list):
                raise PayloadError(f"{where}: {key!r} is {type(records).__name__}, not a list")
            return records
    raise PayloadError(f"{where}: response has none of the keys {', '.join(record_paths)}")


class Paginator(Protocol):
    @property
    def record_paths(self) -> tuple[str, ...]: ...

    def params_for(self, cursor: str | None) -> dict[str, str]: ...

    def next_cursor(self, body: Mapping[str, Any]) -> str | None: ...


@dataclass(frozen=True)
class SinglePage:
    """The whole collection in one response (mailboxes, keys, domains, …)."""

    record_paths: tuple[str, ...]

    def params_for(self, cursor: str | None) -> dict[str, str]:
        return {}

    def next_cursor(self, body: Mapping[str, Any]) -> str | None:
        return None

    def __str__(self) -> str:
        return f"SinglePage({'|'.join(self.record_paths)})"


@dataclass(frozen=True)
class CursorPaginator:
    """`?cursor=` in, `.cursor` out; a null or missing cursor ends the collection."""

    record_paths: tuple[str, ...]
    cursor_field: str = "cursor"
    cursor_param: str = "cursor"

    def params_for(self, cursor: str | None) -> dict[str, str]:
        return {} if cursor is None else {self.cursor_param: cursor}

    def next_cursor(self, body: Mapping[str, Any]) -> str | None:
        value = body.get(self.cursor_field)
        if value is None or value == "":
            return None
        return str(value)

    def __str__(self) -> str:
        return f"CursorPaginator({'|'.join(self.record_paths)}, cursor={self.cursor_field})"


@dataclass(frozen=True)
class Page:
    """One response's records plus where they came from (for provenance and logs)."""

    records: list[Any]
    url: str  # redacted
    status: int
    cursor: str | None  # the cursor that asks for the next page; None at the end
    duplicates: int = 0
    # Repeats (counted in `duplicates`, left out of `records`) whose content differs from
    # the copy kept: the source answered two versions of one record. Consumers of records
    # that must not change (the audit log) report them.
    differing_repeats: list[Any] = field(default_factory=list)
    number: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def paginate(
    client: httpx.Client,
    path: str,
    paginator: Paginator,
    *,
    params: Mapping[str, str] | None = None,
    pk: str = "id",
    source: str = "MultiMail",
    credential: str = "MULTIMAIL_API_KEY",
    on_bad_page: Callable[[PayloadError], None] | None = None,
    bad_page_retries: int = 2,
) -> Generator[Page, None, None]:
    """Yield every page of `path` in order, records de-duplicated by `pk` across pages (a
    repeat that differs from the copy kept is in `Page.differing_repeats`).

    Stops on a null cursor or an empty page. A body that is not JSON (or has no record list)
    is handed to `on_bad_page` (the harvester quarantines it) and the same page is asked for
    again up to `bad_page_retries` times before PayloadError ends the loop.
    """
    recent: deque[dict[Any, Any]] = deque(maxlen=DEDUP_WINDOW_PAGES)  # id -> copy kept
    followed: set[str] = set()
    cursor: str | None = None
    number = 0
    while True:
        query = {**(params or {}), **paginator.params_for(cursor)}
        bad_pages = 0
        while True:
            response = client.get(path, params=query)
            raise_for_status(response, source=source, credential=credential)
            try:
                body = decode_json(response)
                records = records_at(body, paginator.record_paths, where=path)
                break
            except PayloadError as exc:
                exc.raw_text = exc.raw_text or response.text
                exc.url = exc.url or redact_url(response.request.url)
                if on_bad_page is not None:
                    on_bad_page(exc)
                bad_pages += 1
                if bad_pages > bad_page_retries:
                    raise
                logger.warning(
                    "%s; asking for the same page again (%d of %d)",
                    exc,
                    bad_pages,
                    bad_page_retries,
                )
        number += 1
        fresh: list[Any] = []
        duplicates = 0
        differing: list[Any] = []
        kept: dict[Any, Any] = {}
        for record in records:
            rid = record.get(pk) if isinstance(record, dict) else None
            if isinstance(rid, (str, int)) and not isinstance(rid, bool):
                first = next((ids[rid] for ids in (kept, *recent) if rid in ids), None)
                if first is not None:
                    duplicates += 1
                    if record != first:
                        differing.append(record)
                    continue
                kept[rid] = record
            fresh.append(
                record
            )  # records without a usable id go on: the normaliser quarantines them
        recent.append(kept)
        next_cursor = paginator.next_cursor(body) if records else None
        url = redact_url(response.request.url)
        logger.info(
            "GET %s -> %d: %d records (%d duplicate, %d of them differing)",
            url,
            response.status_code,
            len(fresh),
            duplicates,
            len(differing),
        )
        yield Page(
            records=fresh,
            url=url,
            status=response.status_code,
            cursor=next_cursor,
            duplicates=duplicates,
            differing_repeats=differing,
            number=number,
        )
        if next_cursor is None:
            return
        if next_cursor == cursor or next_cursor in followed:
            raise StuckCursorError(
                f"{path}: the API returned cursor {next_cursor!r} again after page {number}; "
                "stopping instead of looping forever"
            )
        if cursor is not None:
            followed.add(cursor)
        cursor = next_cursor
