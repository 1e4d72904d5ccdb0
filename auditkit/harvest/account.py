"""Account-level collections: the account, API keys, domains, webhooks, suppressions,
mailboxes and the approval queue. Each is small and lands in one transaction with its
cursor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from auditkit.errors import SourceAuthError, SourceError
from auditkit.harvest.recorder import RunRecorder, logger
from auditkit.normalise import (
    RecordError,
    normalise_account,
    normalise_api_key,
    normalise_domain,
    normalise_pending,
    normalise_suppression,
    normalise_webhook,
)
from auditkit.sources import multimail
from auditkit.sources.client import PayloadError, decode_json, raise_for_status
from auditkit.sources.paging import Page, paginate
from auditkit.store import Store

Normaliser = Callable[[Any], dict[str, Any]]


def harvest_settings(client: httpx.Client, store: Store, books: RunRecorder) -> None:
    """The account, then API keys, domains, webhooks and the suppression list."""
    harvest_account(client, store, books)
    harvest_collection(
        client, store, books, multimail.API_KEYS, "multimail_api_keys", normalise_api_key
    )
    harvest_collection(
        client, store, books, multimail.DOMAINS, "multimail_domains", normalise_domain
    )
    harvest_collection(
        client, store, books, multimail.WEBHOOKS, "multimail_webhooks", normalise_webhook
    )
    harvest_collection(
        client,
        store,
        books,
        multimail.SUPPRESSIONS,
        "multimail_suppressions",
        normalise_suppression,
    )


def harvest_account(client: httpx.Client, store: Store, books: RunRecorder) -> None:
    try:
        response = client.get(multimail.ACCOUNT.path)
        raise_for_status(response, source="MultiMail", credential=books.credential)
        body = decode_json(response)
        try:
            row = books.stamp(normalise_account(body))
            store.commit_batch("multimail_account", [row], cursors=[books.cursor("account", None)])
            books.count("account", 1)
        except RecordError as exc:
            books.quarantine(multimail.ACCOUNT.path, str(exc), body)
            with books.quarantined() as quarantine:
                store.commit_batch(quarantine=quarantine)
        books.finish("account", books.result.counts.get("account", 0))
    except PayloadError as exc:
        books.quarantine(multimail.ACCOUNT.path, str(exc), exc.raw_text)
        with books.quarantined() as quarantine:
            store.commit_batch(quarantine=quarantine)
        books.stage_failed("account", exc)
    except SourceError as exc:
        books.stage_failed("account", exc)


def read_collection(
    client: httpx.Client, books: RunRecorder, endpoint: multimail.Endpoint, normaliser: Normaliser
) -> list[dict[str, Any]]:
    """Every page of a small collection, normalised; a bad record goes to the run's
    quarantine, a bad page to its books. Raises SourceError: the caller decides what a
    failed collection means (a failed stage, or an unavailable source)."""
    rows: list[dict[str, Any]] = []
    for page in paginate(
        client,
        endpoint.path,
        endpoint.paginator,
        params=endpoint.params,
        pk=endpoint.pk,
        on_bad_page=books.on_bad_page,
        credential=books.credential,
    ):
        rows.extend(normalise_page(books, page, normaliser, endpoint.path))
    return rows


def harvest_collection(
    client: httpx.Client,
    store: Store,
    books: RunRecorder,
    endpoint: multimail.Endpoint,
    table: str,
    normaliser: Normaliser,
    *,
    replace_all: bool = False,
) -> list[dict[str, Any]]:
    """A small collection in one transaction; `replace_all` for snapshots (pending queue)."""
    try:
        rows = read_collection(client, books, endpoint, normaliser)
    except SourceError as exc:
        books.stage_failed(endpoint.resource, exc)
        with books.quarantined() as quarantine:
            store.commit_batch(quarantine=quarantine)
        return []
    with books.quarantined() as quarantine:
        store.commit_batch(
            table,
            rows,
            replace_all=replace_all,
            quarantine=quarantine,
            cursors=[books.cursor(endpoint.resource, None)],
        )
    books.count(endpoint.resource, len(rows))
    books.finish(endpoint.resource, len(rows))
    return rows


def harvest_pending(client: httpx.Client, store: Store, books: RunRecorder) -> None:
    """A snapshot of the approval queue, replaced as a whole (one transaction).

    The queue needs the `oversight` scope, which a harvester key should not hold (it can
    approve mail); pending mail is in `multimail_emails` by status anyway. So a 403 here
    is a counted skip with a warning, not a failed run.
    """
    try:
        harvest_collection(
            client,
            store,
            books,
            multimail.PENDING,
            "multimail_pending",
            normalise_pending,
            replace_all=True,
        )
    except SourceAuthError as exc:
        logger.warning("approval queue skipped: %s", exc)
        books.result.skipped["pending_no_oversight_scope"] = 1


def normalise_page(
    books: RunRecorder, page: Page, normaliser: Normaliser, endpoint: str
) -> list[dict[str, Any]]:
    """The page's records as stamped rows; a record the normaliser refuses is quarantined."""
    rows = []
    for record in page.records:
        try:
            rows.append(books.stamp(normaliser(record)))
        except RecordError as exc:
            rid = (
                record.get("id")
                if isinstance(record, dict) and isinstance(record.get("id"), str)
                else None
            )
            books.quarantine(endpoint, str(exc), record, rid)
    return rows
