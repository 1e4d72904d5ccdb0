"""Intercom API facts: `GET /me`, `GET /conversations/{id}`, rate-limit headers, row mapping.

Read-only enrichment of the conversation an agent's email came from. Every request pins
`Intercom-Version` so evidence records the API contract it was read under. A 404 is a
fact worth recording (found = false), not an error. No store access here, and the access
token never leaves the Authorization header. A company may have several workspaces (e.g.
US and EU): each gets its own client, host and token (`[intercom.workspaces.<name>]`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from auditkit.config import IntercomWorkspace, Settings
from auditkit.normalise import RecordError, parse_timestamp, provenance
from auditkit.sources.client import build_client, decode_json, raise_for_status

logger = logging.getLogger(__name__)

SOURCE = "intercom"
CREDENTIAL = "INTERCOM_ACCESS_TOKEN"
INBOX_HOSTS = {"us": "app.intercom.com", "eu": "app.eu.intercom.com", "au": "app.au.intercom.com"}
FIN_RESOLVED_STATES = frozenset({"assumed_resolution", "confirmed_resolution"})
MAX_PARTS_RETURNED = 500  # Intercom returns at most the 500 most recent parts
MAX_RATE_LIMIT_WAIT = 60.0


@dataclass(frozen=True)
class IntercomApp:
    """The workspace behind the token: `app.id_code` and its region, from GET /me."""

    app_id: str | None
    region: str


def build_intercom_client(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    workspace: IntercomWorkspace | None = None,
) -> httpx.Client:
    """A client for `workspace`'s host and token, or for the default workspace when None."""
    return build_client(
        workspace.api_url if workspace else settings.intercom_api_url,
        workspace.access_token if workspace else settings.intercom_access_token,
        timeout=settings.timeout_seconds,
        transport=transport,
        extra_headers={"Intercom-Version": settings.intercom_version, "Accept": "application/json"},
        concurrency=settings.concurrency,
        max_retries=settings.max_retries,
    )


def region_from_url(api_url: str) -> str:
    host = httpx.URL(api_url).host
    for region in ("eu", "au"):
        if host == f"api.{region}.intercom.io":
            return region
    return "us"


def fetch_app(
    client: httpx.Client,
    *,
    fallback_app_id: str | None,
    fallback_region: str,
    credential: str = CREDENTIAL,
) -> IntercomApp:
    """The app id and region from GET /me; config values when /me gives none."""
    response = client.get("/me")
    raise_for_status(response, source="Intercom", credential=credential)
    body = decode_json(response)
    app = body.get("app") if isinstance(body, dict) else None
    app = app if isinstance(app, dict) else {}
    app_id = app.get("id_code") or fallback_app_id
    region = str(app.get("region") or fallback_region).lower()
    return IntercomApp(
        app_id=str(app_id) if app_id else None, region=region if region in INBOX_HOSTS else "us"
    )


def inbox_url(app_id: str | None, conversation_id: str, region: str) -> str | None:
    """The inbox deep link: a convenience (needs an Intercom login); the raw JSON is evidence."""
    if not app_id:
        return None
    host = INBOX_HOSTS.get(region, INBOX_HOSTS["us"])
    app, conversation = quote(app_id, safe=""), quote(conversation_id, safe="")
    return f"https://{host}/a/inbox/{app}/inbox/conversation/{conversation}"


