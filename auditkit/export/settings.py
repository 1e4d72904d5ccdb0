"""Where an export goes: flags > environment > `[export]` in auditkit.toml > a local catalog.

`auditkit export --out DIR` keeps everything in DIR: a pyiceberg SQL catalog on SQLite
(`DIR/catalog.db`) and the tables' files under `DIR/warehouse/`. Without `--out`, the
catalog is the configured one, any Iceberg REST catalog or SQL catalog (a SQLAlchemy URL):

    [export]
    catalog = "rest"                           # or "sql"
    uri = "https://iceberg.example/api/catalog"
    warehouse = "s3://evidence-lake/auditkit"  # a location, or a REST catalog's warehouse name
    namespace = "auditkit"                     # default

The same four as AUDITKIT_EXPORT_CATALOG, AUDITKIT_EXPORT_CATALOG_URI,
AUDITKIT_EXPORT_WAREHOUSE and AUDITKIT_EXPORT_NAMESPACE, or `--catalog`, `--catalog-uri`,
`--warehouse`, `--namespace`. Credentials never go in the file (it is shared and its
settings are recorded), nor in a URI: a REST catalog's bearer token comes from
AUDITKIT_EXPORT_CATALOG_TOKEN, its OAuth2 client credential (`id:secret`) from
AUDITKIT_EXPORT_CATALOG_CREDENTIAL, a SQL catalog database's password from
AUDITKIT_EXPORT_CATALOG_PASSWORD (each also as a `_FILE` variant). Object-store credentials
come from the storage's own variables (AWS_ACCESS_KEY_ID…), which pyarrow's filesystems read.

Nothing here imports pyiceberg or talks to a catalog; `catalog.open_catalog` does both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auditkit.config_keys import reject_unknown
from auditkit.errors import ConfigError, UsageError

EXPORT_KEYS = ("catalog", "uri", "warehouse", "namespace")
CATALOG_KINDS = ("sql", "rest")
DEFAULT_NAMESPACE = "auditkit"
# pyiceberg also reads PYICEBERG_CATALOG__AUDITKIT__<PROPERTY> for this catalog name, the
# way to pass a property auditkit has no setting for (an S3 endpoint, a REST scope).
CATALOG_NAME = "auditkit"
ENV_CATALOG = "AUDITKIT_EXPORT_CATALOG"
ENV_URI = "AUDITKIT_EXPORT_CATALOG_URI"
ENV_WAREHOUSE = "AUDITKIT_EXPORT_WAREHOUSE"
ENV_NAMESPACE = "AUDITKIT_EXPORT_NAMESPACE"
ENV_TOKEN = "AUDITKIT_EXPORT_CATALOG_TOKEN"
ENV_CREDENTIAL = "AUDITKIT_EXPORT_CATALOG_CREDENTIAL"
ENV_PASSWORD = "AUDITKIT_EXPORT_CATALOG_PASSWORD"
SECRET_VARIABLES = f"{ENV_TOKEN}, {ENV_CREDENTIAL} or {ENV_PASSWORD} (or their _FILE variants)"
LOCAL_CATALOG_FILE = "catalog.db"
LOCAL_WAREHOUSE = "warehouse"
_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class CatalogTarget:
    """One Iceberg catalog and namespace to export into. Secrets stay out of repr."""

    kind: str  # sql | rest
    uri: str
    warehouse: str | None
    namespace: str = DEFAULT_NAMESPACE
    local_dir: Path | None = None  # set for `--out DIR`
    token: str | None = field(default=None, repr=False)
    credential: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Where the export goes, for messages and --json (no secrets)."""
        if self.local_dir is not None:
            return f"{self.local_dir} (SQL catalog on SQLite), namespace {self.namespace}"
        return f"{self.kind} catalog {self.uri}, namespace {self.namespace}"

    def public_dict(self) -> dict[str, Any]:
        return {
            "catalog": self.kind,
            "uri": self.uri,
            "warehouse": self.warehouse,
            "namespace": self.namespace,
            "token_set": self.token is not None,
            "credential_set": self.credential is not None,
            "password_set": self.password is not None,
        }


def check_export_table(table: Any) -> Mapping[str, Any]:
    """`[export]` validated when the settings load: known keys, right types, no secrets."""
    if not isinstance(table, Mapping):
        raise ConfigError("export must be a table ([export])")
    reject_unknown(table, EXPORT_KEYS, "export", secret_variables=SECRET_VARIABLES)
    for key in EXPORT_KEYS:
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"export.{key} must be a non-empty string, got {table[key]!r}")
    if "catalog" in table:
        _kind(table["catalog"], "export.catalog")
    if "namespace" in table:
        _namespace(table["namespace"], "export.namespace")
    if "uri" in table:
        _uri(table["uri"], "export.uri", _kind(table.get("catalog", "sql"), "export.catalog"))
    if "warehouse" in table:
        _no_credentials(table["warehouse"], "export.warehouse")
    return table


