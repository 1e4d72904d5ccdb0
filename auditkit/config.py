"""Settings: one frozen dataclass loaded from flags > env vars > `auditkit.toml` > defaults.

Validation happens once, here, and raises ConfigError naming the key. Secrets (API keys,
tokens) are kept out of repr() and out of `public_dict()`, which is what runs and packs
record. Nothing here talks to the network or the store.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from auditkit.errors import ConfigError

DEFAULT_CONFIG_FILE = "auditkit.toml"
DEFAULT_MULTIMAIL_URL = "https://api.multimail.dev"
DEFAULT_INTERCOM_URL = "https://api.intercom.io"
INTERCOM_REGION_URLS = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}
# Pinned so that evidence records which API contract the conversations were read under.
DEFAULT_INTERCOM_VERSION = "2.14"
DEFAULT_CONVERSATION_TAG = "intercom_conversation_id"  # the sample and guide convention

SECRET_FIELDS = frozenset({"multimail_api_key", "intercom_access_token"})
# Workspace names become env var suffixes (INTERCOM_ACCESS_TOKEN_<NAME>), so keep them simple.
WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class IntercomWorkspace:
    """An extra Intercom workspace (`[intercom.workspaces.<name>]`), e.g. the EU one.

    Email names it with the tag / metadata key `intercom_workspace`; its token comes from
    `INTERCOM_ACCESS_TOKEN_<NAME>` (or `_FILE`), never from the config file.
    """

    name: str
    region: str
    api_url: str
    app_id: str | None = None
    access_token: str | None = field(default=None, repr=False)

    @property
    def credential(self) -> str:
        """The env var that holds this workspace's token (named in errors and logs)."""
        return f"INTERCOM_ACCESS_TOKEN_{self.name.upper()}"

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.region,
            "api_url": self.api_url,
            "app_id": self.app_id,
            "access_token_set": self.access_token is not None,
        }


