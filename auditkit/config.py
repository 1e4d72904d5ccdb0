"""Settings: one frozen dataclass loaded from flags > env vars > `auditkit.toml` > defaults.

Validation happens once, when the settings load, and raises ConfigError naming the file
and the dotted key. The file is strict: a table or key auditkit does not know is an error
with the closest known name, because a typo (`[control]` for `[controls]`) would otherwise
silently change compliance results (the check itself is `config_keys.reject_unknown`). The
known keys of each table live next to the code that reads it: here for the tables below, in
`controls.settings`, `classify`, `controls.waivers`, `vocabulary`, `signing.settings` and
`export.settings` for the others, which `load` runs too. Secrets (API keys, tokens) are read
only from the environment, refused in the file, and kept out of repr() and out of
`public_dict()`, which is what runs and packs record. Nothing here talks to the network or
the store.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from auditkit import config_accounts
from auditkit.config_accounts import DEFAULT_ACCOUNT, DEFAULT_MULTIMAIL_URL, Account
from auditkit.config_keys import SECRET_VARIABLES, reject_unknown, table_path
from auditkit.config_values import api_url, memory_size, multimail_api_url
from auditkit.config_values import positive_int as _positive_int
from auditkit.config_values import positive_number as _positive_number
from auditkit.config_values import read_secret as _read_secret
from auditkit.config_values import table as _table
from auditkit.config_values import text as _text
from auditkit.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "auditkit.toml"
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

# The tables of auditkit.toml and the keys of those read in this module. `waivers` is an
# array of tables; `controls`, `mailboxes` and `classification` are read elsewhere (see
# the module docstring).
TOP_LEVEL_TABLES = (
    "multimail",
    "intercom",
    "harvest",
    "store",
    "company",
    "controls",
    "mailboxes",
    "classification",
    "waivers",
    "signing",
    "export",
    "accounts",
)
MULTIMAIL_KEYS = ("api_url",)
INTERCOM_KEYS = ("api_url", "region", "version", "app_id", "conversation_tag", "workspaces")
WORKSPACE_KEYS = ("region", "api_url", "app_id")
HARVEST_KEYS = ("concurrency", "timeout_seconds", "max_retries", "lookback_days")
STORE_KEYS = ("path", "memory_limit", "temp_directory")
COMPANY_KEYS = ("name",)

# The tables `load` reads itself (in this order): their keys, and where a secret found in
# one belongs instead.
_TABLES_READ_HERE = {
    "multimail": (MULTIMAIL_KEYS, "MULTIMAIL_API_KEY (or MULTIMAIL_API_KEY_FILE)"),
    "intercom": (INTERCOM_KEYS, "INTERCOM_ACCESS_TOKEN (or INTERCOM_ACCESS_TOKEN_FILE)"),
    "harvest": (HARVEST_KEYS, SECRET_VARIABLES),
    "store": (STORE_KEYS, SECRET_VARIABLES),
    "company": (COMPANY_KEYS, SECRET_VARIABLES),
}
# The harvester appends /v1 to every MultiMail path itself (sources.multimail).
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
    signing: Mapping[str, Any] = field(default_factory=dict)  # [signing]: tsa_url (no keys)
    export: Mapping[str, Any] = field(default_factory=dict)  # [export]: the Iceberg catalog
    company_name: str | None = None
    config_file: Path | None = None
    # [accounts.NAME] (config_accounts); empty: the one account DEFAULT_ACCOUNT, above.
    accounts: tuple[Account, ...] = ()
    account: str = DEFAULT_ACCOUNT  # this command's (`for_account`): the MultiMail URL/key's
    # DuckDB's memory limit and spill folder ([store]); None: Store's defaults (see there).
    store_memory_limit: str | None = None
    store_temp_directory: Path | None = None

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to record in the store and in packs: no secrets, only whether set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                out[f.name + "_set"] = value is not None
            elif f.name in {"controls", "mailboxes", "classification", "signing", "export"}:
                out[f.name] = dict(value)
            elif f.name == "waivers":
                out[f.name] = [dict(w) for w in value]
            elif f.name in {"intercom_workspaces", "accounts"}:
                out[f.name] = [w.public_dict() for w in value]
            elif isinstance(value, Path):
                out[f.name] = str(value)
            else:
                out[f.name] = value
        return out

    def store_options(self) -> dict[str, Any]:
        """Keyword arguments for `Store(settings.db_path, ...)`: memory limit, temp folder."""
        return {
            "memory_limit": self.store_memory_limit,
            "temp_directory": self.store_temp_directory,
        }

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (CLI flags win over everything)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def multimail_credential(self) -> str:
        """The env var the MultiMail key comes from, as errors name it."""
        return config_accounts.credential_of(self.accounts, self.account)

    def for_account(self, name: str | None) -> Settings:
        """These settings for one account (`--account`; `config_accounts.choose_account`)."""
        chosen = config_accounts.choose_account(
            self.accounts, name, str(self.config_file or "the config")
        )
        if chosen is None:
            return self
        return replace(
            self,
            account=chosen.name,
            multimail_api_url=chosen.api_url,
            multimail_api_key=chosen.api_key,
        )

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


def _conversation_tag(intercom: Mapping[str, Any], where: str) -> str:
    tag = intercom.get("conversation_tag", DEFAULT_CONVERSATION_TAG)
    if not isinstance(tag, str) or not tag.strip():
        raise ConfigError(
            f"{where}: intercom.conversation_tag must be a non-empty tag name, got {tag!r}"
        )
    return tag.strip()


def _region(section: Mapping[str, Any], path: str, where: str) -> str:
    region = section.get("region", "us")
    if not isinstance(region, str) or region.lower() not in INTERCOM_REGION_URLS:
        raise ConfigError(f"{where}: {path}.region must be one of us, eu, au, got {region!r}")
    return region.lower()


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
        key = table_path("intercom.workspaces", raw_name)
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: {key} must be a table")
        try:
            reject_unknown(
                table,
                WORKSPACE_KEYS,
                key,
                secret_variables=f"INTERCOM_ACCESS_TOKEN_{raw_name.upper()} (or its _FILE variant)",
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not WORKSPACE_NAME.match(raw_name):
            raise ConfigError(
                f"{where}: {key}: a workspace name may use only letters, digits and _"
            )
        name = raw_name.lower()
        if name == "default":
            raise ConfigError(f"{where}: {key}: 'default' names the [intercom] workspace itself")
        region = _region(table, key, where)
        url = INTERCOM_REGION_URLS[region]
        if "api_url" in table:
            url = api_url(table["api_url"], f"{where}: {key}.api_url", example=url)
        out.append(
            IntercomWorkspace(
                name=name,
                region=region,
                api_url=url,
                app_id=_text(table, "app_id", key, where),
                access_token=_read_secret(env, f"INTERCOM_ACCESS_TOKEN_{name.upper()}"),
            )
        )
    if len({w.name for w in out}) != len(out):
        raise ConfigError(f"{where}: intercom.workspaces names differ only in case")
    return tuple(out)


def _check_tables_read_elsewhere(settings: Settings, where: str) -> None:
    """Validate [controls], [mailboxes], [classification] and [[waivers]] now, with the
    code that reads them: a typo there must stop every command, not only the first check,
    and a secret must not reach the settings a harvest records."""
    # Imported here: these modules import Settings from this one.
    from auditkit.classify import ClassificationRules
    from auditkit.controls import catalogue
    from auditkit.controls.settings import ControlSettings
    from auditkit.controls.waivers import parse_waivers
    from auditkit.export.settings import check_export_table
    from auditkit.signing.settings import check_signing_table

    try:
        ControlSettings.from_settings(settings)
        ClassificationRules.from_settings(settings)
        parse_waivers(settings.waivers, [c.id for c in catalogue()])
        check_signing_table(settings.signing)
        check_export_table(settings.export)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8; a binary or Latin-1 file is not TOML
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); it is not a TOML file"
        ) from exc


def describe_source(settings: Settings) -> str:
    """One line saying which config file the settings came from, for the CLI to print: a
    user editing one file while auditkit reads another (or none) sees it at once."""
    if settings.config_file is None:
        return f"config: none (no ./{DEFAULT_CONFIG_FILE}; using defaults)"
    return f"config: {settings.config_file.absolute()}"


def load(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Build Settings: flags > env > TOML file > defaults.

    `config_file` None means `AUDITKIT_CONFIG` or `./auditkit.toml` when it exists. Every
    table and key of the file is validated here (see the module docstring).
    """
    env = os.environ if env is None else env
    if config_file is None:
        if env.get("AUDITKIT_CONFIG"):
            config_file = Path(env["AUDITKIT_CONFIG"])
        elif Path(DEFAULT_CONFIG_FILE).is_file():
            config_file = Path(DEFAULT_CONFIG_FILE)
    doc: dict[str, Any] = load_toml(config_file) if config_file else {}
    where = str(config_file) if config_file else "defaults"

    try:
        reject_unknown(doc, TOP_LEVEL_TABLES, "")
        tables = {name: _table(doc, name) for name in _TABLES_READ_HERE}
        for name, (known, credential) in _TABLES_READ_HERE.items():
            reject_unknown(tables[name], known, name, secret_variables=credential)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    multimail, intercom, harvest, store, company = tables.values()

    region = _region(intercom, "intercom", where)
    workspaces = _intercom_workspaces(intercom.get("workspaces", {}), env, where)
    parsed_accounts = config_accounts.parse_accounts(
        doc.get("accounts", {}), env, where, _read_secret, multimail_api_url
    )
    waivers = doc.get("waivers", [])
    if not isinstance(waivers, list):
        raise ConfigError(f"{where}: waivers must be an array of tables ([[waivers]])")

    # Env wins over the file; each value is checked where it came from, and named so.
    if env.get("MULTIMAIL_API_URL"):
        multimail_url = multimail_api_url(env["MULTIMAIL_API_URL"], "MULTIMAIL_API_URL")
    elif "api_url" in multimail:
        multimail_url = multimail_api_url(multimail["api_url"], f"{where}: multimail.api_url")
    else:
        multimail_url = DEFAULT_MULTIMAIL_URL
    if env.get("INTERCOM_API_URL"):
        intercom_url = api_url(
            env["INTERCOM_API_URL"], "INTERCOM_API_URL", example=DEFAULT_INTERCOM_URL
        )
    elif "api_url" in intercom:
        intercom_url = api_url(
            intercom["api_url"], f"{where}: intercom.api_url", example=INTERCOM_REGION_URLS[region]
        )
    else:
        intercom_url = INTERCOM_REGION_URLS[region]

    store_path = _text(store, "path", "store", where)
    temp_directory = _text(store, "temp_directory", "store", where)
    settings = Settings(
        db_path=Path(env.get("AUDITKIT_DB") or store_path or "auditkit.duckdb"),
        multimail_api_url=multimail_url,
        multimail_api_key=_read_secret(env, "MULTIMAIL_API_KEY"),
        intercom_api_url=intercom_url,
        intercom_access_token=_read_secret(env, "INTERCOM_ACCESS_TOKEN"),
        intercom_version=_text(intercom, "version", "intercom", where) or DEFAULT_INTERCOM_VERSION,
        intercom_app_id=_text(intercom, "app_id", "intercom", where),
        intercom_workspaces=workspaces,
        intercom_conversation_tag=_conversation_tag(intercom, where),
        concurrency=_positive_int(harvest, "concurrency", "harvest", where, 16),
        timeout_seconds=_positive_number(harvest, "timeout_seconds", "harvest", where, 30.0),
        max_retries=_positive_int(harvest, "max_retries", "harvest", where, 6),
        lookback_days=_positive_int(harvest, "lookback_days", "harvest", where, 7),
        controls=doc.get("controls", {}),
        mailboxes=doc.get("mailboxes", {}),
        classification=doc.get("classification", {}),
        waivers=tuple(waivers),
        signing=doc.get("signing", {}),
        export=doc.get("export", {}),
        company_name=_text(company, "name", "company", where),
        config_file=config_file,
        accounts=parsed_accounts,
        store_memory_limit=memory_size(store, "memory_limit", "store", where),
        store_temp_directory=Path(temp_directory) if temp_directory else None,
    )
    if config_file is not None:
        _check_tables_read_elsewhere(settings, where)
    return settings.with_overrides(**flags)