def _kind(value: str, source: str) -> str:
    kind = value.strip().lower()
    if kind not in CATALOG_KINDS:
        raise ConfigError(f"{source} must be one of {', '.join(CATALOG_KINDS)}, got {value!r}")
    return kind


def _namespace(value: str, source: str) -> str:
    if not _NAMESPACE.match(value.strip()):
        raise ConfigError(
            f"{source} must be a namespace of letters, digits and _ (dotted for nesting), "
            f"got {value!r}"
        )
    return value.strip()


def _no_credentials(value: str, source: str) -> str:
    """`value` unless it is a URL carrying a password (which would be recorded)."""
    try:
        parts = urlsplit(value.strip())
        password = parts.password
    except ValueError:
        raise ConfigError(f"{source} is not a valid location or URL") from None
    if password is not None:
        raise ConfigError(
            f"{source} must not carry a password (the setting is recorded); use {SECRET_VARIABLES}"
        )
    return value.strip()


def _uri(value: str, source: str, kind: str) -> str:
    """A REST catalog's http(s) URL, or a SQL catalog's SQLAlchemy URL; never a password."""
    uri = _no_credentials(value, source)
    parts = urlsplit(uri)
    if kind == "rest":
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{source} must be an http or https URL for a REST catalog, got {value!r}"
            )
        if parts.username is not None:
            raise ConfigError(f"{source} must not carry a user name; use {ENV_CREDENTIAL}")
    elif "://" not in uri:
        raise ConfigError(
            f"{source} must be a SQLAlchemy database URL for a SQL catalog "
            f"(postgresql+psycopg://host/db, sqlite:////path/catalog.db), got {value!r}"
        )
    return uri


def _read_secret(env: Mapping[str, str], name: str) -> str | None:
    """`NAME`, or the content of the file `NAME_FILE` names."""
    if env.get(name):
        return env[name].strip()
    if env.get(f"{name}_FILE"):
        path = Path(env[f"{name}_FILE"])
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(f"{name}_FILE names a file that cannot be read ({reason})") from None
    return None


def _pick(
    flag: str | None, env: Mapping[str, str], var: str, table: Mapping[str, Any], key: str
) -> tuple[Any, str]:
    """(value, where it came from) by precedence flag > env > file, or (None, "")."""
    if flag is not None:
        return flag, f"--{'catalog-uri' if key == 'uri' else key}"
    if env.get(var):
        return env[var], var
    if key in table:
        return table[key], f"export.{key}"
    return None, ""


def catalog_target(
    export_table: Mapping[str, Any],
    *,
    out_dir: Path | None = None,
    catalog: str | None = None,
    uri: str | None = None,
    warehouse: str | None = None,
    namespace: str | None = None,
    env: Mapping[str, str] | None = None,
) -> CatalogTarget:
    """The catalog an export writes to. `out_dir` (`--out`) chooses a local SQLite catalog
    in that folder; otherwise the catalog must be configured (flags > env > `[export]`)."""
    env = os.environ if env is None else env
    ns_value, ns_source = _pick(namespace, env, ENV_NAMESPACE, export_table, "namespace")
    ns = _namespace(ns_value, ns_source) if ns_value is not None else DEFAULT_NAMESPACE
    if out_dir is not None:
        if catalog is not None or uri is not None or warehouse is not None:
            raise UsageError(
                "--out DIR exports into a local catalog in DIR; --catalog, --catalog-uri and "
                "--warehouse choose another catalog instead: give one or the other"
            )
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--out {out_dir} exists and is not a folder")
        folder = out_dir.resolve()
        return CatalogTarget(
            kind="sql",
            uri=f"sqlite:///{folder / LOCAL_CATALOG_FILE}",
            warehouse=(folder / LOCAL_WAREHOUSE).as_uri(),
            namespace=ns,
            local_dir=folder,
        )
    kind_value, kind_source = _pick(catalog, env, ENV_CATALOG, export_table, "catalog")
    kind = _kind(kind_value, kind_source) if kind_value is not None else "sql"
    uri_value, uri_source = _pick(uri, env, ENV_URI, export_table, "uri")
    if uri_value is None:
        raise UsageError(
            "auditkit export needs --out DIR (a local catalog), or a catalog: --catalog-uri, "
            f"{ENV_URI} or [export] uri in auditkit.toml"
        )
    wh_value, wh_source = _pick(warehouse, env, ENV_WAREHOUSE, export_table, "warehouse")
    if kind == "sql" and wh_value is None:
        raise UsageError(
            f"a SQL catalog needs a warehouse location for the data files: --warehouse, "
            f"{ENV_WAREHOUSE} or [export] warehouse"
        )
    return CatalogTarget(
        kind=kind,
        uri=_uri(uri_value, uri_source, kind),
        warehouse=_no_credentials(wh_value, wh_source) if wh_value is not None else None,
        namespace=ns,
        token=_read_secret(env, ENV_TOKEN),
        credential=_read_secret(env, ENV_CREDENTIAL),
        password=_read_secret(env, ENV_PASSWORD),
    )
