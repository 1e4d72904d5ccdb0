"""Fault runs of `auditkit run` as cron would see them: SIGKILL mid-harvest and mid-report,
disk full while writing the pack, a store held by another process, a corrupt store, and two
overlapping runs. Every run is a separate process against the sandbox on a real socket."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from auditkit.pack import verify_pack
from tests.reliability.conftest import (
    auditkit_argv,
    run_args,
    run_cli,
    running_sandbox,
    sandbox_env,
)

PERIOD = "2026Q3"
EXIT_STORE, EXIT_REPORT, EXIT_LOCKED, EXIT_FAILED_CONTROLS = 5, 6, 8, 10
# Values that depend on when the harvest ran, not on the data: ISO times on the wall-clock
# date, run ids (20261126T015940Z-9e2efc23), and the `data_as_of` stamp.
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
HARVEST_TIME_COLUMNS = ("run_id", "harvested_at")


def _wall_clock_iso() -> re.Pattern[str]:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    return re.compile(today + r"[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|\+00:00)?")


def harvest_time_free(name: str, data: bytes) -> bytes:
    """The file with every legitimately harvest-time-dependent value masked."""
    if name == "audit_log.csv":
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        drop = {rows[0].index(c) for c in HARVEST_TIME_COLUMNS}
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(
            [c for i, c in enumerate(r) if i not in drop] for r in rows
        )
        return out.getvalue().encode()
    text = data.decode("utf-8")
    text = RUN_ID.sub("<run>", _wall_clock_iso().sub("<harvest-time>", text))
    if name == "manifest.json":
        manifest = json.loads(text)
        manifest["files"] = [f["path"] for f in manifest["files"]]  # hashes cover masked values
        text = json.dumps(manifest, sort_keys=True)
    if name == "assessment-results.json":
        doc = json.loads(text)
        results = doc["assessment-results"]
        results["uuid"] = "<content digest>"  # a digest of the content, file hashes included
        for resource in results["back-matter"]["resources"]:  # as the manifest's files
            resource["props"] = resource["rlinks"] = "<size and hash of a masked file>"
        text = json.dumps(doc, sort_keys=True)
    return text.encode()


# A row of the report's "harvest runs" provenance table (after masking). The pack documents
# every harvest the store has seen, so a store that lived through killed runs legitimately
# lists more rows than a clean one.
HARVEST_RUN_ROW = re.compile(
    r'^\s*<tr><td class="mono"><run></td><td>harvest</td><td><harvest-time></td>'
    r"<td>(<harvest-time>)?</td><td>(\w+)</td></tr>\n",
    re.M,
)


def harvest_run_rows(html: bytes) -> list[str]:
    return [
        m.group(2)
        for m in HARVEST_RUN_ROW.finditer(harvest_time_free("report.html", html).decode())
    ]


def pack_files(pack: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(pack.iterdir())}


def assert_same_pack_modulo_harvest_time(pack: Path, reference: Path) -> dict[str, str]:
    """Byte-identical where the data decides; equal after masking harvest-time values elsewhere.
    Returns how each file compared, for RESULTS.md."""
    got, want = pack_files(pack), pack_files(reference)
    assert sorted(got) == sorted(want)
    how = {}
    for name in sorted(want):
        if name == "report.pdf":
            assert got[name].startswith(b"%PDF-")
            how[name] = "valid PDF (layout of the HTML compared below)"
            continue
        if got[name] == want[name]:
            how[name] = "byte-identical"
            continue
        masked_got, masked_want = (
            harvest_time_free(name, got[name]),
            harvest_time_free(name, want[name]),
        )
        if name == "report.html" and masked_got != masked_want:
            masked_got = HARVEST_RUN_ROW.sub("", masked_got.decode()).encode()
            masked_want = HARVEST_RUN_ROW.sub("", masked_want.decode()).encode()
            how[name] = "identical after masking harvest time and the harvest-runs history rows"
        else:
            how[name] = "identical after masking harvest time"
        assert masked_got == masked_want, name
    return how


def assert_no_stage_siblings(out_root: Path) -> None:
    leftovers = sorted(p.name for p in out_root.iterdir() if p.name.startswith(f".{PERIOD}."))
    assert leftovers == [], f"temporary pack folders left next to the pack: {leftovers}"


@pytest.fixture(scope="module")
def clean_run(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One undisturbed run: (store, pack) that fault runs are compared with."""
    root = tmp_path_factory.mktemp("clean")
    with running_sandbox(small_dataset) as server:
        r = run_cli(run_args(root / "store.duckdb", root / "out"), sandbox_env(server))
    assert r.returncode == EXIT_FAILED_CONTROLS, r.stderr
    pack = root / "out" / PERIOD
    assert verify_pack(pack).ok
    return root / "store.duckdb", pack


