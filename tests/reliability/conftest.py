"""Shared harness for the reliability suite: a small sample quarter, a sandbox on a real
socket, and the auditkit CLI run as a separate process (so it can be killed, locked out or
starved of disk exactly as cron would experience it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from auditkit.devtools.tsa import TestPki
from tests.conftest import IC_TOKEN, MM_KEY, SAMPLE_DATA, built_once

CONFIG = SAMPLE_DATA / "auditkit.toml"
# The signing key's password (the key itself is made per session: see Workspace.pki).
SIGNING_PASSWORD = "SECRET_sign1ng_pw_do_not_leak_0e8d"
# The shape of the throw-away keys `demo` invents per process (secrets.token_hex(12)).
DEMO_SECRET_RE = re.compile(rb"(mm|ic)_test_[0-9a-f]{24}")


@pytest.fixture
def dataset_copy(small_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset that a test may edit."""
    dest = tmp_path / "data"
    shutil.copytree(small_dataset, dest)
    return dest


@contextmanager
def running_sandbox(data_dir: Path, **kwargs: object) -> Iterator[object]:
    from auditkit.devtools.sandbox import SandboxServer

    server = SandboxServer(data_dir, api_key=MM_KEY, intercom_token=IC_TOKEN, **kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sandbox_env(server: object) -> dict[str, str]:
    """A child environment whose only route to an API is the sandbox."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUDITKIT_", "MULTIMAIL_", "INTERCOM_")) and "PROXY" not in k.upper()
    }
    url = server.base_url  # type: ignore[attr-defined]
    env.update(
        MULTIMAIL_API_KEY=MM_KEY,
        MULTIMAIL_API_URL=url,
        INTERCOM_ACCESS_TOKEN=IC_TOKEN,
        INTERCOM_API_URL=url,
    )
    return env


def auditkit_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "auditkit", *args]


def run_cli(
    args: list[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        auditkit_argv(*args),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_args(db: Path, out_root: Path, *extra: str, config: Path = CONFIG) -> list[str]:
    return [
        "run",
        "--config",
        str(config),
        "--period",
        "2026Q3",
        "--out",
        str(out_root),
        "--db",
        str(db),
        *extra,
    ]


class Workspace:
    """Every command run once over real sockets, with everything each one printed.

    Built once per test run and shared by every xdist worker (`built_once`): tests read it,
    and copy what they change. `outputs.json` carries each command's output to the workers
    that did not run it."""

    def __init__(self, root: Path, pki: TestPki) -> None:
        self.root = root
        self.db = root / "store.duckdb"
        self.run_db = root / "run.duckdb"
        self.out_root = root / "packs"
        self.report = root / "report-2026Q3"
        self.evidence = root / "evidence"
        self.demo = root / "demo" / "pack"
        self.outputs: dict[str, subprocess.CompletedProcess[str]] = {}
        # A throwaway signer whose key is encrypted with SIGNING_PASSWORD; report, evidence
        # and run sign with it (flags, env, the password from three kinds of place).
        self.pki = pki

    @classmethod
    def create(cls, root: Path) -> Workspace:
        from auditkit.devtools.tsa import make_test_pki

        return cls(root, make_test_pki(root / "pki", key_password=SIGNING_PASSWORD))

    @classmethod
    def load(cls, root: Path) -> Workspace:
        """The workspace `create` and `save` left in `root`."""
        saved = json.loads((root / "outputs.json").read_text(encoding="utf-8"))
        ws = cls(
            root,
            TestPki(**{k: Path(v) for k, v in saved["pki"].items()}, key_password=SIGNING_PASSWORD),
        )
        ws.outputs = {
            label: subprocess.CompletedProcess(**done) for label, done in saved["outputs"].items()
        }
        return ws

    def save(self) -> None:
        pki = {k: str(v) for k, v in vars(self.pki).items() if k != "key_password"}
        outputs = {
            label: {
                "args": done.args,
                "returncode": done.returncode,
                "stdout": done.stdout,
                "stderr": done.stderr,
            }
            for label, done in self.outputs.items()
        }
        (self.root / "outputs.json").write_text(
            json.dumps({"pki": pki, "outputs": outputs}), encoding="utf-8"
        )

    def cli(self, label: str, args: list[str], env: Mapping[str, str], *ok: int) -> None:
        done = run_cli(args, env)
        assert done.returncode in (ok or (0,)), (label, done.returncode, done.stderr[-3000:])
        self.outputs[label] = done

    @property
    def stores(self) -> list[Path]:
        return [self.db, self.run_db, Path(f"{self.demo}.duckdb")]

    @property
    def packs(self) -> list[Path]:
        return [self.report, self.evidence, self.out_root / "2026Q3", self.demo]


@pytest.fixture(scope="session")
def workspace(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """harvest, check, report, evidence, status, run and demo at -vv (text and JSON logs),
    plus a refused key and a few 503s so the error and retry paths log too; report,
    evidence and run sign their packs (report and evidence through a local TSA), and a
    wrong signing password fails, with and without --debug. Run once per test run (about a
    dozen CLI processes), however many workers read it."""
    root = built_once(
        tmp_path_factory, "workspace", lambda folder: build_workspace(folder, small_dataset)
    )
    return Workspace.load(root)


def build_workspace(root: Path, small_dataset: Path) -> None:
    from auditkit.devtools.tsa import TsaServer

    ws = Workspace.create(root)
    password_file = ws.root / "signing-password"
    password_file.write_text(SIGNING_PASSWORD + "\n", encoding="utf-8")
    config = ["--config", str(CONFIG)]
    first_outbound = next(
        rec["id"]
        for rec in map(
            json.loads, (small_dataset / "multimail" / "emails.jsonl").read_text().splitlines()
        )
        if rec.get("direction") == "outbound"
    )
    key, cert = ["--sign-key", str(ws.pki.signer_key)], ["--sign-cert", str(ws.pki.signer_cert)]
    with (
        running_sandbox(small_dataset) as server,
        TsaServer(ws.pki.tsa_cert, ws.pki.tsa_key) as tsa,
    ):
        env = sandbox_env(server)
        server.faults.add(r"/v1/emails/", "503", times=2, retry_after="0")  # type: ignore[attr-defined]
        ws.cli("harvest", ["-vv", "harvest", *config, "--db", str(ws.db), "--json"], env)
        ws.cli(
            "check",
            ["-vv", "check", *config, "--db", str(ws.db), "--period", "2026Q3", "--json"],
            env,
            10,
        )
        ws.cli(
            "report",
            [
                "-vv",
                "report",
                *config,
                "--db",
                str(ws.db),
                "--period",
                "2026Q3",
                "--out",
                str(ws.report),
                *key,
                *cert,
                "--tsa-url",
                tsa.url,
            ],
            {**env, "AUDITKIT_SIGNING_KEY_PASSWORD": SIGNING_PASSWORD},
        )
        ws.cli(
            "evidence",
            [
                "-vv",
                "--log-format",
                "json",
                "evidence",
                first_outbound,
                *config,
                "--db",
                str(ws.db),
                "--out",
                str(ws.evidence),
            ],
            {
                **env,
                "AUDITKIT_SIGNING_KEY_FILE": str(ws.pki.signer_key),
                "AUDITKIT_SIGNING_CERT_FILE": str(ws.pki.signer_cert),
                "AUDITKIT_SIGNING_KEY_PASSWORD_FILE": str(password_file),
                "AUDITKIT_TSA_URL": tsa.url,
            },
        )
        ws.cli("status", ["-vv", "status", *config, "--db", str(ws.db), "--json"], env)
        ws.cli(
            "run",
            [
                "-vv",
                "--log-format",
                "json",
                *run_args(ws.run_db, ws.out_root, "--sign-key-password-env", "PACK_PW"),
                "--json",
            ],
            {
                **env,
                "AUDITKIT_SIGNING_KEY_FILE": str(ws.pki.signer_key),
                "AUDITKIT_SIGNING_CERT_FILE": str(ws.pki.signer_cert),
                "PACK_PW": SIGNING_PASSWORD,
            },
            10,
        )
        wrong = {**env, "AUDITKIT_SIGNING_KEY_PASSWORD": SIGNING_PASSWORD[::-1]}
        for label, debug in (
            ("report-wrong-password", []),
            ("report-wrong-password-debug", ["--debug"]),
        ):
            ws.cli(
                label,
                ["-vv", *debug, "report", *config, "--db", str(ws.db), "--period", "2026Q3"]
                + ["--out", str(ws.root / "never"), *key, *cert],
                wrong,
                1 if debug else 3,
            )
        refused = {**env, "MULTIMAIL_API_KEY": MM_KEY[::-1] + "_wrong_" + MM_KEY}
        ws.cli(
            "harvest-refused",
            ["-vv", "harvest", *config, "--db", str(ws.root / "refused.duckdb")],
            refused,
            4,
        )
        # --debug prints the traceback, locals of the auth path included: still no secret.
        ws.cli(
            "harvest-refused-debug",
            ["-vv", "--debug", "harvest", *config, "--db", str(ws.root / "refused.duckdb")],
            refused,
            1,
        )
    ws.cli(
        "demo",
        ["-vv", "demo", "--data", str(small_dataset), "--out", str(ws.demo), "--json"],
        os.environ,
    )
    ws.save()
