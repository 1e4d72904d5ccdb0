"""MultiMail's own counts of the population, for PC-001 (population completeness).

Two sources, read after the mail so the counts describe what the listing could return:

- `GET /v1/usage?from&to&breakdown=daily`: per UTC day and event type, a count. The range
  asked for runs from the day of the oldest stored email (or `--since`) to the end of
  yesterday, never into today (a day still running cannot reconcile), or to the end of the
  last whole day before `--until`: as far as this run's listings reached. Not only to the
  newest stored email's day: mail sent after the last message the listings returned is
  exactly what this must see. Stored as a snapshot: each harvest asks for the whole range
  again.
- `GET /v1/webhook-deliveries` (admin scope): the delivery history, in full (the API has
  no filter), upserted by id; the oldest delivery the listing returned marks where the
  provider's retained history starts.

Each lands with a row in `multimail_source_coverage` saying what was read. A 403 (a key
without the scope) or 404 (an account or API without the endpoint) is not a failure: the
coverage row records the source as unavailable with the answer, and PC-001 says
`not_applicable` with it. Other failures fail the stage as anywhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from auditkit.errors import SourceError
from auditkit.harvest.account import normalise_page, read_collection
from auditkit.harvest.recorder import RunRecorder, logger
from auditkit.normalise import normalise_usage_day, normalise_webhook_delivery
from auditkit.sources import multimail
from auditkit.sources.client import PayloadError, decode_json, raise_for_status
from auditkit.sources.paging import Page, records_at
from auditkit.store import Load, Store, canonical_json, sha256_hex

COVERAGE_TABLE = "multimail_source_coverage"
# Answers that mean "this account or key cannot read the source", not "the harvest broke".
UNAVAILABLE_STATUSES = (403, 404)


def harvest_population(
    client: httpx.Client,
    store: Store,
    books: RunRecorder,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> None:
    """Usage by day, then the webhook delivery history (module docstring)."""
    harvest_usage(client, store, books, since=since, until=until)
    harvest_webhook_deliveries(client, store, books)


def usage_range(
    store: Store, since: datetime | None, now: datetime, until: datetime | None = None
) -> tuple[datetime, datetime]:
    """[from, to): whole UTC days from the oldest stored email's day (or `since`) to the
    start of today, or of `until`'s day when that is earlier: the last whole day this run's
    listings covered. It used to stop after the newest stored email's day, which hid mail
    sent after the last message the listings returned."""
    oldest = store.query("SELECT min(created_at) FROM multimail_emails")[0][0]
    today = _day_start(now)
    start = _day_start(min(t for t in (oldest, since, today) if t is not None))
    end = today if until is None else min(today, _day_start(until))
    return start, max(start, end)


def harvest_usage(
    client: httpx.Client,
    store: Store,
    books: RunRecorder,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> None:
    endpoint = multimail.USAGE
    start, end = usage_range(store, since, books.harvested_at, until)
    if start >= end:
        logger.info("usage: no complete day of stored mail to reconcile; not asked")
        return
    try:
        response = client.get(endpoint.path, params=multimail.usage_params(start, end))
        raise_for_status(response, source="MultiMail", credential=books.credential)
        records = records_at(
            decode_json(response), endpoint.paginator.record_paths, where=endpoint.path
        )
    except PayloadError as exc:
        books.quarantine(endpoint.path, str(exc), exc.raw_text or "")
        with books.quarantined() as quarantine:
            store.commit_batch(quarantine=quarantine)
        books.stage_failed(endpoint.resource, exc)
        return
    except SourceError as exc:
        _unavailable_or_raise(store, books, endpoint, exc)
        return
    page = Page(records=records, url=endpoint.path, status=response.status_code, cursor=None)
    rows = _unique_days(books, normalise_page(books, page, normalise_usage_day, endpoint.path))
    coverage = _coverage_row(books, endpoint.resource, True, None, None, start, end)
    with books.quarantined() as quarantine:
        store.commit_batch(
            "multimail_usage_daily",
            rows,
            replace_all=True,
            also=[Load(COVERAGE_TABLE, [coverage])],
            quarantine=quarantine,
            cursors=[books.cursor(endpoint.resource, None)],
        )
    books.count(endpoint.resource, len(rows))
    books.finish(endpoint.resource, len(rows))


def _unique_days(books: RunRecorder, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One count per (day, event type): a repeated pair is quarantined, never summed or
    silently overwritten (which of the two is right cannot be told)."""
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row["id"] in seen:
            books.quarantine(
                multimail.USAGE.path,
                f"usage item repeats day and event type {row['id']}",
                row["raw"],
                row["id"],
            )
            continue
        seen.add(row["id"])
        unique.append(row)
    return unique


def harvest_webhook_deliveries(client: httpx.Client, store: Store, books: RunRecorder) -> None:
    endpoint = multimail.WEBHOOK_DELIVERIES
    try:
        rows = read_collection(client, books, endpoint, normalise_webhook_delivery)
    except SourceError as exc:
        if exc.http_status in UNAVAILABLE_STATUSES:
            _unavailable_or_raise(store, books, endpoint, exc)
            return
        with books.quarantined() as quarantine:
            store.commit_batch(quarantine=quarantine)
        books.stage_failed(endpoint.resource, exc)
        return
    # From the oldest delivery the provider still holds; up to this run (its harvested_at:
    # kept out of `raw`, so two harvests of the same history store the same content).
    dated = [r["created_at"] for r in rows if r["created_at"] is not None]
    coverage = _coverage_row(
        books, endpoint.resource, True, None, None, min(dated, default=None), None
    )
    with books.quarantined() as quarantine:
        store.commit_batch(
            "multimail_webhook_deliveries",
            rows,
            also=[Load(COVERAGE_TABLE, [coverage])],
            quarantine=quarantine,
            cursors=[books.cursor(endpoint.resource, None)],
        )
    books.count(endpoint.resource, len(rows))
    books.finish(endpoint.resource, len(rows))


def _unavailable_or_raise(
    store: Store, books: RunRecorder, endpoint: multimail.Endpoint, exc: SourceError
) -> None:
    """403/404: record the source as unavailable (the reason is the error's one line, which
    never quotes a credential). Anything else fails the stage as usual."""
    if exc.http_status not in UNAVAILABLE_STATUSES:
        books.stage_failed(endpoint.resource, exc)
        return
    logger.warning("%s unavailable: %s", endpoint.resource, exc)
    books.skip(f"{endpoint.resource}_unavailable")
    row = _coverage_row(books, endpoint.resource, False, exc.http_status, str(exc), None, None)
    with books.quarantined() as quarantine:
        store.commit_batch(COVERAGE_TABLE, [row], quarantine=quarantine)


def _coverage_row(
    books: RunRecorder,
    resource: str,
    available: bool,
    http_status: int | None,
    reason: str | None,
    covered_from: datetime | None,
    covered_to: datetime | None,
) -> dict[str, Any]:
    facts = {
        "id": resource,
        "available": available,
        "http_status": http_status,
        "reason": reason,
        "covered_from": _iso(covered_from),
        "covered_to": _iso(covered_to),
    }
    raw = canonical_json(facts)
    return books.stamp(
        {
            **facts,
            "covered_from": covered_from,
            "covered_to": covered_to,
            "raw": raw,
            "raw_sha256": sha256_hex(raw),
        }
    )


def _day_start(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return datetime(ts.year, ts.month, ts.day, tzinfo=UTC)


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
