"""`[accounts.NAME]`: several MultiMail accounts harvested into one store.

Each table names an account (`eu`, `us`…) with its own base URL; its key comes from the
environment only, `MULTIMAIL_API_KEY_<NAME>` (or `MULTIMAIL_API_KEY_<NAME>_FILE`), and
`MULTIMAIL_API_URL_<NAME>` overrides the URL as `MULTIMAIL_API_URL` does for the single
account. Without an `[accounts]` table there is one account, `default`
(`store.accounts.DEFAULT_ACCOUNT`), read from `[multimail]` / `MULTIMAIL_API_KEY` exactly
as before accounts existed. A command picks one with `--account`
(`config.Settings.for_account`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditkit.config_keys import reject_unknown, table_path
from auditkit.errors import ConfigError, UsageError

# The account of a store written before accounts existed, and of every setup without an
# [accounts] table (as `default` names the [intercom] workspace when there are others).
DEFAULT_ACCOUNT = "default"
# Names become env var suffixes (MULTIMAIL_API_KEY_<NAME>) and SQL literals: keep them plain.
ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")

ACCOUNT_KEYS = ("api_url",)
# config.py re-exports it (it imports this module, so the constant lives here).
DEFAULT_MULTIMAIL_URL = "https://api.multimail.dev"


@dataclass(frozen=True)
class Account:
    """One configured MultiMail account; the key never leaves the process."""

    name: str
    api_url: str
    api_key: str | None = field(default=None, repr=False)

    @property
    def credential(self) -> str:
        """The env var holding this account's key (named in errors, never its value)."""
        return f"MULTIMAIL_API_KEY_{self.name.upper()}"

    def public_dict(self) -> dict[str, Any]:
        return {"name": self.name, "api_url": self.api_url, "api_key_set": self.api_key is not None}


def parse_accounts(
    tables: Any,
    env: Mapping[str, str],
    where: str,
    read_secret: Callable[[Mapping[str, str], str], str | None],
    url: Callable[[Any, str], str],
) -> tuple[Account, ...]:
    """`[accounts.<name>]` tables, sorted by name; keys from the environment.

    `read_secret` and `url` are config's own readers (`NAME`/`NAME_FILE`, and the MultiMail
    URL check), passed in so there is one of each."""
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{where}: accounts must be a table of [accounts.<name>] tables")
    out = []
    for raw_name, table in sorted(tables.items()):
        key = table_path("accounts", raw_name)
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: {key} must be a table ([{key}])")
        credential = f"MULTIMAIL_API_KEY_{str(raw_name).upper()}"
        try:
            reject_unknown(
                table, ACCOUNT_KEYS, key, secret_variables=f"{credential} (or {credential}_FILE)"
            )
            name = check_account_name(raw_name, key)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        url_var = f"MULTIMAIL_API_URL_{name.upper()}"
        if env.get(url_var):
            api_url = url(env[url_var], url_var)
        elif "api_url" in table:
            api_url = url(table["api_url"], f"{where}: {key}.api_url")
        else:
            api_url = DEFAULT_MULTIMAIL_URL
        out.append(Account(name, api_url, read_secret(env, f"MULTIMAIL_API_KEY_{name.upper()}")))
    if tables and not out:
        raise ConfigError(f"{where}: [accounts] names no account")
    return tuple(out)


def check_account_name(name: str, where: str = "account") -> str:
    """`name` if it is a usable account name, else ConfigError saying what is allowed."""
    if not ACCOUNT_NAME.match(name):
        raise ConfigError(
            f"{where}: {name!r} is not an account name: use lower-case letters, digits and _ "
            "(at most 63, starting with a letter or digit)"
        )
    return name


def credential_of(accounts: tuple[Account, ...], name: str) -> str:
    """The env var account `name`'s key comes from (MULTIMAIL_API_KEY for `default`)."""
    chosen = next((a for a in accounts if a.name == name), None)
    return "MULTIMAIL_API_KEY" if chosen is None else chosen.credential


def choose_account(accounts: tuple[Account, ...], wanted: str | None, where: str) -> Account | None:
    """The account a command works on: `wanted` (from --account), or the only one configured.

    None means the single `default` account of a setup without `[accounts]`. A name that is
    not configured, or no name where several are, is a UsageError naming the choices."""
    if not accounts:
        if wanted is None or wanted == DEFAULT_ACCOUNT:
            return None
        raise UsageError(
            f"--account {wanted}: {where} has no [accounts.{wanted}] table; without "
            f"[accounts] the store's only account is {DEFAULT_ACCOUNT!r}"
        )
    names = [a.name for a in accounts]
    if wanted is not None:
        try:
            check_account_name(wanted, "--account")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    if wanted is None:
        if len(accounts) == 1:
            return accounts[0]
        raise UsageError(
            f"{where} configures {len(names)} accounts ({', '.join(names)}): "
            "choose one with --account NAME"
        )
    for account in accounts:
        if account.name == wanted:
            return account
    close = difflib.get_close_matches(wanted, names, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise UsageError(
        f"--account {wanted}: no [accounts.{wanted}] table in {where} "
        f"(configured: {', '.join(names)}){hint}"
    )