class RateLimitGate:
    """Shared by all worker threads: when a response says no calls remain in the window,
    everyone waits until `X-RateLimit-Reset` instead of running into a 429 storm."""

    def __init__(
        self, *, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self.sleep = sleep
        self.clock = clock
        self.waits = 0

    def before_request(self) -> None:
        with self._lock:
            delay = self._resume_at - self.clock()
        if delay > 0:
            self.waits += 1
            logger.info(
                "Intercom rate limit window exhausted: waiting %.2fs for X-RateLimit-Reset", delay
            )
            self.sleep(min(delay, MAX_RATE_LIMIT_WAIT))

    def after_response(self, headers: Mapping[str, str]) -> None:
        remaining, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            if int(remaining) > 0:
                return
            resume_at = float(reset)
        except ValueError:
            return
        with self._lock:
            self._resume_at = max(self._resume_at, resume_at)


def fetch_conversation(
    client: httpx.Client, conversation_id: str, *, gate: RateLimitGate, credential: str = CREDENTIAL
) -> tuple[int, Any]:
    """(HTTP status, parsed body) for one conversation; 404 comes back, not raised."""
    gate.before_request()
    response = client.get(f"/conversations/{quote(conversation_id, safe='')}")
    gate.after_response(response.headers)
    if response.status_code == 404:
        try:
            body = decode_json(response)
        except Exception:  # a 404 body is informational only
            body = None
        return 404, body
    raise_for_status(response, source="Intercom", credential=credential)
    return response.status_code, decode_json(response)


def _nested(body: Mapping[str, Any], *keys: str) -> Any:
    value: Any = body
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _assignee(value: Any) -> str | None:
    # Intercom uses 0 for "unassigned".
    if value in (None, 0, "0", ""):
        return None
    return str(value)


def _resolved_by(body: Mapping[str, Any], parts: list[Any]) -> str | None:
    if _nested(body, "ai_agent", "resolution_state") in FIN_RESOLVED_STATES:
        return "ai_agent"
    if body.get("state") != "closed":
        return None
    closers = [p for p in parts if isinstance(p, Mapping) and p.get("part_type") == "close"]
    if closers:
        author_type = _nested(closers[-1], "author", "type")
        return "teammate" if author_type == "admin" else None
    closed_by = _nested(body, "statistics", "last_closed_by_id")
    bot_ids = {
        str(_nested(p, "author", "id"))
        for p in parts
        if isinstance(p, Mapping) and _nested(p, "author", "type") == "bot"
    }
    return "teammate" if closed_by not in (None, "", 0) and str(closed_by) not in bot_ids else None


def conversation_row(
    conversation_id: str,
    status: int,
    body: Any,
    *,
    app: IntercomApp,
    intercom_version: str,
    fetched_at: datetime,
) -> dict[str, Any]:
    """One `intercom_conversations` row (without run_id / harvested_at)."""
    base = {
        "id": conversation_id,
        "http_status": status,
        "region": app.region,
        "app_id": app.app_id,
        "inbox_url": inbox_url(app.app_id, conversation_id, app.region),
        "intercom_version": intercom_version,
        "fetched_at": fetched_at,
    }
    empty = dict.fromkeys(
        (
            "state",
            "created_at",
            "updated_at",
            "closed_at",
            "contact_id",
            "contact_email",
            "admin_assignee_id",
            "team_assignee_id",
            "ai_agent_participated",
            "ai_resolution_state",
            "resolved_by",
            "tags",
            "part_count",
            "parts_truncated",
        ),
    )
    if status == 404:
        return {
            **base,
            **empty,
            "found": False,
            **provenance(body if body is not None else {"status": 404}),
        }
    if not isinstance(body, Mapping):
        raise RecordError(
            f"conversation {conversation_id} body is {type(body).__name__}, not an object"
        )
    parts_list = _nested(body, "conversation_parts", "conversation_parts")
    parts = parts_list if isinstance(parts_list, list) else []
    total = _nested(body, "conversation_parts", "total_count")
    stat_count = _nested(body, "statistics", "count_conversation_parts")
    part_count = (
        total
        if isinstance(total, int)
        else stat_count
        if isinstance(stat_count, int)
        else len(parts)
    )
    contacts = _nested(body, "contacts", "contacts")
    first_contact = (
        contacts[0]
        if isinstance(contacts, list) and contacts and isinstance(contacts[0], Mapping)
        else {}
    )
    author = _nested(body, "source", "author")
    author = author if isinstance(author, Mapping) else {}
    tag_list = _nested(body, "tags", "tags")
    tags = (
        [
            str(t.get("name"))
            for t in tag_list
            if isinstance(t, Mapping) and t.get("name") is not None
        ]
        if isinstance(tag_list, list)
        else []
    )
    closed_at = (
        _nested(body, "statistics", "last_close_at") if body.get("state") == "closed" else None
    )
    return {
        **base,
        "found": True,
        "state": body.get("state"),
        "created_at": parse_timestamp(body.get("created_at"), "created_at"),
        "updated_at": parse_timestamp(body.get("updated_at"), "updated_at"),
        "closed_at": parse_timestamp(closed_at, "statistics.last_close_at"),
        "contact_id": str(first_contact["id"]) if first_contact.get("id") is not None else None,
        "contact_email": author.get("email")
        if author.get("type") in ("user", "lead", "contact")
        else None,
        "admin_assignee_id": _assignee(body.get("admin_assignee_id")),
        "team_assignee_id": _assignee(body.get("team_assignee_id")),
        "ai_agent_participated": bool(body["ai_agent_participated"])
        if "ai_agent_participated" in body
        else None,
        "ai_resolution_state": _nested(body, "ai_agent", "resolution_state"),
        "resolved_by": _resolved_by(body, parts),
        "tags": tags,
        "part_count": part_count,
        "parts_truncated": bool(
            (isinstance(total, int) and total > len(parts))
            or (isinstance(stat_count, int) and stat_count > MAX_PARTS_RETURNED)
        ),
        **provenance(body),
    }
