"""Fail fast on a wrong endpoint: one unretried request per configured API before a harvest.

A mistyped base URL, a closed port, `https://` against a plain-HTTP server or a refused key
used to cost minutes of patient retries (meant for outages) before failing with the wrong
advice. The preflight asks each API once, without retries and with a short timeout, and
names the cause: connection refused, name resolution, TLS, timeout, 401/403, or a 404 that
says the base URL is wrong. An outage (429, 5xx) is not a wrong endpoint: it passes here
and the harvest's retries deal with it, as they do mid-run.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

import httpx

from auditkit import USER_AGENT
from auditkit.config import Settings
from auditkit.errors import SourceAuthError, SourceError

logger = logging.getLogger(__name__)

# Connect, read and write are each capped here: the whole preflight of one API stays
# within about 15 s however the network misbehaves.
PREFLIGHT_TIMEOUT_SECONDS = 12.0


@dataclass(frozen=True)
class Endpoint:
    """One API to ask: what to call it in errors, where, and which variable holds its key."""

    name: str
    base_url: str
    path: str
    token: str
    credential: str  # the env var named in errors, never its value


def endpoints(settings: Settings) -> list[Endpoint]:
    """MultiMail, and each Intercom workspace that has a token (the harvest enriches only those)."""
    found = []
    if settings.multimail_api_key:
        found.append(
            Endpoint(
                "MultiMail",
                settings.multimail_api_url,
                "/v1/account",
                settings.multimail_api_key,
                settings.multimail_credential,
            )
        )
    if settings.intercom_access_token:
        found.append(
            Endpoint(
                "Intercom",
                settings.intercom_api_url,
                "/me",
                settings.intercom_access_token,
                "INTERCOM_ACCESS_TOKEN",
            )
        )
    for workspace in settings.intercom_workspaces:
        if workspace.access_token:
            found.append(
                Endpoint(
                    f"Intercom workspace {workspace.name}",
                    workspace.api_url,
                    "/me",
                    workspace.access_token,
                    workspace.credential,
                )
            )
    return found


def preflight(
    settings: Settings,
    transport: httpx.BaseTransport | None = None,
    intercom_transport: httpx.BaseTransport | None = None,
) -> None:
    """Raise SourceError (SourceAuthError for 401/403) naming the first API that cannot be
    reached or refuses its key. The transports replace the network in tests."""
    for endpoint in endpoints(settings):
        is_intercom = endpoint.path == "/me"
        check(
            endpoint,
            settings.intercom_version,
            (intercom_transport or transport) if is_intercom else transport,
        )


def check(endpoint: Endpoint, intercom_version: str, transport: httpx.BaseTransport | None) -> None:
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Authorization": f"Bearer {endpoint.token}",
    }
    if endpoint.path == "/me":
        headers["Intercom-Version"] = intercom_version
    where = f"{endpoint.name} at {endpoint.base_url}"
    try:
        with httpx.Client(
            base_url=endpoint.base_url,
            headers=headers,
            timeout=httpx.Timeout(PREFLIGHT_TIMEOUT_SECONDS),
            transport=transport or httpx.HTTPTransport(retries=0),
            follow_redirects=False,
            trust_env=False,
        ) as client:
            response = client.get(endpoint.path)
    except httpx.TimeoutException as exc:
        raise SourceError(
            f"{where} did not answer within {PREFLIGHT_TIMEOUT_SECONDS:.0f} s "
            f"({type(exc).__name__}); check the URL and the network"
        ) from exc
    except httpx.ConnectError as exc:
        raise SourceError(f"{where} cannot be reached: {_connect_cause(exc)}") from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"{where} cannot be reached: {type(exc).__name__}") from exc
    status = response.status_code
    if status in (401, 403):
        raise SourceAuthError(
            f"{where} refused the key in {endpoint.credential} (HTTP {status}); check the key "
            "and its scopes (MultiMail: read and admin)"
        )
    if status == 404:
        raise SourceError(
            f"{where} answered 404 for {endpoint.path}: the base URL looks wrong (it should be "
            "the API's root, e.g. https://api.multimail.dev, without /v1)"
        )
    if 300 <= status < 400:
        raise SourceError(
            f"{where} redirects ({status}) instead of answering: check the base URL's scheme "
            "and host"
        )
    logger.info("preflight: %s answered %s", where, status)


def _connect_cause(exc: httpx.ConnectError) -> str:
    """What went wrong connecting, in words a user can act on (the TLS cause included,
    which used to show only at -vv)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(c) for c in chain).lower()
    if any(isinstance(c, ssl.SSLError) for c in chain) or "ssl" in text or "tls" in text:
        if "wrong_version_number" in text or "wrong version number" in text:
            return (
                "TLS handshake failed (wrong version number): the server does not speak "
                "TLS there; if it is a plain-HTTP server, use http://"
            )
        if "certificate" in text:
            return "TLS certificate could not be verified"
        return "TLS handshake failed (protocol or version mismatch)"
    if "refused" in text:
        return "connection refused (nothing listens on that host and port)"
    if (
        "name or service not known" in text
        or "nodename" in text
        or "getaddrinfo" in text
        or ("name resolution" in text)
    ):
        return "the host name does not resolve (DNS)"
    return f"connection failed ({type(exc).__name__})"
