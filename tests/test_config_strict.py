"""A strict auditkit.toml: unknown tables and keys, secrets anywhere, value types, API URLs,
and which config file is in use (issue 16: bad input never costs the user)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from auditkit.config import describe_source, load
from auditkit.config_keys import looks_secret
from auditkit.errors import ConfigError

SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "sample_data" / "auditkit.toml"
WAIVER = (
    '[[waivers]]\ncontrol = "OVS-002"\ntarget = "late"\njustification = "clock skew"\n'
    'approver = "cfo@northwind.example"\nexpires = 2026-12-31\n'
)


def load_text(tmp_path: Path, text: str, **env: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "auditkit.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, env=env)


def refused(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, **env)
    return str(info.value)


# -- unknown tables and keys --------------------------------------------------------------------


def test_the_issue_typo_control_for_controls_names_file_and_fix(tmp_path: Path) -> None:
    message = refused(tmp_path, '[control]\nreviewers = ["alice@northwind.example"]\n')
    assert (
        message
        == f"{tmp_path / 'auditkit.toml'}: unknown table [control]; did you mean [controls]?"
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[harvest]\nconcurency = 4\n",
            "harvest.concurency is not a setting; did you mean harvest.concurrency?",
        ),
        (
            '[multimail]\napi_ur = "https://x.dev"\n',
            "multimail.api_ur is not a setting; did you mean multimail.api_url?",
        ),
        (
            '[intercom]\nregoin = "eu"\n',
            "intercom.regoin is not a setting; did you mean intercom.region?",
        ),
        (
            '[intercom.workspaces.eu]\nregion = "eu"\nap_id = "x"\n',
            "intercom.workspaces.eu.ap_id is not a setting; "
            "did you mean intercom.workspaces.eu.app_id?",
        ),
        (
            '[intercom.workspace.eu]\nregion = "eu"\n',
            "unknown table [intercom.workspace]; did you mean [intercom.workspaces]?",
        ),
        ('[store]\npth = "x.duckdb"\n', "store.pth is not a setting; did you mean store.path?"),
        ('[company]\nnme = "Acme"\n', "company.nme is not a setting; did you mean company.name?"),
        (
            '[controls]\nreviewer = ["a@x.example"]\n',
            "controls.reviewer is not a setting; did you mean controls.reviewers?",
        ),
        (
            '[controls.audit_actions]\napproove = "x"\n',
            "controls.audit_actions.approove is not a meaning; "
            "did you mean controls.audit_actions.approved?",
        ),
        (
            '[controls.audit_action]\napproved = "x"\n',
            "unknown table [controls.audit_action]; did you mean [controls.audit_actions]?",
        ),
        (
            '[mailboxes."a@x.example"]\nrequire_conversaton_link = true\n',
            'mailboxes."a@x.example".require_conversaton_link is not a mailbox setting; '
            'did you mean mailboxes."a@x.example".require_conversation_link?',
        ),
        (
            '[classification]\ndefault = "auto"\n',
            "classification.default is not a setting; did you mean classification.default_policy?",
        ),
        (
            WAIVER.replace("expires", "expiry"),
            "waivers[0].expiry is not a waiver field; did you mean waivers[0].expires?",
        ),
        (
            WAIVER.replace("[[waivers]]", "[[waiver]]"),
            "unknown table [[waiver]]; did you mean [[waivers]]?",
        ),
        (
            WAIVER.replace('"OVS-002"', '"OVS-02"'),
            "waivers[0].control: unknown control id 'OVS-02'; did you mean OVS-002?",
        ),
        (
            "[random]\nfoo = 1\n",
            "unknown table [random]; known: [accounts], [classification], [company], [controls]",
        ),
        (
            'name = "Acme"\n',
            "name is not a setting; known: [accounts], [classification], [company]",
        ),
        (
            "[harvest]\nzzz = 1\n",
            "harvest.zzz is not a setting; known: harvest.concurrency, harvest.lookback_days",
        ),
    ],
)
def test_every_unknown_table_or_key_is_an_error_with_the_closest_name(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert refused(tmp_path, toml).startswith(f"{tmp_path / 'auditkit.toml'}: {expected}")


def test_unknown_keys_in_tables_read_by_controls_fail_every_command_at_load(tmp_path: Path) -> None:
    # Not only when a check first reads [controls]: `harvest` loads settings too, and records them.
    with pytest.raises(ConfigError, match=r"controls\.pending_limit is not a setting"):
        load_text(tmp_path, "[controls]\npending_limit = 24\n")


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "path", "variable"),
    [
        (
            '[harvest]\napi_key = "mm_live_leak"\n',
            "harvest.api_key",
            "MULTIMAIL_API_KEY / INTERCOM_ACCESS_TOKEN",
        ),
        ('[multimail]\napi_key = "mm_live_leak"\n', "multimail.api_key", "MULTIMAIL_API_KEY"),
        ('[multimail]\nkey = "mm_live_leak"\n', "multimail.key", "MULTIMAIL_API_KEY"),
        (
            '[intercom]\naccess_token = "mm_live_leak"\n',
            "intercom.access_token",
            "INTERCOM_ACCESS_TOKEN",
        ),
        (
            '[intercom.workspaces.eu]\ntoken = "mm_live_leak"\n',
            "intercom.workspaces.eu.token",
            "INTERCOM_ACCESS_TOKEN_EU",
        ),
        ('api_key = "mm_live_leak"\n', "api_key", "MULTIMAIL_API_KEY"),
        ('[multimial]\napi_key = "mm_live_leak"\n', "multimial.api_key", "MULTIMAIL_API_KEY"),
        ('[store]\npassword = "mm_live_leak"\n', "store.password", "MULTIMAIL_API_KEY"),
        ('[company]\nprivate_key = "mm_live_leak"\n', "company.private_key", "MULTIMAIL_API_KEY"),
        (
            '[controls]\nclient_secret = "mm_live_leak"\n',
            "controls.client_secret",
            "MULTIMAIL_API_KEY",
        ),
        (
            '[controls.audit_actions]\napi_token = "mm_live_leak"\n',
            "controls.audit_actions.api_token",
            "MULTIMAIL_API_KEY",
        ),
        (
            '[mailboxes."a@x.example"]\nsmtp_password = "mm_live_leak"\n',
            'mailboxes."a@x.example".smtp_password',
            "MULTIMAIL_API_KEY",
        ),
        (
            '[classification]\nsecret = "mm_live_leak"\n',
            "classification.secret",
            "MULTIMAIL_API_KEY",
        ),
        (
            WAIVER + 'access_token = "mm_live_leak"\n',
            "waivers[0].access_token",
            "MULTIMAIL_API_KEY",
        ),
    ],
)
def test_a_secret_looking_key_anywhere_is_refused_without_echoing_it(
    tmp_path: Path, toml: str, path: str, variable: str
) -> None:
    message = refused(tmp_path, toml)
    assert f"{path}: secrets do not belong in the config file" in message
    assert f"use {variable}" in message
    assert "mm_live_leak" not in message


def test_the_issue_api_key_under_harvest_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, '[harvest]\nconcurrency = 4\napi_key = "mm_live_x"\n')
    assert re.search(
        r"harvest\.api_key: secrets do not belong in the config file; .*MULTIMAIL_API_KEY", message
    )


def test_known_keys_that_mention_key_are_meanings_not_secrets(tmp_path: Path) -> None:
    settings = load_text(
        tmp_path,
        "[controls.audit_actions]\n"
        'key_created = "api_key.created"\nkey_updated = "api_key.updated"\n'
        'key_revoked = "api_key.revoked"\n',
    )
    assert set(settings.controls["audit_actions"]) == {"key_created", "key_updated", "key_revoked"}
    assert not looks_secret("key_created") and not looks_secret("conversation_tag")
    assert all(
        looks_secret(k)
        for k in ("api_key", "token", "access_token", "Client-Secret", "private_key")
    )


# -- types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[harvest]\ntimeout_seconds = "30"\n',
            "harvest.timeout_seconds must be a positive number, got '30'",
        ),
        (
            "[harvest]\ntimeout_seconds = 0\n",
            "harvest.timeout_seconds must be a positive number, got 0",
        ),
        (
            "[harvest]\ntimeout_seconds = -1.5\n",
            "harvest.timeout_seconds must be a positive number",
        ),
        (
            "[harvest]\ntimeout_seconds = true\n",
            "harvest.timeout_seconds must be a positive number",
        ),
        ("[harvest]\ntimeout_seconds = nan\n", "harvest.timeout_seconds must be a positive number"),
        (
            "[harvest]\nmax_retries = 0\n",
            "harvest.max_retries must be a whole number of at least 1",
        ),
        ("[company]\nname = 5\n", "company.name must be a non-empty string, got 5"),
        ('[company]\nname = ""\n', "company.name must be a non-empty string"),
        ('[store]\npath = ""\n', "store.path must be a non-empty string"),
        ("[intercom]\nversion = 2.14\n", "intercom.version must be a non-empty string, got 2.14"),
        ("[intercom]\napp_id = 42\n", "intercom.app_id must be a non-empty string, got 42"),
        ("[intercom]\nregion = 1\n", "intercom.region must be one of us, eu, au, got 1"),
        (
            "[intercom.workspaces.eu]\napp_id = 7\n",
            "intercom.workspaces.eu.app_id must be a non-empty string",
        ),
        ('harvest = "fast"\n', "harvest must be a table ([harvest]), got 'fast'"),
    ],
)
def test_values_have_the_right_type(tmp_path: Path, toml: str, expected: str) -> None:
    assert expected in refused(tmp_path, toml)


def test_timeout_is_any_positive_number_of_seconds_and_nothing_else(tmp_path: Path) -> None:
    assert load_text(tmp_path, "[harvest]\ntimeout_seconds = 2\n").timeout_seconds == 2.0
    assert load_text(tmp_path, "[harvest]\ntimeout_seconds = 0.5\n").timeout_seconds == 0.5
    # Before: float("30") quietly accepted a string, float(-1) a negative timeout.
    for bad in ('"30"', "-1"):
        with pytest.raises(ConfigError, match="harvest.timeout_seconds must be a positive number"):
            load_text(tmp_path, f"[harvest]\ntimeout_seconds = {bad}\n")


# -- API URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "api.multimail.dev",
        "ftp://api.multimail.dev",
        "https://",
        "not a url",
        "https://api.multimail.dev:99999",
        "https://api.multimail.dev/?x=1",
        "http://[::1",
        "https://[zz]/",
        "https://127.0.0.1:0",
        "::::",
    ],
)
@pytest.mark.parametrize("variable", ["MULTIMAIL_API_URL", "INTERCOM_API_URL"])
def test_a_bad_url_in_the_environment_names_the_variable_and_value(
    tmp_path: Path, variable: str, bad: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(env={variable: bad})
    assert str(info.value).startswith(f"{variable} must be")
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("variable", ["MULTIMAIL_API_URL", "INTERCOM_API_URL"])
def test_a_url_carrying_credentials_is_refused_without_echoing_them(variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(env={variable: "https://robot:hunter2@api.example"})
    assert str(info.value).startswith(f"{variable} must not carry a user name or password")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("toml", "key", "bad"),
    [
        ('[multimail]\napi_url = "api.multimail.dev"\n', "multimail.api_url", "api.multimail.dev"),
        ('[multimail]\napi_url = ""\n', "multimail.api_url", ""),
        ("[multimail]\napi_url = 443\n", "multimail.api_url", 443),
        (
            '[intercom]\napi_url = "ftp://api.intercom.io"\n',
            "intercom.api_url",
            "ftp://api.intercom.io",
        ),
        (
            '[intercom.workspaces.eu]\napi_url = "eu.intercom.io"\n',
            "intercom.workspaces.eu.api_url",
            "eu.intercom.io",
        ),
    ],
)
def test_a_bad_url_in_the_file_names_the_key_and_value(
    tmp_path: Path, toml: str, key: str, bad: object
) -> None:
    message = refused(tmp_path, toml)
    assert message.startswith(f"{tmp_path / 'auditkit.toml'}: {key} must be an http or https URL")
    assert message.endswith(f"got {bad!r}")


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("https://api.multimail.dev/v1", "https://api.multimail.dev"),
        ("https://api.multimail.dev/v1/", "https://api.multimail.dev"),
        ("http://127.0.0.1:8080/mm/V1", "http://127.0.0.1:8080/mm"),
    ],
)
def test_a_multimail_url_ending_in_v1_is_taken_as_the_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, given: str, used: str
) -> None:
    # The harvester's paths start with /v1: keeping it would request /v1/v1/account (404).
    with caplog.at_level(logging.INFO, logger="auditkit.config"):
        assert load(env={"MULTIMAIL_API_URL": given}).multimail_api_url == used
    assert (
        f"MULTIMAIL_API_URL ends in /v1, which auditkit adds to every path itself; using {used}"
        in caplog.text
    )
    from_file = load_text(tmp_path, f'[multimail]\napi_url = "{given}"\n')
    assert from_file.multimail_api_url == used


def test_good_urls_load_unchanged_and_bad_ones_do_not(tmp_path: Path) -> None:
    settings = load(
        env={
            "MULTIMAIL_API_URL": "http://127.0.0.1:9/",
            "INTERCOM_API_URL": "https://proxy.local/ic/",
        }
    )
    assert settings.multimail_api_url == "http://127.0.0.1:9"
    assert settings.intercom_api_url == "https://proxy.local/ic"
    # A host that merely contains v1 is not a version suffix.
    assert load(env={"MULTIMAIL_API_URL": "https://v1"}).multimail_api_url == "https://v1"
    with pytest.raises(ConfigError, match="MULTIMAIL_API_URL must be"):
        load(env={"MULTIMAIL_API_URL": "api.multimail.dev"})


# -- which file -------------------------------------------------------------------------------


def test_describe_source_names_the_file_in_use_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert describe_source(load(env={})) == "config: none (no ./auditkit.toml; using defaults)"
    (tmp_path / "auditkit.toml").write_text('[company]\nname = "Acme"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # Found in the working directory, named with its absolute path.
    assert describe_source(load(env={})) == f"config: {tmp_path / 'auditkit.toml'}"
    other = tmp_path / "elsewhere.toml"
    other.write_text("", encoding="utf-8")
    assert describe_source(load(env={"AUDITKIT_CONFIG": str(other)})) == f"config: {other}"
    assert describe_source(load(Path("elsewhere.toml"), env={})) == f"config: {other}"


def test_the_demo_config_still_loads_and_is_named() -> None:
    settings = load(SAMPLE_CONFIG, env={})
    assert settings.company_name == "Northwind Supply Co."
    assert len(settings.controls["reviewers"]) == 4
    assert describe_source(settings) == f"config: {SAMPLE_CONFIG}"
