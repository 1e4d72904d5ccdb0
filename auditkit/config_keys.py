"""The config file's strictness: unknown tables and keys named with the closest known one,
and secrets refused wherever they appear.

Every module that reads a table of `auditkit.toml` (`config`, `controls.settings`,
`controls.waivers`, `classify`) checks it with `reject_unknown`, because a typo
(`[control]` for `[controls]`) would otherwise silently change compliance results, and a
secret in the file would be recorded with the settings.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from typing import Any

from auditkit.errors import ConfigError

# Key names that hold credentials. Only keys auditkit does not know are tested, so a known
# name (controls.audit_actions.key_created, a meaning) can never be mistaken for one.
_SECRET_NAMES = frozenset(
    {
        "key",
        "apikey",
        "token",
        "accesstoken",
        "apitoken",
        "authtoken",
        "secret",
        "password",
        "passwd",
        "credential",
        "credentials",
    }
)
_SECRET_SUFFIXES = ("_key", "_token", "_secret", "_password", "_passwd", "_credentials")
SECRET_VARIABLES = "MULTIMAIL_API_KEY / INTERCOM_ACCESS_TOKEN (or their _FILE variants)"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def table_path(path: str, key: str) -> str:
    """`key` appended to the dotted TOML `path` ("" is the top level), quoted where TOML
    needs quotes (`mailboxes."a@b.example"`)."""
    if not _BARE_KEY.match(key):
        key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{path}.{key}" if path else key


def looks_secret(key: str) -> bool:
    """Whether a key's name says it holds a credential (api_key, token, client_secret…)."""
    name = key.strip().lower().replace("-", "_")
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES)


def secret_refused(path: str, variables: str = SECRET_VARIABLES) -> ConfigError:
    return ConfigError(
        f"{path}: secrets do not belong in the config file; remove it and use {variables}"
    )


def _secret_under(key: str, value: Any, path: str) -> str | None:
    """The dotted path of the first secret-looking key at or under `key`, if any."""
    here = table_path(path, key)
    if looks_secret(key):
        return here
    tables = [value] if isinstance(value, Mapping) else value if isinstance(value, list) else []
    for table in tables:
        if isinstance(table, Mapping):
            for child in sorted(table, key=str):
                if found := _secret_under(str(child), table[child], here):
                    return found
    return None


def reject_unknown(
    table: Mapping[str, Any],
    known: Collection[str],
    path: str,
    *,
    kind: str = "setting",
    secret_variables: str = SECRET_VARIABLES,
) -> None:
    """Raise ConfigError for the keys of `table` (the TOML table at dotted `path`, "" for the
    top level) that are not in `known`.

    A secret-looking key anywhere under an unknown key is refused as a secret (it must leave
    the file, whatever else is wrong); otherwise the first unknown key is named with the
    closest known one. Known keys are never tested for secrecy: they are settings by name.
    """
    unknown = sorted(str(k) for k in set(table) - set(known))
    for key in unknown:
        if secret := _secret_under(key, table[key], path):
            raise secret_refused(secret, secret_variables)
    if not unknown:
        return
    key, value = unknown[0], table[unknown[0]]
    is_array = isinstance(value, list) and bool(value)
    is_array = is_array and all(isinstance(v, Mapping) for v in value)
    if isinstance(value, Mapping) or is_array:
        # Suggest in the shape the user wrote: [control] → [controls], [[waiver]] → [[waivers]].
        left, right = ("[[", "]]") if is_array else ("[", "]")

        def shown(name: str) -> str:
            return f"{left}{table_path(path, name)}{right}"

        message = f"unknown table {shown(key)}"
    else:

        def shown(name: str) -> str:
            return table_path(path, name)

        message = f"{shown(key)} is not a {kind}"
    close = difflib.get_close_matches(key, sorted(known), n=1)
    if close:
        message += f"; did you mean {shown(close[0])}?"
    elif known:
        message += "; known: " + ", ".join(
            f"[{name}]" if not path else table_path(path, name) for name in sorted(known)
        )
    raise ConfigError(message)