def _wait(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"run ended (rc {proc.returncode}) before the kill point"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.002)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _staging(out_root: Path) -> bool:
    return any(p.name.startswith(f".{PERIOD}.partial-") for p in out_root.iterdir())


class KilledRuns:
    """Three runs SIGKILLed at different points over one store and output root, then a rerun."""

    def __init__(self, out_root: Path, clean_pack: Path) -> None:
        self.out_root = out_root
        self.clean_pack = clean_pack
        self.kills: list[str] = []
        self.previous_intact_after_each_kill: list[bool] = []
        self.rerun: subprocess.CompletedProcess[str] | None = None

    @property
    def pack(self) -> Path:
        return self.out_root / PERIOD


@pytest.fixture(scope="module")
def killed_runs(
    small_dataset: Path, clean_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> KilledRuns:
    _, clean_pack = clean_run
    root = tmp_path_factory.mktemp("killed")
    db, out_root = root / "store.duckdb", root / "out"
    out_root.mkdir()
    runs = KilledRuns(out_root, clean_pack)
    shutil.copytree(clean_pack, runs.pack)  # last quarter's run left a good pack here
    previous_bytes = pack_files(runs.pack)
    with running_sandbox(small_dataset) as server:
        env = sandbox_env(server)
        # The harvest kills wait on requests the sandbox holds unanswered (faults.hold), so
        # the run cannot get past them on any machine. The report
        # kill waits for the pack's staging folder, which exists for the whole PDF render.
        kill_points: list[tuple[str, str | None, Callable[[], bool]]] = [
            (
                "harvest: read_email details held",
                r"^/v1/mailboxes/[^/]+/emails/[^/]+$",
                lambda: server.requests.count("detail") >= 1,
            ),
            (
                "harvest: Intercom enrichment held",
                r"/conversations/",
                lambda: server.requests.count("intercom_conversation") >= 1,
            ),
            ("report: pack staging folder exists", None, lambda: _staging(out_root)),
        ]
        for label, held, reached in kill_points:
            server.requests.clear()
            if held is not None:
                server.faults.hold(held)
            proc = subprocess.Popen(
                auditkit_argv(*run_args(db, out_root)),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait(reached, proc)
            _kill(proc)
            server.faults.clear()
            runs.kills.append(label)
            runs.previous_intact_after_each_kill.append(
                pack_files(runs.pack) == previous_bytes and verify_pack(runs.pack).ok
            )
        runs.rerun = run_cli(run_args(db, out_root), env)
    return runs


@pytest.mark.slow
def test_sigkill_mid_harvest_and_mid_report_then_rerun(killed_runs: KilledRuns) -> None:
    # After every kill the previous pack was untouched: nothing half-written at the final path.
    assert killed_runs.previous_intact_after_each_kill == [True, True, True], killed_runs.kills
    rerun = killed_runs.rerun
    assert rerun is not None and rerun.returncode == EXIT_FAILED_CONTROLS, rerun and rerun.stderr
    result = verify_pack(killed_runs.pack)
    assert result.ok, result.problems()
    how = assert_same_pack_modulo_harvest_time(killed_runs.pack, killed_runs.clean_pack)
    assert how["messages.csv"] == how["decisions.csv"] == "byte-identical"
    # The only history the pack shows differently: the interrupted harvests, as failed runs,
    # and the harvest that completed before the kill during the report.
    rows = harvest_run_rows((killed_runs.pack / "report.html").read_bytes())
    assert rows == ["failed", "failed", "ok", "ok"], rows
    assert harvest_run_rows((killed_runs.clean_pack / "report.html").read_bytes()) == ["ok"]


@pytest.mark.slow
def test_rerun_after_kill_in_report_leaves_no_stage_folder(killed_runs: KilledRuns) -> None:
    assert killed_runs.rerun is not None and killed_runs.rerun.returncode == EXIT_FAILED_CONTROLS
    assert_no_stage_siblings(killed_runs.out_root)


@pytest.fixture(scope="module")
def tiny_tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mount_point = tmp_path_factory.mktemp("tmpfs")
    # Room for one small pack plus a fraction of a second: the new pack cannot fit beside it.
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=900k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)


@pytest.fixture(scope="module")
def disk_full_run(
    small_dataset: Path,
    clean_run: tuple[Path, Path],
    tiny_tmpfs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, bytes]]:
    """`run` whose pack cannot fit: the output root is a tmpfs already holding last run's pack."""
    clean_db, clean_pack = clean_run
    db = tmp_path_factory.mktemp("disk_full") / "store.duckdb"
    shutil.copy(clean_db, db)
    previous = tiny_tmpfs / PERIOD
    shutil.copytree(clean_pack, previous)
    previous_bytes = pack_files(previous)
    assert shutil.disk_usage(tiny_tmpfs).free < sum(map(len, previous_bytes.values()))
    with running_sandbox(small_dataset) as server:
        r = run_cli(run_args(db, tiny_tmpfs), sandbox_env(server))
    return r, previous, previous_bytes


