"""The signing options `report`, `evidence` and `run` share, and loading them before work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from auditkit.config import Settings
from auditkit.signing.settings import (
    ENV_CERT_FILE,
    ENV_KEY_FILE,
    ENV_KEY_PASSWORD,
    ENV_TSA_URL,
    signing_options,
)

if TYPE_CHECKING:
    from auditkit.signing.sign import PackSigner

F = TypeVar("F", bound=Callable[..., Any])
_FILE = click.Path(dir_okay=False, path_type=Path)


def signing_flags(fn: F) -> F:
    """`--sign-key`, `--sign-cert`, `--sign-key-password-env` and `--tsa-url`."""
    for option in reversed(
        [
            click.option(
                "--sign-key",
                type=_FILE,
                default=None,
                help="Private key (PEM or DER) to sign report.pdf with, PAdES "
                f"[env {ENV_KEY_FILE}]. Needs --sign-cert.",
            ),
            click.option(
                "--sign-cert",
                type=_FILE,
                default=None,
                help="The key's certificate, optionally followed by its chain (PEM) "
                f"[env {ENV_CERT_FILE}].",
            ),
            click.option(
                "--sign-key-password-env",
                metavar="NAME",
                default=None,
                help="Environment variable holding the key's password "
                f"[default: {ENV_KEY_PASSWORD}, or {ENV_KEY_PASSWORD}_FILE].",
            ),
            click.option(
                "--tsa-url",
                metavar="URL",
                default=None,
                help="RFC 3161 time-stamping authority: timestamps the signature, report.pdf "
                f"and manifest.json (manifest.json.tsr) [env {ENV_TSA_URL}; "
                "auditkit.toml [signing] tsa_url].",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def load_pack_signer(
    settings: Settings,
    *,
    sign_key: Path | None,
    sign_cert: Path | None,
    sign_key_password_env: str | None,
    tsa_url: str | None,
) -> PackSigner | None:
    """The command's PackSigner, or None when nothing is to be signed or timestamped.

    Reads and checks the key and certificate now (ConfigError, exit 3), before the
    command harvests, checks or renders anything.
    """
    options = signing_options(
        settings.signing,
        key_file=sign_key,
        cert_file=sign_cert,
        password_env=sign_key_password_env,
        tsa=tsa_url,
    )
    if not options.active:
        return None
    from auditkit.signing.sign import PackSigner  # pyHanko: only when signing

    return PackSigner.load(options)
