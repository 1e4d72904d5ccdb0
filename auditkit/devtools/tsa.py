"""A local RFC 3161 time-stamping authority and throwaway certificates, for tests and the demo.

`TsaServer` answers `application/timestamp-query` POSTs on 127.0.0.1 (port 0) with real
timestamp tokens, signed by pyHanko's `DummyTimeStamper` under a TSA certificate whose
extendedKeyUsage is timeStamping (critical), so `openssl ts -verify` and pyHanko accept
them. `mode` makes it misbehave on purpose: "garbage" answers bytes that are not a
TimeStampResp, "reject" a well-formed refusal, "error" HTTP 500.

`make_test_pki(folder)` writes a throwaway CA, a signer key + certificate (optionally
password-protected) and a TSA key + certificate under that CA. `demo_pki()` is the bundled
TEST-ONLY set in `demo_signing/`: never use it for real evidence.
"""

from __future__ import annotations

import datetime as dt
import http.server
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auditkit.signing.keys import TEST_ONLY_ORGANISATION

DEMO_SIGNING = Path(__file__).resolve().parent / "demo_signing"
TsaMode = Literal["ok", "garbage", "reject", "error"]


@dataclass(frozen=True)
class TestPki:
    """Paths of a throwaway PKI: trust `ca_cert`; sign with `signer_key` + `signer_cert`."""

    __test__ = False  # not a pytest test class, whatever its name

    ca_cert: Path
    signer_key: Path
    signer_cert: Path
    tsa_key: Path
    tsa_cert: Path
    key_password: str | None = None


def demo_pki() -> TestPki:
    """The bundled TEST-ONLY key and certificates (see demo_signing/README.md)."""
    return TestPki(
        ca_cert=DEMO_SIGNING / "TEST-ONLY-ca.pem",
        signer_key=DEMO_SIGNING / "TEST-ONLY-key.pem",
        signer_cert=DEMO_SIGNING / "TEST-ONLY-cert.pem",
        tsa_key=DEMO_SIGNING / "TEST-ONLY-tsa-key.pem",
        tsa_cert=DEMO_SIGNING / "TEST-ONLY-tsa-cert.pem",
    )


def _name(common_name: str, organisation: str = TEST_ONLY_ORGANISATION) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


def _issue(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    kind: Literal["ca", "signer", "tsa"],
    not_before: dt.datetime,
    days: int,
    organisation: str = TEST_ONLY_ORGANISATION,
) -> x509.Certificate:
    issuer_name = issuer[0].subject if issuer else _name(subject, organisation)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject, organisation))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=kind == "ca", path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=kind != "ca",
                content_commitment=kind != "ca",
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=kind == "ca",
                crl_sign=kind == "ca",
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    if kind == "tsa":  # RFC 3161 §2.3: the one purpose, critical
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return builder.sign(signing_key, hashes.SHA256())


def _write(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _key_pem(key: rsa.RSAPrivateKey, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_test_pki(
    folder: Path,
    *,
    key_password: str | None = None,
    not_before: dt.datetime | None = None,
    days: int = 30,
    prefix: str = "",
    signer_name: str = "auditkit test signer",
    organisation: str = TEST_ONLY_ORGANISATION,
) -> TestPki:
    """Write a throwaway CA, signer and TSA (RSA 2048) into `folder`; return their paths.

    Every certificate names `organisation`; the default marks them as auditkit's test
    material, which `verify` and the manifest then say (another name shows a pack as an
    organisation's own CA would sign it)."""
    folder.mkdir(parents=True, exist_ok=True)
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    ca = _issue("auditkit test CA", keys[0], None, "ca", start, days, organisation)
    signer = _issue(signer_name, keys[1], (ca, keys[0]), "signer", start, days, organisation)
    tsa = _issue("auditkit test TSA", keys[2], (ca, keys[0]), "tsa", start, days, organisation)
    return TestPki(
        ca_cert=_write(folder / f"{prefix}ca.pem", _cert_pem(ca)),
        signer_key=_write(folder / f"{prefix}key.pem", _key_pem(keys[1], key_password)),
        signer_cert=_write(folder / f"{prefix}cert.pem", _cert_pem(signer)),
        tsa_key=_write(folder / f"{prefix}tsa-key.pem", _key_pem(keys[2])),
        tsa_cert=_write(folder / f"{prefix}tsa-cert.pem", _cert_pem(tsa)),
        key_password=key_password,
    )


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    tsa: TsaServer


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib's name)
        pass  # quiet: tests and the demo print their own lines

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        tsa = self.server.tsa
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        tsa.requests += 1
        if self.headers.get("Content-Type") != "application/timestamp-query":
            self._reply(415, b"expected application/timestamp-query\n", "text/plain")
            return
        if tsa.mode == "error":
            self._reply(500, b"internal error\n", "text/plain")
            return
        if tsa.mode == "garbage":
            self._reply(200, b"<html>not a timestamp</html>", "application/timestamp-reply")
            return
        try:
            reply = tsa.respond(tsp.TimeStampReq.load(body))
        except ValueError:
            self._reply(400, b"not a TimeStampReq\n", "text/plain")
            return
        self._reply(200, reply, "application/timestamp-reply")


class TsaServer:
    """The local TSA. Use as a context manager, or call start()/stop(); `url` is its address."""

    def __init__(self, tsa_cert: Path, tsa_key: Path, *, mode: TsaMode = "ok") -> None:
        from pyhanko.sign.timestamps import DummyTimeStamper  # imported late: pyHanko is big

        cert = x509.load_pem_x509_certificate(tsa_cert.read_bytes())
        key = serialization.load_pem_private_key(tsa_key.read_bytes(), password=None)
        key_der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._stamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(key_der),
        )
        self.mode: TsaMode = mode
        self.requests = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def respond(self, request: tsp.TimeStampReq) -> bytes:
        """The DER TimeStampResp for `request` (a refusal in "reject" mode)."""
        if self.mode == "reject":
            from auditkit.signing.tsa import TimeStampResponse

            refusal = {
                "status": "rejection",
                "status_string": ["policy says no (test)"],
                "fail_info": {"unaccepted_policy"},
            }
            return bytes(TimeStampResponse({"status": refusal}).dump())
        return bytes(self._stamper.request_tsa_response(request).dump())

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the TSA is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def start(self) -> TsaServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.tsa = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="auditkit-test-tsa", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> TsaServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
