"""Where signing material comes from: flags > environment > `[signing]` in auditkit.toml.

The key and certificate are files named by `--sign-key` / `--sign-cert` or
AUDITKIT_SIGNING_KEY_FILE / AUDITKIT_SIGNING_CERT_FILE (never the config file, which is
shared and recorded). An encrypted key's password comes from the variable named by
`--sign-key-password-env`, else AUDITKIT_SIGNING_KEY_PASSWORD (or its _FILE variant). The
time-stamping authority is `--tsa-url`, AUDITKIT_TSA_URL or `[signing] tsa_url`: a URL is
not a secret, and one carrying a user name or password is refused.

Nothing here reads a key or talks to the network; `sign.PackSigner.load` does the former.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from auditkit.config_keys import reject_unknown
from auditkit.errors import ConfigError

ENV_KEY_FILE = "AUDITKIT_SIGNING_KEY_FILE"
ENV_CERT_FILE = "AUDITKIT_SIGNING_CERT_FILE"
ENV_KEY_PASSWORD = "AUDITKIT_SIGNING_KEY_PASSWORD"
ENV_TSA_URL = "AUDITKIT_TSA_URL"
SIGNING_KEYS = ("tsa_url", "tsa_timeout_seconds")
# The files signing touches. manifest.json.tsr, the token over manifest.json, cannot be
# listed in the manifest it covers: `pack` treats it as the manifest's companion.
PDF_NAME = "report.pdf"
MANIFEST = "manifest.json"
MANIFEST_TSR = MANIFEST + ".tsr"
DEFAULT_TSA_TIMEOUT = 30.0
_SECRETS_GO = f"--sign-key / {ENV_KEY_FILE} and {ENV_KEY_PASSWORD} (or its _FILE variant)"


@dataclass(frozen=True)
class SigningOptions:
    """What to sign with. The password is kept out of repr (and out of everything else)."""

    key_file: Path | None = None
    cert_file: Path | None = None
    password: str | None = field(default=None, repr=False)
    password_source: str = ENV_KEY_PASSWORD
    tsa_url: str | None = None
    tsa_timeout: float = DEFAULT_TSA_TIMEOUT

    @property
    def active(self) -> bool:
        return self.key_file is not None or self.tsa_url is not None


def check_signing_table(table: Any) -> Mapping[str, Any]:
    """`[signing]` validated: known keys only, and never a key, path to a key or password."""
    if not isinstance(table, Mapping):
        raise ConfigError("signing must be a table ([signing])")
    reject_unknown(table, SIGNING_KEYS, "signing", secret_variables=_SECRETS_GO)
    if "tsa_url" in table:
        tsa_url(table["tsa_url"], "signing.tsa_url")
    if "tsa_timeout_seconds" in table:
        _timeout(table["tsa_timeout_seconds"])
    return table


def _timeout(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"signing.tsa_timeout_seconds must be a positive number, got {value!r}")
    return float(value)


def tsa_url(value: Any, source: str) -> str:
    """`value` as a time-stamping authority's URL: http(s), a host, no credentials."""
    problem = f"{source} must be an http or https URL with a host, e.g. http://tsa.example/tsr"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{problem}; got {value!r}")
    url = value.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConfigError(f"{problem}; got {value!r}")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError(f"{problem}; got {value!r}") from None
    if parts.username is not None or parts.password is not None:
        # Not repeated: the URL holds a credential, and it would be recorded in the manifest.
        raise ConfigError(
            f"{source} must not carry a user name or password (the URL is recorded in the "
            "manifest); auditkit supports time-stamping authorities without authentication"
        )
    if parts.scheme.lower() not in ("http", "https") or not host or port == 0:
        raise ConfigError(f"{problem}; got {value!r}")
    if parts.fragment:
        raise ConfigError(f"{source} must not have a #fragment; got {value!r}")
    return url


def _path(flag: Path | None, env: Mapping[str, str], name: str) -> tuple[Path | None, str]:
    if flag is not None:
        return flag, "--sign-key" if name == ENV_KEY_FILE else "--sign-cert"
    if env.get(name):
        return Path(env[name]), name
    return None, name


