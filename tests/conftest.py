"""Shared fixtures: a clean environment, the sample data folder, a live sandbox server, and
a local HTTP server that counts what is fetched from it; `built_once` for session products
that every xdist worker reads but only one should build; and the guard that holds every
in-process PDF render to the `pdf` (or `slow`) marker."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from filelock import FileLock

if TYPE_CHECKING:
    from auditkit.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"

# Recognisable fake secrets: tests assert they never leak into logs, stores or packs.
MM_KEY = "mm_test_SECRET_k3y_do_not_leak_7f3a"
IC_TOKEN = "ic_test_SECRET_t0ken_do_not_leak_9b2c"
IC_EU_TOKEN = "ic_test_SECRET_eu_t0ken_do_not_leak_4d1e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with end-to-end runs (marked slow) first, then modules that render PDFs,
    then the rest, each module kept whole and in its own order. pytest-xdist hands modules
    to workers in this order (--dist loadfile), so the longest start early instead of one
    of them keeping a worker busy at the end while the other has nothing left to do."""

    def weight(item: pytest.Item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 1 if item.get_closest_marker("pdf") else 2

    module_weight: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        module_weight[module] = min(module_weight.get(module, 2), weight(item))
    items.sort(key=lambda item: module_weight[item.nodeid.split("::", 1)[0]])


# The test running now (pytest_runtest_protocol below), for `pdf_marker_is_honest`.
_RUNNING: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    _RUNNING.append(item)
    try:
        return (yield)
    finally:
        _RUNNING.pop()


# The real render_pdf while `pdf_marker_is_honest` has patched it.
_UNGUARDED_RENDER_PDF: list[Callable[..., Any]] = []


def _render_pdf_if_marked(*args: Any, **kwargs: Any) -> Any:
    """render_pdf, refused to a test marked neither `pdf` nor `slow`. Module-level so it
    pickles: big packs send render_pdf to a renderer process, where nothing is patched and
    no test is running."""
    item = _RUNNING[-1] if _RUNNING else None
    if item and not (item.get_closest_marker("pdf") or item.get_closest_marker("slow")):
        raise AssertionError(f"{item.nodeid} renders a PDF: mark it pdf (or slow)")
    if _UNGUARDED_RENDER_PDF:
        return _UNGUARDED_RENDER_PDF[0](*args, **kwargs)
    from auditkit.report.pdf import render_pdf

    return render_pdf(*args, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def pdf_marker_is_honest() -> Iterator[None]:
    """A test that renders a PDF in this process, itself or through a fixture it asks for,
    must be marked `pdf` or `slow`: `make test-fast` leaves those out to stay fast, and an
    unmarked render quietly costs it a second or more. The render fails the test instead."""
    import auditkit.report
    import auditkit.report.pdf

    _UNGUARDED_RENDER_PDF.append(auditkit.report.pdf.render_pdf)
    with pytest.MonkeyPatch.context() as patch:
        # The pipeline calls it by the name auditkit.report imported.
        patch.setattr(auditkit.report.pdf, "render_pdf", _render_pdf_if_marked)
        patch.setattr(auditkit.report, "render_pdf", _render_pdf_if_marked)
        yield
    _UNGUARDED_RENDER_PDF.clear()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer shell or CI proxy setting may reroute 127.0.0.1 traffic or pick config."""
    for name in list(os.environ):
        if name.startswith(("AUDITKIT_", "MULTIMAIL_", "INTERCOM_")) or name.upper() in {
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
        }:
            monkeypatch.delenv(name, raising=False)
    # Keep a stray ./auditkit.toml or ./auditkit.duckdb in the checkout out of every test.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture
def sandbox(sample_data: Path) -> Iterator[object]:
    """The sandbox API on 127.0.0.1 (port 0) serving the sample quarter, over real sockets."""
    from auditkit.devtools.sandbox import SandboxServer

    server = SandboxServer(
        sample_data, api_key=MM_KEY, intercom_token=IC_TOKEN, intercom_eu_token=IC_EU_TOKEN
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class HitCounter:
    """A stand-in for a remote host: where it listens and every path asked of it."""

    port: int = 0
    paths: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def listener() -> Iterator[HitCounter]:
    """An HTTP server on 127.0.0.1 (port 0) that answers every GET with an empty image and
    records its path: tests point untrusted URLs at it and assert nothing was fetched."""
    counter = HitCounter()

    class Handler(http.server.BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            counter.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    counter.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield counter
    finally:
        server.shutdown()
        server.server_close()


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder `name`, filled by `build(folder)` once per test run however many xdist
    workers ask for it: the first builds under a file lock while the others wait, then all
    read the same files. What it holds is shared, so tests must copy before changing it.

    As pytest-xdist's documentation recommends, the folder sits in the parent of the worker's
    base temp directory (this run's, shared by its workers); without xdist, in the base temp.
    A build that failed leaves no completion mark, so the next worker tries again."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / f"shared-{name}"
    done = base / f"shared-{name}.done"
    with FileLock(base / f"shared-{name}.lock"):
        if not done.exists():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


SMALL_MESSAGES = 60


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-message sample quarter (same generator and seed as sample_data/), made once per
    run (see `built_once`): read it, or copy it (`dataset_copy`) to change it."""
    return built_once(tmp_path_factory, "small", _generate_small_dataset) / "data"


def _generate_small_dataset(folder: Path) -> None:
    out = folder / "data"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkit.sample",
            "--messages",
            str(SMALL_MESSAGES),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="session")
def harvested_sample_quarter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled sample quarter harvested from the sandbox, the sandbox's source-side
    changes applied, then harvested again with a full audit-log scan: a store file made once
    per run (see `built_once`) for every module that checks, packs or exports the sample.
    Read it, or copy it (`sample_quarter_store`) to change it."""
    return built_once(tmp_path_factory, "sample-quarter", _harvest_sample_quarter) / "store.duckdb"


@pytest.fixture(scope="session")
def harvested_small_dataset(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`small_dataset` harvested once from the sandbox, in process: a store file made once
    per run (see `built_once`) for tests that need a harvested store but not the CLI's
    output. Read it, or copy it to change it."""

    return (
        built_once(
            tmp_path_factory,
            "small-harvested",
            lambda folder: _harvest_from_sandbox(small_dataset, folder / "store.duckdb"),
        )
        / "store.duckdb"
    )


@dataclass(frozen=True)
class DemoRun:
    """What `auditkit demo --json` left: its pack folder (the store is `<out>.duckdb`) and
    the JSON document it printed."""

    out: Path
    doc: dict[str, Any]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`auditkit demo --json` on the bundled sample quarter, in process, once per run (see
    `built_once`): the demo tests and the browser tests read the same pack, since a full
    demo costs about 20 s of CPU. Read it, or copy it to change it."""
    folder = built_once(tmp_path_factory, "demo", _run_demo)
    doc = json.loads((folder / "demo.json").read_text(encoding="utf-8"))
    return DemoRun(out=folder / "demo", doc=doc)


def _run_demo(folder: Path) -> None:
    from click.testing import CliRunner

    from auditkit.cli import cli

    result = CliRunner().invoke(cli, ["demo", "--out", str(folder / "demo"), "--json"])
    assert result.exit_code == 0, result.output
    # Stage logs go to stderr; with --json stdout is the document alone.
    json.loads(result.stdout)
    (folder / "demo.json").write_text(result.stdout, encoding="utf-8")


def sample_quarter_settings(db: Path) -> Settings:
    """The sample quarter's own auditkit.toml, for the store at `db` (no API keys)."""
    from auditkit import config

    return config.load(config_file=SAMPLE_DATA / "auditkit.toml", env={}).with_overrides(
        db_path=db, concurrency=8
    )


def sample_quarter_store(harvested: Path, folder: Path) -> tuple[Path, Settings]:
    """A private copy of `harvested_sample_quarter` in `folder`, with its settings."""
    db = folder / "auditkit.duckdb"
    shutil.copy(harvested, db)
    return db, sample_quarter_settings(db)


@dataclass(frozen=True)
class FirstHarvest:
    """The sample quarter's first harvest, before any source-side change: a copy of the
    store it left and its result (`HarvestResult.to_dict()`). Read it, or copy it."""

    store: Path
    result: dict[str, Any]


@pytest.fixture(scope="session")
def first_harvest_of_sample_quarter(
    harvested_sample_quarter: Path,
) -> FirstHarvest:
    """The first of the two harvests `harvested_sample_quarter` makes, kept as it left the
    store: tests of a plain full harvest read it instead of harvesting the quarter again."""
    folder = harvested_sample_quarter.parent
    result = json.loads((folder / "first-harvest.json").read_text(encoding="utf-8"))
    return FirstHarvest(store=folder / "first-harvest.duckdb", result=result)


def _harvest_sample_quarter(folder: Path) -> None:
    _harvest_from_sandbox(
        SAMPLE_DATA, folder / "store.duckdb", first_harvest_copy=folder / "first-harvest"
    )


def _harvest_from_sandbox(
    data_dir: Path, db: Path, *, first_harvest_copy: Path | None = None
) -> None:
    """Harvest `data_dir` from a sandbox into `db` with the sample's config. With
    `first_harvest_copy`, keep that harvest's store and result beside it (`<copy>.duckdb`,
    `<copy>.json`), then apply the sandbox's source-side changes and harvest again with a
    full audit-log scan."""
    from auditkit.devtools.sandbox import SandboxServer
    from auditkit.harvest import harvest
    from auditkit.store import Store

    with SandboxServer(
        data_dir, api_key=MM_KEY, intercom_token=IC_TOKEN, intercom_eu_token=IC_EU_TOKEN
    ) as server:
        settings = server.aim(sample_quarter_settings(db))
        with Store(db) as store:
            first = harvest(settings, store)
            assert first.outcome == "ok", first.errors
        if first_harvest_copy is None:
            return
        # Closed first: the copy is the checkpointed file, with no WAL beside it.
        shutil.copy(db, first_harvest_copy.with_suffix(".duckdb"))
        first_harvest_copy.with_suffix(".json").write_text(
            json.dumps(first.to_dict()), encoding="utf-8"
        )
        server.apply_mutations()
        with Store(db) as store:
            assert harvest(settings, store, full_audit_scan=True).outcome == "ok"
