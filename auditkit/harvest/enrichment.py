"""Intercom enrichment: the conversations linked from stored mail, each read from its own
workspace's host with its token, in batches through the read pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial

import httpx

from auditkit.config import IntercomWorkspace, Settings
from auditkit.errors import SourceAuthError, SourceError
from auditkit.harvest.recorder import RunRecorder, logger
from auditkit.normalise import RecordError
from auditkit.sources import intercom
from auditkit.sources.client import PayloadError
from auditkit.store import Store
from auditkit.store.harvest_state import conversations_to_enrich

INTERCOM_BATCH = 500


def enrich_intercom(
    store: Store,
    books: RunRecorder,
    settings: Settings,
    pool: ThreadPoolExecutor,
    transport: httpx.BaseTransport,
) -> None:
    """Fetch linked conversations, each from its own workspace's host with its token.

    Conversation ids are the table's key: a clash of ids across workspaces is not handled
    (Intercom ids are unique per workspace only; the later workspace's row would win).
    """
    by_workspace = conversations_to_enrich(store)
    targets: list[tuple[IntercomWorkspace | None, list[str]]] = []
    no_token = 0
    skipped = books.result.skipped
    if not settings.intercom_access_token:
        # Recorded even when nothing is linked: the summary says enrichment could not run.
        skipped["intercom_no_token"] = 0
    for name, wanted in by_workspace.items():
        workspace = settings.intercom_workspace(name) if name else None
        if name and workspace is None:
            logger.warning(
                "Intercom enrichment skipped for %d conversations of workspace %r: "
                "it has no [intercom.workspaces.%s] table in the config",
                len(wanted),
                name,
                name,
            )
            no_token += len(wanted)
        elif not (workspace.access_token if workspace else settings.intercom_access_token):
            logger.warning(
                "Intercom enrichment skipped for %d conversations%s: %s is not set",
                len(wanted),
                f" of workspace {name!r}" if workspace else "",
                workspace.credential if workspace else intercom.CREDENTIAL,
            )
            no_token += len(wanted)
        else:
            targets.append((workspace, wanted))
    if no_token or "intercom_no_token" in skipped:
        skipped["intercom_no_token"] = no_token
    if not targets:
        if settings.intercom_access_token:
            books.finish("intercom", 0)
        return
    books.start("intercom", sum(len(wanted) for _, wanted in targets))
    fetched = sum(
        _enrich_workspace(store, books, settings, pool, transport, workspace, wanted)
        for workspace, wanted in targets
    )
    books.count("intercom_conversations", fetched)
    books.finish("intercom", fetched)


def _enrich_workspace(
    store: Store,
    books: RunRecorder,
    settings: Settings,
    pool: ThreadPoolExecutor,
    transport: httpx.BaseTransport,
    workspace: IntercomWorkspace | None,
    wanted: list[str],
) -> int:
    """One workspace's conversations through its own client; returns how many were stored."""
    credential = workspace.credential if workspace else intercom.CREDENTIAL
    fallback_app_id = workspace.app_id if workspace else settings.intercom_app_id
    default_region = intercom.region_from_url(settings.intercom_api_url)
    fallback_region = workspace.region if workspace else default_region
    client = intercom.build_intercom_client(settings, transport=transport, workspace=workspace)
    client.event_hooks["request"] = [books.count_intercom_request]
    gate = intercom.RateLimitGate()  # rate limits are per workspace
    fetched = 0
    with client:
        try:
            app = intercom.fetch_app(
                client,
                fallback_app_id=fallback_app_id,
                fallback_region=fallback_region,
                credential=credential,
            )
        except SourceError as exc:
            books.stage_failed("intercom" + (f" ({workspace.name})" if workspace else ""), exc)
            return 0
        for start in range(0, len(wanted), INTERCOM_BATCH):
            batch = wanted[start : start + INTERCOM_BATCH]
            fetch = partial(intercom.fetch_conversation, client, gate=gate, credential=credential)
            futures = [(cid, pool.submit(fetch, cid)) for cid in batch]
            rows = []
            for cid, fut in futures:
                endpoint = f"/conversations/{cid}"
                try:
                    status, body = fut.result()
                except SourceAuthError:
                    raise
                except PayloadError as exc:
                    books.quarantine(endpoint, str(exc), exc.raw_text, cid)
                    continue
                except SourceError as exc:
                    books.error(f"intercom conversation {cid}: {exc}")
                    continue
                try:
                    row = intercom.conversation_row(
                        cid,
                        status,
                        body,
                        app=app,
                        intercom_version=settings.intercom_version,
                        fetched_at=datetime.now(UTC),
                    )
                except RecordError as exc:
                    books.quarantine(endpoint, str(exc), body, cid)
                    continue
                rows.append(books.stamp(row))
            with books.quarantined(intercom.SOURCE) as quarantine:
                store.commit_batch(
                    "intercom_conversations",
                    rows,
                    quarantine=quarantine,
                    cursors=[books.cursor("conversations", batch[-1], source=intercom.SOURCE)],
                )
            fetched += len(rows)
            books.advance("intercom", len(batch))
    return fetched
