"""Settings precedence (flag > env > TOML > default), secret handling and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit.config import load
from auditkit.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    s = load(env={})
    assert s.multimail_api_url == "https://api.multimail.dev"
    assert s.intercom_api_url == "https://api.intercom.io"
    assert s.db_path == Path("auditkit.duckdb")
    assert s.multimail_api_key is None
    assert s.concurrency == 16


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "a.toml",
        '[store]\npath = "file.duckdb"\n[multimail]\napi_url = "http://file/"\n',
    )
    s = load(cfg, env={"AUDITKIT_DB": "env.duckdb"})
    assert s.db_path == Path("env.duckdb")
    assert s.multimail_api_url == "http://file"
    s = load(
        cfg,
        env={"AUDITKIT_DB": "env.duckdb", "MULTIMAIL_API_URL": "http://env"},
        db_path=Path("flag.duckdb"),
    )
    assert s.db_path == Path("flag.duckdb")
    assert s.multimail_api_url == "http://env"


def test_intercom_region_picks_host(tmp_path: Path) -> None:
    cfg = write(tmp_path / "a.toml", '[intercom]\nregion = "EU"\n')
    assert load(cfg, env={}).intercom_api_url == "https://api.eu.intercom.io"
    with pytest.raises(ConfigError, match="intercom.region must be one of us, eu, au"):
        load(write(tmp_path / "b.toml", '[intercom]\nregion = "mars"\n'), env={})


def test_conversation_tag_from_the_file(tmp_path: Path) -> None:
    assert load(env={}).intercom_conversation_tag == "intercom_conversation_id"
    cfg = write(tmp_path / "a.toml", '[intercom]\nconversation_tag = "ticket_ref"\n')
    assert load(cfg, env={}).intercom_conversation_tag == "ticket_ref"
    with pytest.raises(ConfigError, match="conversation_tag"):
        load(write(tmp_path / "b.toml", '[intercom]\nconversation_tag = ""\n'), env={})


def test_secrets_hidden_from_repr_and_public_dict() -> None:
    s = load(
        env={"MULTIMAIL_API_KEY": "mm_live_supersecret", "INTERCOM_ACCESS_TOKEN": "tok_supersecret"}
    )
    assert s.multimail_api_key == "mm_live_supersecret"
    assert "supersecret" not in repr(s)
    public = s.public_dict()
    assert "supersecret" not in str(public)
    assert public["multimail_api_key_set"] is True and public["intercom_access_token_set"] is True


def test_secret_from_file_and_unreadable_file(tmp_path: Path) -> None:
    key = write(tmp_path / "key", "mm_live_fromfile\n")
    assert load(env={"MULTIMAIL_API_KEY_FILE": str(key)}).multimail_api_key == "mm_live_fromfile"
    with pytest.raises(ConfigError, match="MULTIMAIL_API_KEY_FILE points to .*missing"):
        load(env={"MULTIMAIL_API_KEY_FILE": str(tmp_path / "missing")})


def test_secret_in_config_file_is_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path / "a.toml", '[multimail]\napi_key = "mm_live_x"\n')
    with pytest.raises(ConfigError, match="secrets do not belong in the config file"):
        load(cfg, env={})


def test_invalid_toml_and_bad_values_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load(write(tmp_path / "bad.toml", "[harvest\n"), env={})
    with pytest.raises(
        ConfigError, match="concurrency must be a whole number of at least 1, got 0"
    ):
        load(write(tmp_path / "zero.toml", "[harvest]\nconcurrency = 0\n"), env={})
    with pytest.raises(ConfigError, match="cannot be read"):
        load(tmp_path / "nope.toml", env={})


def test_config_file_from_env_var(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[company]\nname = "Acme"\n')
    assert load(env={"AUDITKIT_CONFIG": str(cfg)}).company_name == "Acme"


def test_intercom_workspaces_from_toml_with_tokens_from_env(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "w.toml",
        '[intercom]\nregion = "us"\n'
        '[intercom.workspaces.EU]\nregion = "EU"\napp_id = "eu12"\n'
        '[intercom.workspaces.apac]\nregion = "au"\napi_url = "http://proxy.local/au/"\n',
    )
    token_file = write(tmp_path / "au_token", "tok_au_supersecret\n")
    s = load(
        cfg,
        env={
            "INTERCOM_ACCESS_TOKEN_EU": "tok_eu_supersecret",
            "INTERCOM_ACCESS_TOKEN_APAC_FILE": str(token_file),
        },
    )
    assert s.intercom_api_url == "https://api.intercom.io"
    eu, apac = s.intercom_workspace("eu"), s.intercom_workspace("APAC")
    assert eu is not None and apac is not None
    assert (eu.region, eu.api_url, eu.app_id) == ("eu", "https://api.eu.intercom.io", "eu12")
    assert (apac.region, apac.api_url, apac.app_id) == ("au", "http://proxy.local/au", None)
    assert eu.access_token == "tok_eu_supersecret" and apac.access_token == "tok_au_supersecret"
    assert eu.credential == "INTERCOM_ACCESS_TOKEN_EU"
    assert s.intercom_workspace("mars") is None
    assert "supersecret" not in repr(s)
    public = s.public_dict()
    assert "supersecret" not in str(public)
    assert [w["access_token_set"] for w in public["intercom_workspaces"]] == [True, True]
    assert load(cfg, env={}).public_dict()["intercom_workspaces"][0]["access_token_set"] is False


def test_with_intercom_workspace_overrides_one_workspace(tmp_path: Path) -> None:
    cfg = write(tmp_path / "w.toml", '[intercom.workspaces.eu]\nregion = "eu"\n')
    s = load(cfg, env={}).with_intercom_workspace(
        "eu", api_url="http://127.0.0.1:9/eu", access_token="tok"
    )
    eu = s.intercom_workspace("eu")
    assert eu is not None and (eu.api_url, eu.access_token, eu.region) == (
        "http://127.0.0.1:9/eu",
        "tok",
        "eu",
    )
    with pytest.raises(ConfigError, match="no Intercom workspace 'au' is configured"):
        s.with_intercom_workspace("au", access_token="tok")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[intercom.workspaces.eu]\naccess_token = "x"\n', "use INTERCOM_ACCESS_TOKEN_EU"),
        ('[intercom.workspaces.eu]\nregion = "mars"\n', r"intercom.workspaces.eu.region must be"),
        ('[intercom.workspaces."e-u"]\nregion = "eu"\n', "only letters, digits and _"),
        ('[intercom.workspaces.default]\nregion = "eu"\n', "'default' names the"),
        ('[intercom]\nworkspaces = "eu"\n', "intercom.workspaces must be a table"),
        ("[intercom.workspaces]\neu = 1\n", "intercom.workspaces.eu must be a table"),
    ],
)
def test_bad_intercom_workspace_tables_name_the_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path / "bad.toml", toml), env={})
