"""Mailbox listings: what each listing asks for this run, and the producer thread that
pages every mailbox's outbound and inbound lists ahead of the detail reads."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

import httpx

from auditkit.errors import SourceError
from auditkit.harvest.recorder import RunRecorder
from auditkit.sources import multimail
from auditkit.sources.paging import Page, paginate
from auditkit.store import Store, canonical_json
from auditkit.store.books import listing_watermark
from auditkit.store.harvest_state import StoredEmail, outbound_not_final_before

# Page.extra flag on the pages of stored ids the list producer adds (no list cursor of theirs).
STORED_NOT_FINAL = "stored_not_final"
DIRECTIONS = ("outbound", "inbound")


@dataclass(frozen=True)
class ListingPlan:
    """What one mailbox listing asks for this run.

    After one complete, unfiltered listing, later runs list only from the lookback window
    on (everything older is stored), and read by id the stored outbound mail that is not
    final yet and is older than that: the list would no longer show it.
    """

    date_after: datetime | None
    date_before: datetime | None
    advances_watermark: bool
    stored_not_final: tuple[str, ...] = ()


def plan_listing(
    store: Store,
    mailbox_id: str,
    direction: str,
    *,
    since: datetime | None,
    until: datetime | None,
    lookback_days: int,
    window_start: datetime | None,
) -> ListingPlan:
    if since is not None or until is not None:
        # A filtered listing says nothing about mail outside the filter.
        return ListingPlan(since, until, advances_watermark=False)
    mark = listing_watermark(store, mailbox_id, direction)
    if mark is None:
        return ListingPlan(None, None, advances_watermark=True)
    # The lookback window is measured from the newest stored mail, as for re-reads; the
    # watermark term covers a server clock running ahead of ours.
    floor = mark - timedelta(days=lookback_days)
    if window_start is not None:
        floor = min(floor, window_start)
    stale: tuple[str, ...] = ()
    if direction == "outbound":
        stale = outbound_not_final_before(store, mailbox_id, floor)
    return ListingPlan(floor, None, advances_watermark=True, stored_not_final=stale)


class Listed(NamedTuple):
    """One message from the list producer: a page, the end of a listing (page None), or a
    listing failure (error set). key None marks the end of all listings."""

    key: tuple[str, str] | None
    page: Page | None
    error: BaseException | None
    stored: Mapping[str, StoredEmail] = MappingProxyType({})  # what is stored of the page


# What the store holds of a listed page's emails: (mailbox id, page) -> id -> StoredEmail.
StoredLookup = Callable[[str, Page], Mapping[str, StoredEmail]]


def list_mailboxes(
    client: httpx.Client,
    books: RunRecorder,
    mailboxes: Sequence[Mapping[str, Any]],
    plans: Mapping[tuple[str, str], ListingPlan],
    out: queue.Queue[Listed],
    stop: threading.Event,
    stored: StoredLookup,
) -> None:
    """Producer thread: walk every mailbox's outbound then inbound list, page by page.

    Paging runs ahead of the detail reads (bounded by the queue), so list latency never
    leaves the worker pool idle, not even between mailboxes; so does asking the store
    what it holds of each page (`stored`). Stored mail that is not final and older than
    the listing's window follows as pages of ids.
    """
    try:
        for mailbox in mailboxes:
            for direction in DIRECTIONS:
                key = (mailbox["id"], direction)
                plan = plans[key]
                endpoint = multimail.email_list_endpoint(
                    mailbox["id"],
                    direction,
                    date_after=plan.date_after,
                    date_before=plan.date_before,
                )
                try:
                    for page in paginate(
                        client,
                        endpoint.path,
                        endpoint.paginator,
                        params=endpoint.params,
                        on_bad_page=books.on_bad_page,
                        credential=books.credential,
                    ):
                        if stop.is_set():
                            return
                        out.put(Listed(key, page, None, stored(mailbox["id"], page)))
                except SourceError as exc:
                    out.put(Listed(key, None, exc))
                    continue
                ids = plan.stored_not_final
                for start in range(0, len(ids), multimail.EMAIL_PAGE_LIMIT):
                    if stop.is_set():
                        return
                    chunk = ids[start : start + multimail.EMAIL_PAGE_LIMIT]
                    page = stored_not_final_page(endpoint.path, chunk)
                    out.put(Listed(key, page, None, stored(mailbox["id"], page)))
                out.put(Listed(key, None, None))
    except BaseException as exc:  # a bug here must surface in the main thread, not vanish
        out.put(Listed(("", ""), None, exc))
    finally:
        out.put(Listed(None, None, None))


def stored_not_final_page(list_path: str, email_ids: Sequence[str]) -> Page:
    """A page of stored email ids to read again, in the shape the list producer sends."""
    return Page(
        records=[{"id": email_id} for email_id in email_ids],
        url=f"{list_path} (stored, not final)",
        status=200,
        cursor=None,
        number=0,
        extra={STORED_NOT_FINAL: True},
    )


def list_cursor(page: Page) -> str:
    """Where a mailbox listing stands after this page (provenance: each run lists afresh)."""
    return canonical_json(
        {"complete": page.cursor is None, "next": page.cursor, "page": page.number}
    )


def mailbox_keys(mailbox: Mapping[str, Any]) -> set[str]:
    """What `--mailbox` may name a mailbox by: its id or its address, lower case."""
    return {str(v).strip().lower() for v in (mailbox.get("id"), mailbox.get("address")) if v}
