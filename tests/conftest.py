"""Shared fixtures: a clean environment, the sample data folder, and a live sandbox server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"

# Recognisable fake secrets: tests assert they never leak into logs, stores or packs.
MM_KEY = "mm_test_SECRET_k3y_do_not_leak_7f3a"
IC_TOKEN = "ic_test_SECRET_t0ken_do_not_leak_9b2c"
IC_EU_TOKEN = "ic_test_SECRET_eu_t0ken_do_not_leak_4d1e"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer shell or CI proxy setting may reroute 127.0.0.1 traffic or pick config."""
    for name in list(os.environ):
        if name.startswith(("AUDITKIT_", "MULTIMAIL_", "INTERCOM_")) or name.upper() in {
            "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
            "SSL_CERT_FILE", "SSL_CERT_DIR",
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
    from auditkit.sandbox import SandboxServer

    server = SandboxServer(sample_data, api_key=MM_KEY, intercom_token=IC_TOKEN, intercom_eu_token=IC_EU_TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()
