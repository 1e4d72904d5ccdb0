"""HTTP plumbing for every source: `build_client()`, `RetryTransport`, redaction, JSON decoding.

Knows nothing about endpoints. Retries live in a transport wrapper (the httpx swap point),
so unit tests drive the same code through `httpx.MockTransport` with a fake `sleep`.
Secrets travel only in the Authorization header; nothing here ever formats a header into a
log line or an error message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from auditkit import USER_AGENT
from auditkit.errors import RetriesExhaustedError, SourceAuthError, SourceError

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
RETRY_METHODS = frozenset({"GET", "HEAD"})
# Connection-level failures worth another try; protocol/proxy misconfiguration is not.
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
# Query parameters whose values are masked wherever a URL is logged or quoted.
SECRET_PARAM_WORDS = ("token", "key", "secret", "password", "signature", "code", "auth")


class PayloadError(SourceError):
    """The API answered 2xx with a body we cannot use (not JSON, wrong shape)."""

    def __init__(self, message: str, *, raw_text: str = "", url: str = "") -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.url = url


def redact_url(url: httpx.URL | str) -> str:
    """The URL with userinfo dropped and secret-looking query values masked."""
    u = httpx.URL(str(url))
    pairs = parse_qsl(u.query.decode("ascii", "replace"), keep_blank_values=True)
    masked = [
        (k, "REDACTED" if any(w in k.lower() for w in SECRET_PARAM_WORDS) else v) for k, v in pairs
    ]
    u = u.copy_with(
        username=None, password=None, query=urlencode(masked).encode() if masked else None
    )
    return str(u)


def endpoint_path(url: httpx.URL | str) -> str:
    """Just the path: what error messages name, so no query value can leak."""
    return httpx.URL(str(url)).path


def build_client(
    base_url: str,
    token: str | None,
    *,
    timeout: float,
    transport: httpx.BaseTransport | None = None,
    extra_headers: Mapping[str, str] | None = None,
    concurrency: int = 16,
    max_retries: int = 6,
) -> httpx.Client:
    """An httpx.Client with base URL, explicit timeouts, User-Agent and Bearer auth.

    `transport` None means `RetryTransport(HTTPTransport(...))` with a keep-alive pool sized
    for `concurrency` workers plus the thread that pages lists. Tests pass their own
    (usually a RetryTransport around a MockTransport).
    """
    if transport is None:
        transport = default_transport(concurrency=concurrency, max_retries=max_retries)
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra_headers or {})
    return httpx.Client(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=transport,
        follow_redirects=False,
        trust_env=False,
    )


def default_transport(*, concurrency: int, max_retries: int) -> RetryTransport:
    """Production transport: retries around a keep-alive pool sized for the worker threads
    plus the thread that pages lists."""
    pool = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    return RetryTransport(httpx.HTTPTransport(limits=pool), max_retries=max_retries)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


class RetryTransport(httpx.BaseTransport):
    """Retries idempotent requests on 429, 5xx and connection failures, then gives up loudly.

    A connection failure counts while the body arrives too: the body of an answer that is
    not retried is read here, not later by the client. Backoff is capped exponential with
    full jitter from a seeded RNG (reproducible runs); `Retry-After` wins when present, and
    Intercom's `X-RateLimit-Reset` (epoch seconds) is the fallback on 429. A floor keeps
    `Retry-After: 0` from spinning. Every retry closes the failed response first and logs
    one INFO line with the redacted URL.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        max_retries: int,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        min_delay: float = 0.05,
        max_server_delay: float = 300.0,
    ) -> None:
        self.inner = inner
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self.rng = rng or random.Random(42)
        self.clock = clock
        self.min_delay = min_delay
        # A server may ask for any wait; past this we would rather fail the run than hang it.
        self.max_server_delay = max_server_delay
        self.retries = 0  # total retries made, for run statistics
        self._lock = threading.Lock()  # worker threads share one transport

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        # Half fixed, half jitter: spreads concurrent workers without ever waiting ~0.
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def _server_delay(self, response: httpx.Response) -> float | None:
        delay = parse_retry_after(response.headers.get("Retry-After"), now=self.clock())
        if delay is None and response.status_code == 429:
            reset = response.headers.get("X-RateLimit-Reset")
            if reset is not None:
                try:
                    delay = max(0.0, float(reset) - self.clock())
                except ValueError:
                    delay = None
        return None if delay is None else min(delay, self.max_server_delay)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in RETRY_METHODS:
            return self.inner.handle_request(request)
        attempt = 0
        while True:
            try:
                response = self.inner.handle_request(request)
                if response.status_code not in RETRY_STATUS:
                    # The inner transport returns once the headers are in. Reading the body
                    # here keeps a timeout or a connection cut while it arrives inside the
                    # retries; read later by the client, it escaped them and ended the run.
                    _read_or_close(response)
                    return response
            except RETRY_EXCEPTIONS as exc:
                if attempt >= self.max_retries:
                    raise RetriesExhaustedError(
                        f"{request.method} {endpoint_path(request.url)} failed after "
                        f"{attempt + 1} attempts: {type(exc).__name__}; the API host is "
                        "unreachable or dropping connections "
                        "(raise harvest.max_retries or try later)"
                    ) from exc
                delay = self._backoff(attempt)
                reason = type(exc).__name__
            else:
                if attempt >= self.max_retries:
                    response.close()
                    raise RetriesExhaustedError(
                        f"{request.method} {endpoint_path(request.url)} still answered HTTP "
                        f"{response.status_code} after {attempt + 1} attempts; the API is rate "
                        "limiting or failing (raise harvest.max_retries or try later)"
                    )
                server = self._server_delay(response)
                delay = server if server is not None else self._backoff(attempt)
                reason = f"HTTP {response.status_code}"
                response.close()
            delay = max(delay, self.min_delay)
            attempt += 1
            with self._lock:
                self.retries += 1
            # INFO, not WARNING: a retry that then succeeds is routine (a 10% fault rate
            # printed ~150 warnings per harvest); the run summary counts retries, and a
            # request that never succeeds raises RetriesExhaustedError.
            logger.info(
                "retrying %s %s after %s: attempt %d of %d in %.2fs",
                request.method,
                redact_url(request.url),
                reason,
                attempt,
                self.max_retries,
                delay,
            )
            self.sleep(delay)

    def close(self) -> None:
        self.inner.close()


