"""Fuzz every command with bad arguments, environments, config files and input files: no
traceback ever, and every exit code is one the README documents (issue 16).

Hypothesis draws a command, a few of its own options with hostile values, hostile positional
arguments (missing, binary, empty, folder, garbage paths), an environment with broken API
URLs, and sometimes a config file that is not TOML or holds unknown keys. It is seeded
(derandomize) and bounded, so `make test` sees the same cases every time. No network: every
URL points at a closed port on 127.0.0.1 or is not a URL at all.
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditkit.cli import cli
from tests.conftest import MM_KEY, ROOT

FUZZ = settings(
    derandomize=True,
    max_examples=160,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# `sandbox` serves until Ctrl-C and `demo` runs the whole job: neither is a quick input check.
COMMANDS = sorted(set(cli.commands) - {"sandbox", "demo"})


def documented_exit_codes() -> set[int]:
    """The README's exit-code table: the contract this test holds every command to."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Exit codes") :]
    table = table[: table.index("\n## ", 1)]
    return {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = _closed_port()
BAD_URLS = [
    "api.multimail.dev",
    "ftp://127.0.0.1/",
    "http://",
    "https://127.0.0.1:0",
    "::::",
    f"http://127.0.0.1:{CLOSED}",
    f"https://127.0.0.1:{CLOSED}/v1",
    "http://127.0.0.1:99999",
    "http://[::1",
    " ",
]
HOSTILE_TEXT = [
    "",
    "-",
    "--",
    "2026Q9",
    "2026-13",
    "2026-09-30..2026-07-01",
    "last-year",
    "OVS-999",
    "../../etc/passwd",
    "é" * 3,
    "x" * 2000,
    "\x1b[31mred",
    "-1",
    "0",
    "99999999999",
    "1e309",
    "nan",
    "=cmd|' /C calc'!A0",
    "jane@",
    "@",
    "01KX",
    "NULL",
]
FILE_KINDS = ["missing", "binary", "empty", "folder", "bom_jsonl", "not_json", "deep_json", "store"]
CONFIGS = [
    None,
    "this is [not toml",
    "[control]\nreviewers = ['a@b']\n",
    "[harvest]\napi_key = 'mm_live_oops'\n",
    "[harvest]\nconcurrency = -3\ntimeout_seconds = 'soon'\n",
    "[intercom]\nregion = 'mars'\n",
    "[controls.audit_actions]\napproved = { metadata = { a = 1 } }\n",
    "[[waivers]]\ncontrol = 'OVS-999'\n",
    "\x00\x01\x02",
]


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty store: commands get past "no store" to their own input handling."""
    from auditkit.store import Store

    path = tmp_path_factory.mktemp("fuzz") / "empty.duckdb"
    Store(path).close()
    return path


def _make_file(root: Path, kind: str, n: int, empty_store: Path) -> str:
    path = root / f"input{n}"
    if kind == "missing":
        return str(path / "absent.json")
    if kind == "store":
        shutil.copy(empty_store, path)
        return str(path)
    if kind == "folder":
        path.mkdir()
        return str(path)
    data = {
        "binary": bytes(range(256)) * 8,
        "empty": b"",
        "bom_jsonl": b'\xef\xbb\xbf{"id": "x"}\n',
        "not_json": b"From: a@b\r\n\r\nhello\r\n",
        "deep_json": b"[" * 5000 + b"]" * 5000,
    }[kind]
    path.write_bytes(data)
    return str(path)


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and "--help" not in p.opts]


def _value_for(option: click.Option) -> st.SearchStrategy[str]:
    """Half the time a value the option's type accepts (so the command gets past click and
    meets its own checks), else something hostile."""
    kind = option.type
    plausible: list[str] = ["2026Q3", "last-quarter", "2026-07-01", "1", "OVS-001"]
    if isinstance(kind, click.Choice):
        plausible = [str(c) for c in kind.choices]
    elif isinstance(kind, click.IntRange | click.FloatRange):
        plausible = [str(kind.min if kind.min is not None else 1), "2"]
    elif isinstance(kind, click.DateTime):
        plausible = ["2026-07-01", "2026-09-30"]
    elif isinstance(kind, click.Path):
        plausible = ["@FILE"]
    return st.sampled_from(plausible) | st.sampled_from(HOSTILE_TEXT + ["@FILE"])


@st.composite
def invocations(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(COMMANDS))
    command = cli.commands[name]
    options = _options(command)
    chosen = (
        draw(st.lists(st.sampled_from(options), max_size=3, unique_by=lambda o: o.name))
        if options
        else []
    )
    values = {o.opts[0]: None if o.is_flag else draw(_value_for(o)) for o in chosen}
    takes_arguments = any(isinstance(p, click.Argument) for p in command.params)
    positional = draw(
        st.lists(
            st.sampled_from(FILE_KINDS + HOSTILE_TEXT[:8]),
            min_size=1 if takes_arguments else 0,
            max_size=2 if takes_arguments else 1,
        )
    )
    # Mostly a well-formed URL of a closed port, so commands get past the settings.
    reachable_form = f"http://127.0.0.1:{CLOSED}"
    env = {
        "MULTIMAIL_API_URL": draw(st.sampled_from([reachable_form] * 3 + BAD_URLS)),
        "INTERCOM_API_URL": draw(st.sampled_from([reachable_form] * 3 + BAD_URLS)),
    }
    if draw(st.booleans()):
        env["MULTIMAIL_API_KEY"] = MM_KEY
    return {
        "name": name,
        "values": values,
        "positional": positional,
        "env": env,
        "config": draw(st.sampled_from([None] * 4 + CONFIGS)),
        "db": draw(st.sampled_from(["store", "store", *FILE_KINDS])),
    }


# report, evidence and run render a PDF when a drawn invocation is valid enough.
@pytest.mark.pdf
@FUZZ
@given(case=invocations())
def test_no_command_ever_shows_a_traceback(case: dict[str, Any], empty_store: Path) -> None:
    codes = documented_exit_codes()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        args: list[str] = [case["name"]]
        for n, (flag, value) in enumerate(case["values"].items()):
            args.append(flag)
            if value is not None:
                args.append(
                    _make_file(root, "binary", 100 + n, empty_store) if value == "@FILE" else value
                )
        for n, item in enumerate(case["positional"]):
            args.append(_make_file(root, item, n, empty_store) if item in FILE_KINDS else item)
        params = {p.name for p in cli.commands[case["name"]].params}
        if "db_path" in params and "--db" not in case["values"]:
            args += [
                "--db",
                _make_file(root, case["db"], 50, empty_store)
                if case["db"] != "missing"
                else str(root / "store.duckdb"),
            ]
        if "config_file" in params and case["config"] is not None:
            config = root / "auditkit.toml"
            config.write_bytes(case["config"].encode("utf-8", "surrogateescape"))
            args += ["--config", str(config)]
        if "out_dir" in params and "--out" not in case["values"]:
            args += ["--out", str(root / "pack")]
        result = CliRunner().invoke(cli, args, env=case["env"], catch_exceptions=True)
    output = result.output
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"{args}: {type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in output, args
    assert result.exit_code in codes, f"{args} exited {result.exit_code}: {output[-500:]}"
    assert MM_KEY not in output
