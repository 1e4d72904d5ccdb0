"""Fixtures for signed packs: a throwaway PKI, a local TSA, a store file, and one signed
pack (rendered once per session: a PDF costs seconds) that tests copy before changing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditkit.devtools.tsa import TestPki, TsaServer, make_test_pki
from auditkit.report import write_pack
from auditkit.signing.settings import SigningOptions
from auditkit.signing.sign import PackSigner
from tests.report.factory import Q3, demo_store, results, settings

KEY_PASSWORD = "SECRET_signing_pw_do_not_leak_51c7"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def encrypted_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """Another CA and signer, the signer's key protected by KEY_PASSWORD."""
    return make_test_pki(tmp_path_factory.mktemp("pki-enc"), key_password=KEY_PASSWORD)


@pytest.fixture(scope="session")
def tsa(pki: TestPki) -> Iterator[TsaServer]:
    with TsaServer(pki.tsa_cert, pki.tsa_key) as server:
        yield server


@pytest.fixture
def live_tsa(tsa: TsaServer) -> Iterator[TsaServer]:
    """The session's TSA, answering properly again after the test, whatever it set."""
    tsa.mode = "ok"
    yield tsa
    tsa.mode = "ok"


@pytest.fixture(scope="session")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "s.duckdb"
    demo_store(str(path)).close()
    return path


def signer(pki: TestPki, tsa_url: str | None = None, password: str | None = None) -> PackSigner:
    return PackSigner.load(
        SigningOptions(
            key_file=pki.signer_key,
            cert_file=pki.signer_cert,
            password=password,
            tsa_url=tsa_url,
        )
    )


def write(out: Path, pack_signer: PackSigner | None) -> Path:
    with demo_store() as store:
        write_pack(store, settings(), Q3, out, results=results(), signer=pack_signer)
    return out


@pytest.fixture(scope="session")
def signed_pack_master(
    tmp_path_factory: pytest.TempPathFactory, pki: TestPki, tsa: TsaServer
) -> Path:
    """PAdES B-T + document timestamp + manifest.json.tsr (do not change: copy it)."""
    return write(tmp_path_factory.mktemp("signed") / "pack", signer(pki, tsa.url))


@pytest.fixture(scope="session")
def unsigned_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same pack, unsigned (do not change)."""
    return write(tmp_path_factory.mktemp("unsigned") / "pack", None)


@pytest.fixture
def signed_pack(signed_pack_master: Path, tmp_path: Path) -> Path:
    """A private copy of the signed pack, for a test to tamper with."""
    out = tmp_path / "signed"
    shutil.copytree(signed_pack_master, out)
    return out