def _read_or_close(response: httpx.Response) -> None:
    try:
        response.read()
    except BaseException:
        response.close()  # hand the connection back to the pool, broken as it is
        raise


def _error_detail(response: httpx.Response) -> str:
    """A short, safe description of an error body (MultiMail `error`, Intercom `errors[]`)."""
    text = response.text[:300]
    try:
        body = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return body["error"][:200]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{errors[0].get('code', '')}: {errors[0].get('message', '')}"[:200]
    return " ".join(text.split())[:120]


def raise_for_status(response: httpx.Response, *, source: str, credential: str) -> None:
    """Turn 4xx/5xx into auditkit errors that say what to do; never quotes the credential."""
    status = response.status_code
    if status < 400:
        return
    try:
        _raise_for(response, status, source=source, credential=credential)
    except SourceError as exc:
        exc.http_status = status
        raise


def _raise_for(response: httpx.Response, status: int, *, source: str, credential: str) -> None:
    path = endpoint_path(response.request.url)
    detail = _error_detail(response)
    if status == 401:
        raise SourceAuthError(
            f"{source} answered 401 Unauthorized for {path}: the key in {credential} is wrong, "
            "revoked or expired; check it"
        )
    if status == 403:
        if "1020" in detail and "error code" in detail.lower():
            raise SourceAuthError(
                f"{source} answered 403 'error code: 1020' for {path}: a Cloudflare WAF rule "
                "blocked this client (IP or User-Agent), not a key problem; "
                "ask the provider to allow it"
            )
        raise SourceAuthError(
            f"{source} answered 403 Forbidden for {path}: the key in {credential} lacks the scope "
            f"this endpoint needs ({detail or 'no detail'})"
        )
    raise SourceError(f"{source} answered HTTP {status} for {path}: {detail or 'no detail'}")


def decode_json(response: httpx.Response) -> Any:
    """The JSON body, or PayloadError carrying the raw text for quarantine."""
    text = response.text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"{endpoint_path(response.request.url)} answered HTTP {response.status_code} with a "
            f"body that is not JSON ({exc.msg} at char {exc.pos})",
            raw_text=text,
            url=redact_url(response.request.url),
        ) from exc
