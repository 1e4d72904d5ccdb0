"""Bad input never costs the user: one clear line, a documented exit code, no traceback,
no file of theirs touched (issue 16). Each case was a traceback, a wrong exit code or a
silent success before."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from auditkit import config
from auditkit.cli import cli
from auditkit.errors import SourceAuthError, SourceError
from auditkit.sources.preflight import preflight
from auditkit.store import Store
from tests.conftest import MM_KEY


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- preflight: a wrong endpoint fails at once, naming the cause -------------------------


def _settings(url: str, **kw: Any) -> config.Settings:
    return config.Settings(multimail_api_url=url, multimail_api_key=MM_KEY, **kw)


def test_preflight_names_a_refused_connection() -> None:
    with pytest.raises(SourceError, match="connection refused"):
        preflight(_settings(f"http://127.0.0.1:{_closed_port()}"))


def test_preflight_names_https_against_a_plain_http_server(sandbox: Any) -> None:
    url = sandbox.base_url.replace("http://", "https://")
    with pytest.raises(SourceError, match="TLS handshake failed") as info:
        preflight(_settings(url))
    assert "http://" in str(info.value)


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (401, SourceAuthError, "refused the key in MULTIMAIL_API_KEY (HTTP 401)"),
        (403, SourceAuthError, "HTTP 403"),
        (404, SourceError, "the base URL looks wrong"),
    ],
)
def test_preflight_refusals(status: int, error: type, words: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json={"error": "no"}))
    with pytest.raises(error) as info:
        preflight(_settings("https://api.multimail.example"), transport)
    assert words in str(info.value)
    assert MM_KEY not in str(info.value)


def test_preflight_lets_an_outage_through_to_the_patient_retries() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    preflight(_settings("https://api.multimail.example"), transport)


def test_preflight_checks_each_intercom_workspace_with_a_token() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(401 if "/eu/" in str(request.url) else 200, json={})

    settings = _settings(
        "https://mm.example",
        intercom_api_url="https://ic.example",
        intercom_access_token="ic_tok",
        intercom_workspaces=(
            config.IntercomWorkspace("eu", "eu", "https://ic.example/eu", access_token="ic_eu"),
        ),
    )
    with pytest.raises(SourceAuthError, match="INTERCOM_ACCESS_TOKEN_EU"):
        preflight(settings, httpx.MockTransport(handler))
    assert asked == [
        "https://mm.example/v1/account",
        "https://ic.example/me",
        "https://ic.example/eu/me",
    ]


def test_harvest_against_a_closed_port_fails_fast_and_leaves_no_store(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    env = {"MULTIMAIL_API_KEY": MM_KEY, "MULTIMAIL_API_URL": f"http://127.0.0.1:{_closed_port()}"}
    result = invoke("harvest", "--db", str(db), env=env)
    assert result.exit_code == 4, result.output
    assert "connection refused" in result.output and "max_retries" not in result.output
    assert not db.exists()


def test_harvest_without_a_key_leaves_no_store(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    result = invoke("harvest", "--db", str(db))
    assert result.exit_code == 3 and "MULTIMAIL_API_KEY is not set" in result.output
    assert not db.exists()


# -- exit codes a cron job can trust -------------------------------------------------------


def test_reversed_date_range_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(
        "harvest",
        "--since",
        "2026-09-30",
        "--until",
        "2026-07-01",
        "--db",
        str(tmp_path / "s.duckdb"),
        env={"MULTIMAIL_API_KEY": MM_KEY},
    )
    assert result.exit_code == 2 and "is not before --until" in result.output


def test_unknown_control_is_a_usage_error(tmp_path: Path) -> None:
    Store(tmp_path / "s.duckdb").close()
    result = invoke("check", "--control", "OVS-999", "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 2 and "unknown control 'OVS-999'" in result.output


def test_ctrl_c_exits_130_saying_the_store_is_consistent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def interrupted(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    # The command imports these when it runs (lazily, for start-up), so patch them at home.
    monkeypatch.setattr("auditkit.harvest.harvest", interrupted)
    monkeypatch.setattr("auditkit.sources.preflight.preflight", lambda settings: None)
    result = invoke(
        "harvest", "--db", str(tmp_path / "s.duckdb"), env={"MULTIMAIL_API_KEY": MM_KEY}
    )
    assert result.exit_code == 130
    assert "interrupted: the store is consistent" in result.output
    assert "Aborted" not in result.output


def test_json_failure_prints_a_json_error_and_log_format_json_covers_it(tmp_path: Path) -> None:
    result = invoke(
        "--log-format", "json", "status", "--db", str(tmp_path / "absent.duckdb"), "--json"
    )
    assert result.exit_code == 5
    (log_line,) = result.stderr.splitlines()
    assert json.loads(log_line)["level"] == "error" and json.loads(log_line)["exit_code"] == 5
    stdout = json.loads(result.stdout)
    assert stdout["error"]["exit_code"] == 5 and "does not exist" in stdout["error"]["message"]


# -- import: what the file holds, decoded safely ------------------------------------------


RECORD = {
    "id": "01KX0000000000000000000001",
    "from": "support@northwind.example",
    "to": ["a@example.com"],
    "subject": "Hello",
    "received_at": "2026-05-04T10:00:00Z",
    "status": "read",
    "markdown": "hi",
}


def test_import_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(RECORD).encode()
        + b"\n"
        + json.dumps({**RECORD, "id": "01KX0000000000000000000002"}).encode()
        + b"\n"
    )
    result = invoke("import", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 0, result.output
    assert "imported 2 emails" in result.output


def test_import_reads_one_pretty_printed_record(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(RECORD, indent=2))
    result = invoke("import", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 0 and "imported 1 emails" in result.output


def test_import_refuses_a_binary_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "photo.json"
    path.write_bytes(bytes(range(256)) * 4)
    result = invoke("import", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [
        f"Error: {path} is a binary file, not JSON or JSONL records"
    ]


def test_import_of_nothing_usable_is_not_a_silent_success(tmp_path: Path) -> None:
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"emails": [], "cursor": None}))
    result = invoke("import", str(page), "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 9, result.output
    assert "nothing imported" in result.output and "1 quarantined" in result.output


@pytest.mark.parametrize("data", ["[" * 5000 + "]" * 5000, '{"a": 1}\n' + "[" * 5000 + "]" * 5000])
def test_import_quarantines_json_nested_too_deeply_to_read(tmp_path: Path, data: str) -> None:
    # Python's JSON parser raises RecursionError (not JSONDecodeError) on deep nesting.
    path = tmp_path / "deep.json"
    path.write_text(data, encoding="utf-8")
    result = invoke("import", str(path), "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 9, result.output
    assert "nested too deeply" in result.output and "Traceback" not in result.output


def test_archive_with_no_message_is_not_a_silent_success(tmp_path: Path) -> None:
    Store(tmp_path / "s.duckdb").close()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("harvest-archive", str(empty), "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 9 and "nothing was verified" in result.output


@pytest.mark.parametrize(
    "raw",
    [
        bytes((i * 37 + 11) % 256 for i in range(4000)),
        b"DKIM-Signature: v=1; a=rsa-sha256; b=" + bytes(range(1, 250)) * 6 + b"\r\n"
        b"From: a@northwind.example\r\n\r\nbody\r\n",
    ],
)
def test_a_parser_complaint_about_random_bytes_stays_one_short_line(raw: bytes) -> None:
    from datetime import UTC, datetime

    from auditkit.dkim import verify_message
    from auditkit.dkim_keys import PinnedKeyLookup

    results = verify_message(
        raw, PinnedKeyLookup({}), from_domain=None, reference_time=datetime(2026, 8, 1, tzinfo=UTC)
    )
    for r in results:
        assert r.reason is None or (len(r.reason) <= 260 and r.reason.isprintable()), r.reason


def test_a_period_with_no_outbound_mail_is_not_a_clean_result(tmp_path: Path) -> None:
    Store(tmp_path / "s.duckdb").close()
    result = invoke("check", "--period", "2026Q3", "--db", str(tmp_path / "s.duckdb"))
    assert result.exit_code == 9, result.output
    assert "checked nothing, which is not a clean result" in result.output
    doc = invoke("check", "--period", "2026Q3", "--db", str(tmp_path / "s.duckdb"), "--json")
    assert doc.exit_code == 9 and json.loads(doc.stdout)["outbound_messages"] == 0


def test_commands_say_which_config_file_is_in_use(tmp_path: Path) -> None:
    from auditkit import config as config_module

    assert config_module.describe_source(config.load(config_file=None, env={})).startswith(
        "config: none"
    )
    toml = tmp_path / "auditkit.toml"
    toml.write_text("[company]\nname = 'X'\n")
    assert str(toml) in config_module.describe_source(config.load(config_file=toml, env={}))
    Store(tmp_path / "s.duckdb").close()
    result = invoke(
        "-v",
        "check",
        "--period",
        "2026Q3",
        "--db",
        str(tmp_path / "s.duckdb"),
        "--config",
        str(toml),
    )
    assert f"config: {toml}" in result.stderr
