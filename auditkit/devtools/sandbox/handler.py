"""The HTTP side of the sandbox: one handler class per server, and a threading server that
treats vanishing clients as normal."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from auditkit.devtools.sandbox.base import Reply
from auditkit.devtools.sandbox.faults import Fault
from auditkit.devtools.sandbox.intercom import intercom_kind
from auditkit.devtools.sandbox.multimail import multimail_kind
from auditkit.devtools.sandbox.request_log import LoggedRequest

if TYPE_CHECKING:
    from auditkit.devtools.sandbox.server import SandboxServer

# The logger name the sandbox has always logged under (shown by `-v`).
logger = logging.getLogger("auditkit.devtools.sandbox")


def handler_class(sandbox: SandboxServer) -> type[BaseHTTPRequestHandler]:
    """The request handler serving `sandbox`: latency, faults, routing, the request log."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "auditkit-sandbox"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the request log is the record; stderr stays quiet

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._serve("PUT")

        def do_PATCH(self) -> None:  # noqa: N802
            self._serve("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)  # keep the connection usable for the next request
            split = urlsplit(self.path)
            path = split.path
            query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            kind = intercom_kind(path) or multimail_kind(path)
            if sandbox.latency_ms:
                sandbox._stopping.wait(sandbox.latency_ms / 1000)
            fault = sandbox.faults.take(path)
            fault_kind = fault.kind if fault else sandbox._random_failure()
            if fault_kind in ("drop", "timeout"):
                sandbox.requests.record(LoggedRequest(method, path, query, kind, 0))
                if fault_kind == "timeout":
                    sandbox._stopping.wait(fault.seconds if fault else 2.0)
                self.close_connection = True  # no answer at all
                return
            if fault_kind is not None and fault_kind != "truncated":
                status, body, headers = self._fault_reply(fault_kind, fault)
            else:
                try:
                    kind, reply = sandbox._route(
                        method, path, query, self.headers.get("Authorization")
                    )
                except Exception:  # a sandbox bug must still answer, or keep-alive hangs
                    logger.exception("sandbox failed on %s %s", method, path)
                    reply = Reply(500, {"error": "sandbox internal error"}, {})
                status, headers = reply.status, reply.headers
                body = json.dumps(reply.body, ensure_ascii=False).encode()
            # Logged before answering: a client holding its response finds it in the log.
            sandbox.requests.record(LoggedRequest(method, path, query, kind, status))
            cut_at = None
            if fault_kind == "truncated":
                self.close_connection = True
                cut_at = len(body) // 2
            self._send(status, body, headers, cut_at=cut_at)

        def _fault_reply(
            self, kind: str, fault: Fault | None
        ) -> tuple[int, bytes, Mapping[str, str]]:
            if kind == "malformed":
                return 200, b'{"emails": [{"id": "01J', {}
            if kind == "429":
                retry_after = fault.retry_after if fault else sandbox._retry_after()
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return 429, b'{"error":"Rate limited"}', headers
            return int(kind), json.dumps({"error": f"sandbox fault {kind}"}).encode(), {}

        def _send(
            self,
            status: int,
            body: bytes,
            headers: Mapping[str, str],
            cut_at: int | None = None,
        ) -> None:
            """Answer with `body`; with `cut_at`, only its first `cut_at` bytes, though the
            Content-Length announces all of them."""
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body if cut_at is None else body[:cut_at])
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (e.g. its own timeout)

    return Handler


class QuietThreadingServer(ThreadingHTTPServer):
    """Clients that vanish mid-request (killed harvesters, their own timeouts) are normal
    here: log them at debug level instead of printing socketserver tracebacks."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("sandbox client %s went away: %s", client_address, exc)
            return
        logger.exception("sandbox failed serving %s", client_address)