def _password(env: Mapping[str, str], password_env: str | None) -> tuple[str | None, str]:
    if password_env is not None:
        if not password_env or "=" in password_env:
            raise ConfigError(
                f"--sign-key-password-env takes a variable name, got {password_env!r}"
            )
        if password_env not in env:
            raise ConfigError(
                f"--sign-key-password-env {password_env}: no such environment variable is set"
            )
        return env[password_env], password_env
    if env.get(ENV_KEY_PASSWORD):
        return env[ENV_KEY_PASSWORD], ENV_KEY_PASSWORD
    file_var = f"{ENV_KEY_PASSWORD}_FILE"
    if env.get(file_var):
        try:
            text = Path(env[file_var]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(f"{file_var} names a file that cannot be read ({reason})") from None
        return text.rstrip("\r\n"), file_var
    return None, ENV_KEY_PASSWORD


def signing_options(
    signing_table: Mapping[str, Any],
    *,
    key_file: Path | None = None,
    cert_file: Path | None = None,
    password_env: str | None = None,
    tsa: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SigningOptions:
    """Resolve the signing options of one command (flags > env > `[signing]`).

    A key without a certificate (or the reverse) is a ConfigError; so is a password with
    no key to open. Files are not read here.
    """
    env = os.environ if env is None else env
    key, key_source = _path(key_file, env, ENV_KEY_FILE)
    cert, cert_source = _path(cert_file, env, ENV_CERT_FILE)
    if (key is None) != (cert is None):
        given, missing = (key_source, "--sign-cert") if key else (cert_source, "--sign-key")
        raise ConfigError(
            f"{given} needs {missing} too (or {ENV_CERT_FILE if key else ENV_KEY_FILE})"
        )
    password, password_source = _password(env, password_env)
    if password_env is not None and key is None:
        raise ConfigError("--sign-key-password-env given without a key to open (--sign-key)")
    url: str | None = None
    if tsa is not None:
        url = tsa_url(tsa, "--tsa-url")
    elif env.get(ENV_TSA_URL):
        url = tsa_url(env[ENV_TSA_URL], ENV_TSA_URL)
    elif "tsa_url" in signing_table:
        url = tsa_url(signing_table["tsa_url"], "signing.tsa_url")
    timeout = _timeout(signing_table.get("tsa_timeout_seconds", DEFAULT_TSA_TIMEOUT))
    return SigningOptions(
        key_file=key,
        cert_file=cert,
        password=password if key is not None else None,
        password_source=password_source,
        tsa_url=url,
        tsa_timeout=timeout,
    )


@dataclass(frozen=True)
class Trust:
    """Trust anchors `verify` checks signers and TSAs against; none given: nothing is
    claimed beyond integrity."""

    sources: tuple[str, ...] = ()
    roots: tuple[bytes, ...] = field(default=(), repr=False)  # DER certificates

    @property
    def given(self) -> bool:
        return bool(self.sources)

    def describe(self) -> str:
        return ", ".join(self.sources)


def _certificates_in(path: Path, what: str) -> list[bytes]:
    """The DER certificates in a PEM bundle or DER file (asn1crypto: a CA bundle may hold
    a legacy root that cryptography warns about, and only the bytes are needed here)."""
    from asn1crypto import pem, x509

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror})") from None
    try:
        if pem.detect(data):
            ders = [
                der for kind, _, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"
            ]
        else:
            ders = [data]
        for der in ders:
            x509.Certificate.load(der, strict=True)["tbs_certificate"]["subject"].native  # noqa: B018
    except Exception:  # asn1crypto raises ValueError, TypeError… for what is not a certificate
        ders = []
    if not ders:
        raise ConfigError(f"{what} {path} holds no PEM or DER X.509 certificate")
    return ders


def load_trust(paths: tuple[Path, ...] | list[Path] = (), system: bool = False) -> Trust:
    """Trust anchors from `--trust FILE` (PEM bundle or DER) and/or the system store."""
    sources: list[str] = []
    roots: list[bytes] = []
    for path in paths:
        roots += _certificates_in(path, "--trust")
        sources.append(str(path))
    if system:
        import ssl

        found = ssl.get_default_verify_paths()
        bundle = next(
            (Path(p) for p in (found.cafile, found.openssl_cafile) if p and Path(p).is_file()),
            None,
        )
        if bundle is None:
            raise ConfigError(
                "--trust-system: this system has no CA bundle file; pass --trust FILE instead"
            )
        roots += _certificates_in(bundle, "system CA bundle")
        sources.append(f"the system trust store ({bundle})")
    return Trust(tuple(sources), tuple(roots))
