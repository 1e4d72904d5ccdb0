"""The MultiMail routes of the sandbox (`/v1/...`): fixed objects, email pages with the
real API's timestamp cursors, email detail, pending mail, the audit log, daily usage and the
webhook delivery history."""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from typing import Any
from urllib.parse import unquote

from auditkit.devtools.sandbox.base import SandboxData
from auditkit.devtools.sandbox.index import AuditRef, EmailRef, parse_iso_ms

EMAIL_LIMIT_DEFAULT, EMAIL_LIMIT_MAX = 20, 100
AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX = 50, 100
SUMMARY_FIELDS = (
    "id",
    "from",
    "to",
    "subject",
    "direction",
    "status",
    "spam_score",
    "spam_verdict",
    "received_at",
    "thread_id",
    "has_attachments",
    "delivered_at",
    "bounced_at",
    "bounce_type",
)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MultiMailRoutes(SandboxData):
    """Answers for authenticated MultiMail GETs; errors are raised as HttpError."""

    def _multimail(self, kind: str, path: str, query: dict[str, str]) -> Any:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if kind == "account":
            return self.account
        if kind == "mailboxes":
            return {"mailboxes": self.mailboxes}
        if kind == "api_keys":
            return self.api_keys
        if kind == "domains":
            return self.domains
        if kind == "webhooks":
            return self.webhooks
        if kind == "suppression":
            return self.suppressions
        if kind == "pending":
            items = []
            for email_id in self.index.pending_ids:
                rec = self._email_record(self.index.emails_by_id[email_id])
                items.append(
                    {
                        "id": rec["id"],
                        "mailbox_id": rec["mailbox_id"],
                        "direction": rec["direction"],
                        "from": rec["from"],
                        "to": rec["to"],
                        "subject": rec["subject"],
                        "body_markdown": rec.get("markdown", ""),
                        "status": rec["status"],
                        "received_at": rec["received_at"],
                    }
                )
            return {"emails": items}
        if kind == "audit":
            return self._audit_page(query)
        if kind == "usage":
            return self._usage(query)
        if kind == "webhook_deliveries":
            return self._deliveries_page(query)
        if kind == "list":
            return self._email_page(parts[2], query)
        if kind == "detail":
            return self._email_detail(parts[2], parts[4])
        raise HttpError(404, "Not found")

    def _email_page(self, mailbox_id: str, query: dict[str, str]) -> dict[str, Any]:
        refs = self.index.emails_by_mailbox.get(mailbox_id)
        if refs is None:
            raise HttpError(404, "Mailbox not found")
        limit = _limit(query, EMAIL_LIMIT_DEFAULT, EMAIL_LIMIT_MAX)
        cursor_ms = None
        if query.get("cursor"):
            if not query["cursor"].isdigit():
                raise HttpError(400, "cursor must be a received_at epoch (milliseconds)")
            cursor_ms = int(query["cursor"])
        after = _time_filter(query, "date_after")
        before = _time_filter(query, "date_before")
        direction, status, since_id = (
            query.get("direction"),
            query.get("status"),
            query.get("since_id"),
        )
        if direction not in (None, "inbound", "outbound"):
            raise HttpError(400, "direction must be inbound or outbound")
        # Start at the newest item the cursor and date_before allow (bisect, not a scan, so
        # paging a 300k-message mailbox stays linear overall).
        newest_ms = min(
            cursor_ms if cursor_ms is not None else 2**62,
            before - 1 if before is not None else 2**62,
        )
        start = bisect.bisect_left(self.index.negated_ms_by_mailbox[mailbox_id], -newest_ms)
        page: list[EmailRef] = []
        more = False
        for position in range(start, len(refs)):
            ref = refs[position]
            # The cursor is a timestamp, not a key: items at exactly the cursor time come
            # again on the next page, as with the real API.
            if after is not None and ref.received_ms < after:
                break  # newest first: everything further is older still
            if direction and ref.direction != direction:
                continue
            if status and self._status(ref) != status:
                continue
            if since_id and ref.id <= since_id:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(ref)
        emails = []
        for ref in page:
            rec = self._email_record(ref)
            emails.append({k: rec.get(k) for k in SUMMARY_FIELDS})
        return {"emails": emails, "cursor": str(page[-1].received_ms) if more else None}

    def _email_detail(self, mailbox_id: str, email_id: str) -> dict[str, Any]:
        if mailbox_id not in self.index.emails_by_mailbox:
            raise HttpError(404, "Mailbox not found")
        ref = self.index.emails_by_id.get(email_id)
        if ref is None or ref.mailbox_id != mailbox_id:
            raise HttpError(404, "Email not found")
        record = self._email_record(ref)
        if ref.direction == "inbound" and record["status"] == "unread":
            with self._state_lock:  # read_email marks unread mail read, as the real API does
                self.status_overrides[ref.id] = "read"
        record.pop("mailbox_id", None)
        record.pop("direction", None)
        return record

    def _usage(self, query: dict[str, str]) -> dict[str, Any]:
        """`UsageDaily` for the days whose midnight lies in [from, to] (epoch ms)."""
        if self.usage_daily is None:
            raise HttpError(404, "Not found")
        bounds = []
        for name in ("from", "to"):
            raw = query.get(name, "")
            if not raw.isdigit():
                raise HttpError(400, f"{name} must be an epoch time in milliseconds")
            bounds.append(int(raw))
        if query.get("breakdown") != "daily":
            raise HttpError(400, "the sandbox serves breakdown=daily only")
        start, end = bounds
        data = [
            item
            for item in self.usage_daily
            if start <= parse_iso_ms(item["date"] + "T00:00:00Z") <= end
        ]
        return {"from": start, "to": end, "breakdown": "daily", "data": data}

    def _deliveries_page(self, query: dict[str, str]) -> dict[str, Any]:
        """`GET /v1/webhook-deliveries`: newest first; the cursor is the next position."""
        if self.webhook_deliveries is None:
            raise HttpError(404, "Not found")
        limit = _limit(query, AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX)
        raw = query.get("cursor") or "0"
        if not raw.isdigit():
            raise HttpError(400, "invalid cursor")
        start = int(raw)
        page = self.webhook_deliveries[start : start + limit]
        more = start + limit < len(self.webhook_deliveries)
        return {"deliveries": page, "cursor": str(start + limit) if more else None}

    def _audit_page(self, query: dict[str, str]) -> dict[str, Any]:
        limit = _limit(query, AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX)
        start_key: tuple[int, str] | None = None
        if query.get("cursor"):
            try:
                ms, _, last_id = (
                    base64.urlsafe_b64decode(query["cursor"].encode()).decode().partition("|")
                )
                start_key = (int(ms), last_id)
            except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
                raise HttpError(400, "invalid cursor") from exc
        with self._state_lock:
            removed = set(self.audit_removed)
        # Newest first; the cursor holds the (time, id) of the last entry served, so
        # entries deleted between pages do not shift later pages.
        refs = self.index.audit_refs
        lo, hi = 0, len(refs)
        if start_key is not None:
            while lo < hi:  # first ref strictly older than the cursor key
                mid = (lo + hi) // 2
                ref = refs[mid]
                if (ref.created_ms, ref.id) >= start_key:
                    lo = mid + 1
                else:
                    hi = mid
        page: list[AuditRef] = []
        more = False
        for position in range(lo, len(refs)):
            ref = refs[position]
            if ref.id in removed:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(ref)
        cursor = None
        if more:
            cursor = base64.urlsafe_b64encode(
                f"{page[-1].created_ms}|{page[-1].id}".encode()
            ).decode()
        return {"entries": [self._audit_record(r) for r in page], "cursor": cursor}


