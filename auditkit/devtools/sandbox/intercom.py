"""The Intercom routes of the sandbox: `/me` and `/conversations/{id}` for the default
workspace, the same under `/eu` for the EU one, each with its own token and a rate limit."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from auditkit.devtools.sandbox.base import EU_PREFIX, Reply, SandboxData

INTERCOM_WINDOW_SECONDS = 10


class IntercomRoutes(SandboxData):
    """Answers for Intercom requests, auth and rate limit included."""

    def _intercom(self, method: str, path: str, auth: str | None) -> Reply:
        eu = path.startswith(EU_PREFIX + "/")
        if eu:
            path = path[len(EU_PREFIX) :]
        if auth != f"Bearer {self.intercom_eu_token if eu else self.intercom_token}":
            return Reply(401, _intercom_error("unauthorized", "Access Token Invalid"), {})
        now = int(time.time())
        window_start = now - now % INTERCOM_WINDOW_SECONDS
        with self._state_lock:
            start, used = self._intercom_window
            if start != window_start:
                start, used = window_start, 0
            used += 1
            self._intercom_window = (start, used)
        remaining = max(self.intercom_rate_limit - used, 0)
        headers = {
            "X-RateLimit-Limit": str(self.intercom_rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(window_start + INTERCOM_WINDOW_SECONDS),
        }
        if used > self.intercom_rate_limit:
            message = f"Exceeded rate limit of {self.intercom_rate_limit} in 10_seconds"
            return Reply(429, _intercom_error("rate_limit_exceeded", message), headers)
        if method != "GET":
            return Reply(
                405, _intercom_error("method_not_allowed", f"{method} is not supported"), headers
            )
        if eu and self.eu_me is None:
            return Reply(404, _intercom_error("not_found", "Resource Not Found"), headers)
        if path == "/me":
            return Reply(200, self.eu_me if eu else self.me, headers)
        conversation_id = unquote(path[len("/conversations/") :])
        if eu:
            record = self.eu_conversations.get(conversation_id)
            if record is None:
                return Reply(404, _intercom_error("not_found", "Resource Not Found"), headers)
            return Reply(200, record, headers)
        ref = self.index.conversations.get(conversation_id)
        if ref is None:
            return Reply(404, _intercom_error("not_found", "Resource Not Found"), headers)
        return Reply(200, self._conv_file.read(ref >> 32, ref & 0xFFFFFFFF), headers)


def intercom_kind(path: str) -> str | None:
    """`intercom_me` / `intercom_conversation` for either workspace, None for MultiMail paths."""
    if path.startswith(EU_PREFIX + "/"):
        path = path[len(EU_PREFIX) :]
    if path == "/me":
        return "intercom_me"
    if path.startswith("/conversations/"):
        return "intercom_conversation"
    return None


def _intercom_error(code: str, message: str) -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": None,
        "errors": [{"code": code, "message": message}],
    }