@dataclass(frozen=True)
class Settings:
    """Everything a harvest, check or report needs to know, secrets included."""

    db_path: Path = Path("auditkit.duckdb")
    multimail_api_url: str = DEFAULT_MULTIMAIL_URL
    multimail_api_key: str | None = field(default=None, repr=False)
    intercom_api_url: str = DEFAULT_INTERCOM_URL
    intercom_access_token: str | None = field(default=None, repr=False)
    intercom_version: str = DEFAULT_INTERCOM_VERSION
    # Workspace id used in inbox links when GET /me is not available (e.g. imports).
    intercom_app_id: str | None = None
    # Extra workspaces by name; email without an `intercom_workspace` tag uses the default above.
    intercom_workspaces: tuple[IntercomWorkspace, ...] = ()
    # The MultiMail email tag holding the Intercom conversation id (v1-shape records; the
    # guide shape carries metadata.conversation_id, which wins when both are present).
    intercom_conversation_tag: str = DEFAULT_CONVERSATION_TAG
    concurrency: int = 16
    timeout_seconds: float = 30.0
    max_retries: int = 6
    # Re-read emails created this many days before the newest stored one, to catch
    # late updates (approval, delivery, bounce) that list paging cannot see.
    lookback_days: int = 7
    # Raw TOML sections interpreted by the modules that own them (controls, report).
    controls: Mapping[str, Any] = field(default_factory=dict)
    mailboxes: Mapping[str, Any] = field(default_factory=dict)
    classification: Mapping[str, Any] = field(default_factory=dict)
    waivers: tuple[Mapping[str, Any], ...] = ()
    company_name: str | None = None
    config_file: Path | None = None

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to record in the store and in packs: no secrets, only whether set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                out[f.name + "_set"] = value is not None
            elif f.name in {"controls", "mailboxes", "classification"}:
                out[f.name] = dict(value)
            elif f.name == "waivers":
                out[f.name] = [dict(w) for w in value]
            elif f.name == "intercom_workspaces":
                out[f.name] = [w.public_dict() for w in value]
            elif isinstance(value, Path):
                out[f.name] = str(value)
            else:
                out[f.name] = value
        return out

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (CLI flags win over everything)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def intercom_workspace(self, name: str) -> IntercomWorkspace | None:
        """The configured workspace called `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((w for w in self.intercom_workspaces if w.name == wanted), None)

    def with_intercom_workspace(self, name: str, **changes: Any) -> Settings:
        """A copy with one configured workspace changed (e.g. pointed at a sandbox)."""
        if self.intercom_workspace(name) is None:
            raise ConfigError(f"no Intercom workspace {name!r} is configured")
        workspaces = tuple(
            replace(w, **changes) if w.name == name.lower() else w for w in self.intercom_workspaces
        )
        return replace(self, intercom_workspaces=workspaces)


def _read_secret(env: Mapping[str, str], name: str) -> str | None:
    """`NAME` or the Docker-style `NAME_FILE` (a path whose content is the secret)."""
    if env.get(name):
        return env[name].strip()
    file_var = f"{name}_FILE"
    if env.get(file_var):
        path = Path(env[file_var])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{file_var} points to {path}, which cannot be read: {exc.strerror}") from exc
    return None


def _conversation_tag(intercom: Mapping[str, Any], where: str) -> str:
    tag = intercom.get("conversation_tag", DEFAULT_CONVERSATION_TAG)
    if not isinstance(tag, str) or not tag.strip():
        raise ConfigError(f"{where}: intercom.conversation_tag must be a non-empty tag name, got {tag!r}")
    return tag.strip()


def _positive_int(section: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: {key} must be a whole number of at least 1, got {value!r}")
    return value


def _intercom_workspaces(
    tables: Any, env: Mapping[str, str], where: str
) -> tuple[IntercomWorkspace, ...]:
    """`[intercom.workspaces.<name>]` tables, sorted by name, tokens from the environment."""
    if not isinstance(tables, Mapping):
        raise ConfigError(
            f"{where}: intercom.workspaces must be a table of [intercom.workspaces.<name>]"
        )
    out = []
    for raw_name, table in sorted(tables.items()):
        key = f"intercom.workspaces.{raw_name}"
        if not WORKSPACE_NAME.match(raw_name):
            raise ConfigError(
                f"{where}: {key}: a workspace name may use only letters, digits and _"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: {key} must be a table")
        if "access_token" in table:
            raise ConfigError(
                f"{where}: secrets do not belong in the config file; "
                f"use INTERCOM_ACCESS_TOKEN_{raw_name.upper()} (or its _FILE variant)"
            )
        name = raw_name.lower()
        if name == "default":
            raise ConfigError(f"{where}: {key}: 'default' names the [intercom] workspace itself")
        region = str(table.get("region", "us")).lower()
        if region not in INTERCOM_REGION_URLS:
            raise ConfigError(f"{where}: {key}.region must be one of us, eu, au, got {region!r}")
        out.append(
            IntercomWorkspace(
                name=name,
                region=region,
                api_url=str(table.get("api_url") or INTERCOM_REGION_URLS[region]).rstrip("/"),
                app_id=str(table["app_id"]) if table.get("app_id") else None,
                access_token=_read_secret(env, f"INTERCOM_ACCESS_TOKEN_{name.upper()}"),
            )
        )
    if len({w.name for w in out}) != len(out):
        raise ConfigError(f"{where}: intercom.workspaces names differ only in case")
    return tuple(out)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def load(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Build Settings: flags > env > TOML file > defaults.

    `config_file` None means `AUDITKIT_CONFIG` or `./auditkit.toml` when it exists.
    """
    env = os.environ if env is None else env
    if config_file is None:
        if env.get("AUDITKIT_CONFIG"):
            config_file = Path(env["AUDITKIT_CONFIG"])
        elif Path(DEFAULT_CONFIG_FILE).is_file():
            config_file = Path(DEFAULT_CONFIG_FILE)
    doc: dict[str, Any] = load_toml(config_file) if config_file else {}
    where = str(config_file) if config_file else "defaults"

    multimail = doc.get("multimail", {})
    intercom = doc.get("intercom", {})
    harvest = doc.get("harvest", {})
    store = doc.get("store", {})
    if "api_key" in multimail or "access_token" in intercom:
        raise ConfigError(
            f"{where}: secrets do not belong in the config file; "
            "use MULTIMAIL_API_KEY / INTERCOM_ACCESS_TOKEN (or their _FILE variants)"
        )

    region = str(intercom.get("region", "us")).lower()
    if region not in INTERCOM_REGION_URLS:
        raise ConfigError(f"{where}: intercom.region must be one of us, eu, au, got {region!r}")

    workspaces = _intercom_workspaces(intercom.get("workspaces", {}), env, where)
    waivers = doc.get("waivers", [])
    if not isinstance(waivers, list):
        raise ConfigError(f"{where}: waivers must be an array of tables ([[waivers]])")

    settings = Settings(
        db_path=Path(env.get("AUDITKIT_DB") or store.get("path") or "auditkit.duckdb"),
        multimail_api_url=(
            env.get("MULTIMAIL_API_URL") or multimail.get("api_url") or DEFAULT_MULTIMAIL_URL
        ).rstrip("/"),
        multimail_api_key=_read_secret(env, "MULTIMAIL_API_KEY"),
        intercom_api_url=(
            env.get("INTERCOM_API_URL") or intercom.get("api_url") or INTERCOM_REGION_URLS[region]
        ).rstrip("/"),
        intercom_access_token=_read_secret(env, "INTERCOM_ACCESS_TOKEN"),
        intercom_version=str(intercom.get("version", DEFAULT_INTERCOM_VERSION)),
        intercom_app_id=intercom.get("app_id"),
        intercom_workspaces=workspaces,
        intercom_conversation_tag=_conversation_tag(intercom, where),
        concurrency=_positive_int(harvest, "concurrency", where, 16),
        timeout_seconds=float(harvest.get("timeout_seconds", 30.0)),
        max_retries=_positive_int(harvest, "max_retries", where, 6),
        lookback_days=_positive_int(harvest, "lookback_days", where, 7),
        controls=doc.get("controls", {}),
        mailboxes=doc.get("mailboxes", {}),
        classification=doc.get("classification", {}),
        waivers=tuple(waivers),
        company_name=doc.get("company", {}).get("name"),
        config_file=config_file,
    )
    return settings.with_overrides(**flags)