_MAILBOX_EMAILS = re.compile(r"^/v1/mailboxes/[^/]+/emails/?$")
_MAILBOX_EMAIL = re.compile(r"^/v1/mailboxes/[^/]+/emails/[^/]+/?$")
_FIXED_ROUTES = {
    "/v1/account": "account",
    "/v1/mailboxes": "mailboxes",
    "/v1/oversight/pending": "pending",
    "/v1/audit-log": "audit",
    "/v1/api-keys": "api_keys",
    "/v1/domains": "domains",
    "/v1/suppression": "suppression",
    "/v1/webhooks": "webhooks",
    "/v1/usage": "usage",
    "/v1/webhook-deliveries": "webhook_deliveries",
}


def multimail_kind(path: str) -> str:
    fixed = _FIXED_ROUTES.get(path.rstrip("/") or "/")
    if fixed:
        return fixed
    if _MAILBOX_EMAILS.match(path):
        return "list"
    if _MAILBOX_EMAIL.match(path):
        return "detail"
    return "unknown"


def _limit(query: dict[str, str], default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, f"limit must be an integer between 1 and {maximum}") from None
    if not 1 <= value <= maximum:
        raise HttpError(400, f"limit must be an integer between 1 and {maximum}")
    return value


def _time_filter(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return parse_iso_ms(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be an ISO-8601 date-time") from None
