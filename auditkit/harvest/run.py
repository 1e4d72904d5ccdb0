"""`harvest()`: one run of every stage, recorded in `harvest_runs`.

Order (ARCHITECTURE.md, "Harvest order"): the audit-log walk starts in its own thread;
meanwhile account collections, then mailboxes and their mail, then the approval queue;
then the walk is finished and chained; then MultiMail's own counts (usage, webhook
deliveries); then Intercom enrichment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime

import httpx

from auditkit.config import Settings
from auditkit.errors import ConfigError, SourceError
from auditkit.harvest.account import harvest_collection, harvest_pending, harvest_settings
from auditkit.harvest.audit_log import (
    AuditWalk,
    finish_audit_walk,
    start_audit_walk,
    stop_audit_walk,
)
from auditkit.harvest.enrichment import enrich_intercom
from auditkit.harvest.listing import mailbox_keys
from auditkit.harvest.mailboxes import harvest_mailboxes
from auditkit.harvest.population import harvest_population
from auditkit.harvest.recorder import (
    HarvestResult,
    Progress,
    RunRecorder,
    json_safe,
    logger,
    new_run_id,
)
from auditkit.normalise import normalise_mailbox
from auditkit.sources import multimail
from auditkit.sources.client import RetryTransport, build_client, default_transport
from auditkit.sources.preflight import preflight
from auditkit.store import Store


def require_api_key(settings: Settings) -> None:
    """ConfigError unless a MultiMail key is set (callers check before creating a store)."""
    if not settings.multimail_api_key:
        var = settings.multimail_credential
        raise ConfigError(
            f"{var} is not set: export it (or {var}_FILE) with a key that has read and admin scopes"
        )


def harvest(
    settings: Settings,
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    mailbox_ids: Sequence[str] | None = None,
    full_audit_scan: bool = False,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
    intercom_transport: httpx.BaseTransport | None = None,
    check_endpoints: bool = True,
) -> HarvestResult:
    """Pull everything MultiMail (and Intercom, when a token is set) holds into `store`.

    Returns the run summary; outcome is `ok`, or `partial` when some stage failed but the
    rest landed. Raises ConfigError without an API key. Before any record is read, the
    preflight (`sources.preflight`, skipped with `check_endpoints=False` when the caller
    already ran it) raises SourceError naming an API that cannot be reached or refuses its
    key (SourceAuthError for 401/403, here or later); a failed run is recorded as such.
    """
    require_api_key(settings)
    if store.account != settings.account:
        # One account's API into another's rows would be evidence filed under a wrong name.
        raise ConfigError(
            f"harvest of account {settings.account!r} into a store opened for account "
            f"{store.account!r}"
        )
    run_id = new_run_id()
    params = {
        **settings.public_dict(),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "mailbox_ids": sorted(mailbox_ids) if mailbox_ids else None,
        "full_audit_scan": full_audit_scan,
    }
    store.fail_interrupted_runs()
    store.start_run(run_id, "harvest", json_safe(params))
    started = time.perf_counter()
    result = HarvestResult(run_id=run_id)
    books = RunRecorder(result, progress, credential=settings.multimail_credential)
    mm_transport = transport or default_transport(
        concurrency=settings.concurrency, max_retries=settings.max_retries
    )
    ic_transport = (
        intercom_transport
        or transport
        or default_transport(concurrency=settings.concurrency, max_retries=settings.max_retries)
    )
    client = build_client(
        settings.multimail_api_url,
        settings.multimail_api_key,
        timeout=settings.timeout_seconds,
        transport=mm_transport,
    )
    client.event_hooks["request"] = [books.count_request]
    selectors = {m.strip().lower() for m in mailbox_ids} if mailbox_ids else None
    try:
        if check_endpoints:  # recorded as this run's failure, with the cause it names
            preflight(settings, transport, intercom_transport)
        _run_stages(
            settings,
            store,
            books,
            client,
            mm_transport,
            ic_transport,
            since=since,
            until=until,
            mailbox_ids=selectors,
            full_audit_scan=full_audit_scan,
        )
    except BaseException as exc:
        result.outcome = "failed"
        result.duration = time.perf_counter() - started
        message = (
            str(exc)
            if isinstance(exc, SourceError | ConfigError)
            else f"{type(exc).__name__}: {exc}"
        )
        result.errors.append(message)
        try:
            store.finish_run(run_id, "failed", result.to_dict(), error=message[:2000])
        except Exception:  # the store itself may be the problem; the original error matters more
            logger.exception("could not record the failed run %s", run_id)
        raise
    result.outcome = "partial" if result.errors else "ok"
    result.duration = time.perf_counter() - started
    store.finish_run(
        run_id,
        result.outcome,
        result.to_dict(),
        error="; ".join(result.errors)[:2000] if result.errors else None,
    )
    logger.info("harvest %s", result.one_line())
    return result


@contextmanager
def _reads_end_first_on_failure(pool: ThreadPoolExecutor) -> Iterator[None]:
    """Entered inside `with client`: a failed run lets its reads in flight end before their
    client closes. Closed under them, a read that fails is retried on a new connection that
    nothing closes (the transport outlives the client). Ctrl-C is not caught: closing the
    client ends those reads at once."""
    try:
        yield
    except Exception:
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _run_stages(
    settings: Settings,
    store: Store,
    books: RunRecorder,
    client: httpx.Client,
    transport: httpx.BaseTransport,
    intercom_transport: httpx.BaseTransport,
    *,
    since: datetime | None,
    until: datetime | None,
    mailbox_ids: set[str] | None,
    full_audit_scan: bool,
) -> None:
    """Every stage in order, sharing one MultiMail client and one read pool; `transport`
    and `intercom_transport` are asked for their retry counts at the end."""
    pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="harvest")
    walk: AuditWalk | None = None
    try:
        with client, _reads_end_first_on_failure(pool):
            walk = start_audit_walk(client, store, books, full_scan=full_audit_scan)
            harvest_settings(client, store, books)
            mailboxes = harvest_collection(
                client, store, books, multimail.MAILBOXES, "multimail_mailboxes", normalise_mailbox
            )
            # --mailbox takes an id or an address (status shows both).
            selected = [
                m for m in mailboxes if mailbox_ids is None or mailbox_keys(m) & mailbox_ids
            ]
            harvest_mailboxes(
                client, pool, store, books, settings, selected, since=since, until=until
            )
            if mailbox_ids:
                known = set().union(*(mailbox_keys(m) for m in mailboxes))
                for selector in sorted(mailbox_ids - known):
                    books.error(
                        f"mailbox {selector}: no mailbox with that id or address is listed "
                        "by GET /v1/mailboxes"
                    )
            harvest_pending(client, store, books)
            finish_audit_walk(client, store, books, walk)
            harvest_population(client, store, books, since=since, until=until)
            enrich_intercom(store, books, settings, pool, intercom_transport)
    finally:
        if walk is not None:
            stop_audit_walk(walk)
        # On Ctrl-C or an auth failure, queued detail reads are dropped, not waited for.
        pool.shutdown(wait=True, cancel_futures=True)
    books.result.retries = sum(
        t.retries
        for t in {id(t): t for t in (transport, intercom_transport)}.values()
        if isinstance(t, RetryTransport)
    )
