"""MultiMail API facts: which path holds which records, how each pages, and its primary key.

Per-API knowledge only (from the reference notes on the /v1 spec and its clients); no
store access and no normalisation. Where clients disagree on a record key, every known key
is listed in order of trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from auditkit.sources.paging import CursorPaginator, Paginator, SinglePage

SOURCE = "multimail"
CREDENTIAL = "MULTIMAIL_API_KEY"
EMAIL_PAGE_LIMIT = 100
AUDIT_PAGE_LIMIT = 100


@dataclass(frozen=True)
class Endpoint:
    """One list or object endpoint: its path, where its records are, how it pages."""

    resource: str
    path: str
    paginator: Paginator
    pk: str = "id"
    params: Mapping[str, str] | None = None
    single_object: bool = False  # the body is the record itself (GET /v1/account)


ACCOUNT = Endpoint("account", "/v1/account", SinglePage(()), single_object=True)
API_KEYS = Endpoint("api_keys", "/v1/api-keys", SinglePage(("api_keys",)))
DOMAINS = Endpoint("domains", "/v1/domains", SinglePage(("domains",)))
# The spec says `subscriptions`; the Python SDK reads `webhooks`. Any `signing_secret`
# is dropped by `normalise_webhook` before a row (or its raw JSON) exists.
WEBHOOKS = Endpoint("webhooks", "/v1/webhooks", SinglePage(("subscriptions", "webhooks")))
SUPPRESSIONS = Endpoint("suppressions", "/v1/suppression", SinglePage(("suppressions",)))
MAILBOXES = Endpoint("mailboxes", "/v1/mailboxes", SinglePage(("mailboxes",)))
# The spec says `emails`; the Python SDK reads `pending`.
PENDING = Endpoint("pending", "/v1/oversight/pending", SinglePage(("emails", "pending")))
# Population sources (PC-001). Usage is asked for one range at a time (`usage_params`); the
# delivery history pages by cursor like the audit log.
USAGE = Endpoint("usage_daily", "/v1/usage", SinglePage(("data",)), pk="_none")
WEBHOOK_DELIVERIES = Endpoint(
    "webhook_deliveries",
    "/v1/webhook-deliveries",
    CursorPaginator(("deliveries",)),
    params={"limit": str(AUDIT_PAGE_LIMIT)},
)
AUDIT_LOG = Endpoint(
    "audit_log",
    "/v1/audit-log",
    CursorPaginator(("entries",)),
    params={"limit": str(AUDIT_PAGE_LIMIT)},
)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_params(start: datetime, end: datetime) -> dict[str, str]:
    """`GET /v1/usage?from&to&breakdown=daily`: epoch milliseconds (§4.13), `to` the last
    millisecond wanted (whether the API reads it as inclusive is not documented)."""
    return {
        "from": str(int(start.timestamp() * 1000)),
        "to": str(int(end.timestamp() * 1000) - 1),
        "breakdown": "daily",
    }


def email_list_endpoint(
    mailbox_id: str,
    direction: str,
    *,
    date_after: datetime | None = None,
    date_before: datetime | None = None,
) -> Endpoint:
    """`GET /v1/mailboxes/{id}/emails`: newest first, 100 a page, by `cursor`."""
    params = {"direction": direction, "limit": str(EMAIL_PAGE_LIMIT)}
    if date_after is not None:
        params["date_after"] = _iso(date_after)
    if date_before is not None:
        params["date_before"] = _iso(date_before)
    return Endpoint(
        f"emails:{direction}",
        f"/v1/mailboxes/{quote(mailbox_id, safe='')}/emails",
        CursorPaginator(("emails",)),
        params=params,
    )


def email_detail_path(mailbox_id: str, email_id: str) -> str:
    """`GET /v1/mailboxes/{id}/emails/{emailId}` (read_email). Marks unread inbound mail read."""
    return f"/v1/mailboxes/{quote(mailbox_id, safe='')}/emails/{quote(email_id, safe='')}"
