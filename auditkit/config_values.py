"""Readers for single configuration values: a secret from the environment (or its _FILE),
a table, a non-empty string, a positive number, a memory size, an API base URL. Each raises
ConfigError naming where the value came from; `config` composes them into Settings."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auditkit.config_accounts import DEFAULT_MULTIMAIL_URL
from auditkit.errors import ConfigError

logger = logging.getLogger("auditkit.config")

_API_VERSION_SUFFIX = "/v1"
# DuckDB memory sizes: a number and a unit (`[store] memory_limit = "512MB"`).
_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|[KMGT]i?B)$", re.IGNORECASE)


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """`NAME` or the Docker-style `NAME_FILE` (a path whose content is the secret)."""
    if env.get(name):
        return env[name].strip()
    file_var = f"{name}_FILE"
    if env.get(file_var):
        path = Path(env[file_var])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{file_var} points to {path}, which cannot be read: {exc.strerror}"
            ) from exc
    return None


def table(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a table ([{name}]), got {value!r}")
    return value


def text(section: Mapping[str, Any], key: str, path: str, where: str) -> str | None:
    """An optional non-empty string setting, stripped."""
    if key not in section:
        return None
    value = section[key]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {path}.{key} must be a non-empty string, got {value!r}")
    return value.strip()


def positive_int(section: Mapping[str, Any], key: str, path: str, where: str, default: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"{where}: {path}.{key} must be a whole number of at least 1, got {value!r}"
        )
    return value


def positive_number(
    section: Mapping[str, Any], key: str, path: str, where: str, default: float
) -> float:
    value = section.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{where}: {path}.{key} must be a positive number, got {value!r}")
    return float(value)


def memory_size(section: Mapping[str, Any], key: str, path: str, where: str) -> str | None:
    """An optional size DuckDB accepts as a memory limit: a number and a unit (512MB, 2GB)."""
    value = text(section, key, path, where)
    if value is not None and not _MEMORY_SIZE.match(value):
        raise ConfigError(
            f"{where}: {path}.{key} must be a size such as 512MB or 2GB, got {value!r}"
        )
    return value


def api_url(value: Any, source: str, *, example: str) -> str:
    """`value` as an API base URL: http or https, with a host, without a trailing slash.

    `source` names where the value came from (an env var, or `file: key`) so the error can
    name it; a URL without a scheme ("api.multimail.dev") would otherwise fail deep in the
    HTTP client, far from the setting that caused it.
    """
    problem = f"{source} must be an http or https URL with a host, e.g. {example}; got {value!r}"
    if not isinstance(value, str) or any(
        ch.isspace() or not ch.isprintable() for ch in value.strip()
    ):
        raise ConfigError(problem)
    url = value.strip().rstrip("/")
    try:
        # urlsplit refuses a broken IPv6 host, .port a port that is not a number up to 65535.
        parts = urlsplit(url)
        port, host = parts.port, parts.hostname
    except ValueError:
        raise ConfigError(problem) from None
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL are a secret; it would be recorded with the settings. The
        # value is not repeated here for the same reason.
        raise ConfigError(
            f"{source} must not carry a user name or password; secrets belong in "
            "MULTIMAIL_API_KEY / INTERCOM_ACCESS_TOKEN (or their _FILE variants)"
        )
    if parts.scheme.lower() not in ("http", "https") or not host or port == 0:
        raise ConfigError(problem)
    if parts.query or parts.fragment:
        raise ConfigError(f"{source} must be the API's base URL without ? or #; got {value!r}")
    return url


def multimail_api_url(value: Any, source: str) -> str:
    """A MultiMail base URL. One ending in /v1 (as the API reference writes it) is taken as
    the root: every path auditkit requests already starts with /v1, and keeping it would
    request /v1/v1/account and fail with 404."""
    url = api_url(value, source, example=DEFAULT_MULTIMAIL_URL)
    parts = urlsplit(url)
    if parts.path.lower().endswith(_API_VERSION_SUFFIX):
        url = parts._replace(path=parts.path[: -len(_API_VERSION_SUFFIX)]).geturl()
        logger.info(
            "%s ends in /v1, which auditkit adds to every path itself; using %s", source, url
        )
    return url