@pytest.mark.slow
def test_disk_full_keeps_the_previous_pack_and_presents_nothing(
    disk_full_run: tuple[subprocess.CompletedProcess[str], Path, dict[str, bytes]],
) -> None:
    r, previous, previous_bytes = disk_full_run
    assert r.returncode not in (0, EXIT_FAILED_CONTROLS), "a pack that did not fit is a failure"
    assert r.stdout == "", "no summary may present the pack as written"
    assert pack_files(previous) == previous_bytes
    assert verify_pack(previous).ok
    assert_no_stage_siblings(previous.parent)


@pytest.mark.slow
def test_disk_full_exits_6_with_one_clear_line(
    disk_full_run: tuple[subprocess.CompletedProcess[str], Path, dict[str, bytes]],
) -> None:
    r, _, _ = disk_full_run
    assert r.returncode == EXIT_REPORT, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    error_lines = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "No space left on device" in error_lines[0], r.stderr[-2000:]


def test_store_held_by_another_process_exits_5(
    harvested_small_dataset: Path, tmp_path: Path
) -> None:
    db = tmp_path / "store.duckdb"
    shutil.copy(harvested_small_dataset, db)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('held', flush=True); time.sleep(120)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # No sandbox: a run must fail on the store before it contacts any API.
        env = {
            **os.environ,
            "MULTIMAIL_API_KEY": "mm_unused",
            "MULTIMAIL_API_URL": "http://127.0.0.1:9",
        }
        r = run_cli(run_args(db, tmp_path / "out"), env)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    assert r.returncode == EXIT_STORE, r.stderr
    assert f"in use by PID {holder.pid} (python" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out" / PERIOD).exists()


@pytest.mark.parametrize(
    "damage",
    [
        "garbage",
        "truncated",
        "header_zeroed",
    ],
)
def test_corrupt_store_exits_5_with_a_clear_message(
    damage: str, harvested_small_dataset: Path, tmp_path: Path
) -> None:
    db = tmp_path / "store.duckdb"
    data = harvested_small_dataset.read_bytes()
    if damage == "garbage":
        data = b"this is not a duckdb file\n" * 200
    elif damage == "truncated":
        data = data[: len(data) // 3]
    else:
        data = b"\0" * 8192 + data[8192:]
    db.write_bytes(data)
    env = {
        **os.environ,
        "MULTIMAIL_API_KEY": "mm_unused",
        "MULTIMAIL_API_URL": "http://127.0.0.1:9",
    }
    r = run_cli(run_args(db, tmp_path / "out"), env)
    assert r.returncode == EXIT_STORE, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(db) in errors[0], r.stderr[-2000:]
    assert not (tmp_path / "out" / PERIOD).exists()


@pytest.mark.slow  # two `run` processes against a sandbox that answers in 40 ms
def test_overlapping_run_exits_8_and_does_nothing(small_dataset: Path, tmp_path: Path) -> None:
    db, out_root = tmp_path / "store.duckdb", tmp_path / "out"
    with running_sandbox(small_dataset, latency_ms=40) as server:
        env = sandbox_env(server)
        first = subprocess.Popen(
            auditkit_argv(*run_args(db, out_root)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(lambda: server.requests.count("detail") >= 1, first)
            second = run_cli(run_args(db, out_root, "--json"), env)
            assert first.poll() is None, "the first run must still hold the lock"
            # The first run's preflight and its harvest; the second run must not call at all.
            assert server.requests.count("account") == 2, "the second run must not harvest"
        finally:
            _kill(first)
    assert second.returncode == EXIT_LOCKED, second.stderr
    assert f"another auditkit run (PID {first.pid}" in second.stderr, second.stderr
    # --json: a failure is a JSON object on stdout too, so a script never reads nothing.
    assert json.loads(second.stdout)["error"]["exit_code"] == EXIT_LOCKED
