"""The signing key and its certificate, loaded and checked before any work.

Every failure is a ConfigError (exit 3) in one line naming the file and what is wrong with
it: unreadable, not a key, encrypted without a password, a password that does not open it,
a certificate that is not for this key, or one outside its validity period. Messages never
quote the files' contents, and exceptions from the parsers are not chained (a --debug
traceback would show them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from auditkit.errors import ConfigError

_SUPPORTED_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_MAX_FILE_BYTES = 1 << 20  # a key or a certificate chain is a few KB
# The organisation in every certificate auditkit's test PKI issues (`auditkit.devtools.tsa`:
# the demo's bundled key, the tests' throwaway CAs). Their keys are public or throwaway, so a
# signature under one shows a pack is intact, never who made it: `demo` and `verify` say so.
TEST_ONLY_ORGANISATION = "auditkit TEST ONLY"


@dataclass(frozen=True)
class SigningMaterial:
    """A private key (DER PKCS#8, kept out of repr) and its certificate chain (DER, leaf first)."""

    key_der: bytes = field(repr=False)
    chain: tuple[bytes, ...]

    @property
    def cert_der(self) -> bytes:
        return self.chain[0]

    @property
    def subject(self) -> str:
        return certificate_subject(self.cert_der)

    @property
    def cert_sha256(self) -> str:
        return hashlib.sha256(self.cert_der).hexdigest()


def certificate_subject(der: bytes) -> str:
    """The certificate's subject as RFC 4514 text (what `openssl x509 -subject` prints,
    with -nameopt RFC2253)."""
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def is_test_certificate(der: bytes) -> bool:
    """Whether the certificate, or the CA that issued it, is auditkit's test material: its
    subject or issuer names the organisation TEST_ONLY_ORGANISATION. (Only ever a warning:
    a certificate without the mark is not thereby trustworthy; that is what --trust checks.)"""
    cert = x509.load_der_x509_certificate(der)
    return any(
        attribute.value == TEST_ONLY_ORGANISATION
        for name in (cert.subject, cert.issuer)
        for attribute in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )


def _read(path: Path, what: str) -> bytes:
    try:
        if path.is_dir():
            raise ConfigError(f"{what} {path} is a folder, not a file")
        with path.open("rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror})") from None
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigError(f"{what} {path} is over 1 MiB; it is not a key or certificate file")
    return data


def load_private_key(path: Path, password: str | None, password_source: str) -> Any:
    data = _read(path, "signing key")
    secret = password.encode("utf-8") if password is not None else None
    pem = b"-----BEGIN" in data
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    try:
        key = loader(data, password=secret)
    except TypeError:
        # cryptography: a password for a plain key, or none for an encrypted one.
        if secret is None:
            raise ConfigError(
                f"signing key {path} is encrypted; give its password in {password_source} "
                "(or name another variable with --sign-key-password-env)"
            ) from None
        raise ConfigError(
            f"signing key {path} is not encrypted, but a password was given in "
            f"{password_source}; unset it, or protect the key"
        ) from None
    except ValueError:
        if secret is not None and (b"ENCRYPTED" in data[:4096] or not pem):
            # PEM marks an encrypted key; DER does not, so there both causes are possible.
            raise ConfigError(
                f"signing key {path}: the password in {password_source} does not decrypt it"
                + ("" if pem else ", or the file is not a DER private key")
            ) from None
        raise ConfigError(f"signing key {path} is not a PEM or DER private key") from None
    except Exception:  # any other parser complaint: still one line, still no key bytes
        raise ConfigError(f"signing key {path} could not be loaded as a private key") from None
    if not isinstance(key, _SUPPORTED_KEYS):
        raise ConfigError(
            f"signing key {path} is a {type(key).__name__.lstrip('_')}; "
            "PAdES signing needs an RSA, EC, Ed25519 or Ed448 key"
        )
    return key


def load_certificates(path: Path) -> list[x509.Certificate]:
    data = _read(path, "signing certificate")
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ConfigError(
            f"signing certificate {path} holds no PEM or DER X.509 certificate"
        ) from None
    return certs


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_signing_material(
    key_file: Path,
    cert_file: Path,
    password: str | None,
    password_source: str,
    *,
    now: datetime | None = None,
) -> SigningMaterial:
    """Key + certificate chain, checked to belong together and to be valid now.

    `cert_file` holds the signer's certificate and, optionally, the chain above it (any
    order); the one whose public key matches the key is the signer's.
    """
    key = load_private_key(key_file, password, password_source)
    certs = load_certificates(cert_file)
    public = _public_der(key.public_key())
    leaf = next((c for c in certs if _public_der(c.public_key()) == public), None)
    if leaf is None:
        raise ConfigError(
            f"signing key {key_file} does not belong to the certificate in {cert_file} "
            "(their public keys differ); give the certificate issued for this key"
        )
    now = now or datetime.now(UTC)
    if now < leaf.not_valid_before_utc:
        raise ConfigError(
            f"signing certificate {cert_file} is not valid until "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now > leaf.not_valid_after_utc:
        raise ConfigError(
            f"signing certificate {cert_file} expired on "
            f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise ConfigError(
            f"signing certificate {cert_file} does not allow signatures (its key usage has "
            "neither digitalSignature nor nonRepudiation)"
        )
    key_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der = serialization.Encoding.DER
    chain = (leaf.public_bytes(der), *(c.public_bytes(der) for c in certs if c is not leaf))
    return SigningMaterial(key_der=key_der, chain=chain)
