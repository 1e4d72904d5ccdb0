"""auditkit's test certificates (O=auditkit TEST ONLY: the demo's bundled key, the tests'
throwaway CAs) are flagged wherever a signature is shown, so nobody takes one for a real
signature: in the manifest (`signing.test_only`), in `verify`'s lines and in its JSON. A
certificate of any other organisation is not flagged, and a pack whose signer is real but
whose TSA is a test one names just the TSA."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from auditkit.cli import cli
from auditkit.devtools.tsa import TestPki, TsaServer, demo_pki, make_test_pki
from auditkit.signing.keys import TEST_ONLY_ORGANISATION, is_test_certificate
from auditkit.signing.sign import TEST_ONLY_NOTE
from tests.signing.conftest import signer, write

NORTHWIND = "Northwind Supply Co."


def der(pem: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def own_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A CA, signer and TSA as an organisation's own would be: no test mark."""
    return make_test_pki(
        tmp_path_factory.mktemp("own"), organisation=NORTHWIND, signer_name="Evidence signer"
    )


@pytest.fixture(scope="module")
def own_tsa(own_pki: TestPki) -> Iterator[TsaServer]:
    with TsaServer(own_pki.tsa_cert, own_pki.tsa_key) as server:
        yield server


def verify(pack: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["verify", str(pack), *extra])
    return result.exit_code, result.stdout


def test_the_test_pkis_are_marked_and_an_organisations_is_not(
    pki: TestPki, own_pki: TestPki
) -> None:
    bundled = demo_pki()
    for pem in (bundled.signer_cert, bundled.tsa_cert, bundled.ca_cert, pki.signer_cert):
        assert is_test_certificate(der(pem)), pem
    for pem in (own_pki.signer_cert, own_pki.tsa_cert, own_pki.ca_cert):
        assert not is_test_certificate(der(pem)), pem
    subject = x509.load_pem_x509_certificate(bundled.signer_cert.read_bytes()).subject
    assert f"O={TEST_ONLY_ORGANISATION}" in subject.rfc4514_string()


@pytest.mark.pdf
def test_a_pack_signed_under_an_organisations_ca_is_not_flagged(
    tmp_path: Path, own_pki: TestPki, own_tsa: TsaServer
) -> None:
    pack = write(tmp_path / "pack", signer(own_pki, own_tsa.url))
    signing = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))["signing"]
    assert "test_only" not in signing
    assert signing["pdf"]["signer"] == f"O={NORTHWIND},CN=Evidence signer"
    code, out = verify(pack)
    assert code == 0, out
    assert "TEST ONLY" not in out and len(out.splitlines()) == 5
    code, out = verify(pack, "--json")
    assert code == 0
    checks = json.loads(out)["signatures"]
    assert [c["test_only"] for c in checks] == [False] * 4
    assert {c["issuer"] for c in checks} == {f"O={NORTHWIND},CN=auditkit test CA"}


@pytest.mark.pdf
def test_a_real_signer_with_a_test_tsa_names_just_the_tsa(
    tmp_path: Path, own_pki: TestPki, tsa: TsaServer
) -> None:
    pack = write(tmp_path / "pack", signer(own_pki, tsa.url))
    signing = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))["signing"]
    test_tsa = "O=auditkit TEST ONLY,CN=auditkit test TSA"
    assert signing["test_only"] == {"certificates": [test_tsa], "note": TEST_ONLY_NOTE}
    code, out = verify(pack)
    assert code == 0, out
    last = out.splitlines()[-1]
    assert last.startswith(f"TEST ONLY: the certificates of TSA {test_tsa} are auditkit's test ")
    assert "Evidence signer" not in last
    assert last.endswith("not trusted unless --trust names that CA")
