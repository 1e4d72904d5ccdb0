"""`[accounts.NAME]` in auditkit.toml and `--account` (issue 15): strict like the rest of the
file, keys only from the environment, and no [accounts] table means exactly what it meant
before accounts existed."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit.config import DEFAULT_MULTIMAIL_URL, load
from auditkit.errors import ConfigError, UsageError

TWO = '[accounts.eu]\napi_url = "https://eu.multimail.example"\n\n[accounts.us]\n'


def load_text(tmp_path: Path, text: str, **env: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "auditkit.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, env=env)


def test_without_accounts_the_one_account_is_default_read_as_before(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path, '[multimail]\napi_url = "https://mm.example"\n', MULTIMAIL_API_KEY="k1"
    )
    assert settings.accounts == ()
    chosen = settings.for_account(None)
    assert chosen is settings
    assert (chosen.account, chosen.multimail_api_url, chosen.multimail_api_key) == (
        "default",
        "https://mm.example",
        "k1",
    )
    assert settings.for_account("default") is settings
    assert settings.multimail_credential == "MULTIMAIL_API_KEY"


def test_each_account_has_its_own_url_and_key_variable(tmp_path: Path) -> None:
    key_file = tmp_path / "us.key"
    key_file.write_text("us-secret\n", encoding="utf-8")
    settings = load_text(
        tmp_path,
        TWO,
        MULTIMAIL_API_KEY="single",
        MULTIMAIL_API_KEY_EU="eu-secret",
        MULTIMAIL_API_KEY_US_FILE=str(key_file),
        MULTIMAIL_API_URL_US="https://us.multimail.example/v1",
    )
    eu, us = settings.for_account("eu"), settings.for_account("us")
    assert (eu.account, eu.multimail_api_url, eu.multimail_api_key) == (
        "eu",
        "https://eu.multimail.example",
        "eu-secret",
    )
    # The env var wins over the file; /v1 is the API root, as for MULTIMAIL_API_URL.
    assert (us.account, us.multimail_api_url, us.multimail_api_key) == (
        "us",
        "https://us.multimail.example",
        "us-secret",
    )
    assert eu.multimail_credential == "MULTIMAIL_API_KEY_EU"
    assert "eu-secret" not in repr(settings) and "us-secret" not in str(settings.public_dict())
    assert settings.public_dict()["accounts"] == [
        {"name": "eu", "api_url": "https://eu.multimail.example", "api_key_set": True},
        {"name": "us", "api_url": "https://us.multimail.example", "api_key_set": True},
    ]


def test_an_account_without_api_url_uses_the_default_url(tmp_path: Path) -> None:
    settings = load_text(tmp_path, "[accounts.only]\n")
    only = settings.for_account(None)  # the one configured: no --account needed
    assert (only.account, only.multimail_api_url, only.multimail_api_key) == (
        "only",
        DEFAULT_MULTIMAIL_URL,
        None,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[accounts.eu]\napi_ur = "https://x.example"\n',
            "accounts.eu.api_ur is not a setting; did you mean accounts.eu.api_url?",
        ),
        (
            '[accounts.eu]\napi_key = "mm_live_x"\n',
            "accounts.eu.api_key: secrets do not belong in the config file; remove it and use "
            "MULTIMAIL_API_KEY_EU (or MULTIMAIL_API_KEY_EU_FILE)",
        ),
        ("[acounts.eu]\n", "unknown table [acounts]; did you mean [accounts]?"),
        ('accounts = "eu"\n', "accounts must be a table of [accounts.<name>] tables"),
        ("[accounts.EU]\n", "'EU' is not an account name"),
        ('[accounts.eu]\napi_url = "ftp://x"\n', "accounts.eu.api_url must be an http or https"),
    ],
)
def test_account_tables_are_strict(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert expected in str(info.value)
    assert str(tmp_path / "auditkit.toml") in str(info.value)


def test_choosing_an_account(tmp_path: Path) -> None:
    settings = load_text(tmp_path, TWO)
    with pytest.raises(UsageError, match=r"configures 2 accounts \(eu, us\): choose one"):
        settings.for_account(None)
    with pytest.raises(
        UsageError, match=r"no \[accounts.eur\] .*\(configured: eu, us\); did you mean eu\?"
    ):
        settings.for_account("eur")
    with pytest.raises(UsageError, match="not an account name"):
        settings.for_account("E U")
    single = load_text(tmp_path, "")
    with pytest.raises(UsageError, match="only account is 'default'"):
        single.for_account("eu")
