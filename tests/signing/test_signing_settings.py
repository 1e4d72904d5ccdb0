"""Where signing settings come from (flags > env > [signing]), what the config file may hold
(a TSA URL, never a key or password), and that nothing prints a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit import config
from auditkit.devtools.tsa import TestPki, demo_pki
from auditkit.errors import ConfigError
from auditkit.signing.settings import load_trust, signing_options, tsa_url
from auditkit.signing.sign import PackSigner
from tests.signing.conftest import KEY_PASSWORD


def test_tsa_url_precedence_flag_env_file() -> None:
    table = {"tsa_url": "http://file.example/tsr", "tsa_timeout_seconds": 5}
    env = {"AUDITKIT_TSA_URL": "http://env.example/tsr"}
    assert signing_options(table, env={}).tsa_url == "http://file.example/tsr"
    assert signing_options(table, env=env).tsa_url == "http://env.example/tsr"
    flagged = signing_options(table, tsa="https://flag.example/tsr", env=env)
    assert flagged.tsa_url == "https://flag.example/tsr" and flagged.tsa_timeout == 5.0
    assert not signing_options({}, env={}).active


def test_key_and_cert_from_env_and_password_variable(tmp_path: Path) -> None:
    env = {
        "AUDITKIT_SIGNING_KEY_FILE": "k.pem",
        "AUDITKIT_SIGNING_CERT_FILE": "c.pem",
        "AUDITKIT_SIGNING_KEY_PASSWORD": "pw-from-default-var",
        "OTHER_PW": KEY_PASSWORD,
    }
    options = signing_options({}, env=env)
    assert (options.key_file, options.cert_file) == (Path("k.pem"), Path("c.pem"))
    assert options.password == "pw-from-default-var"
    other = signing_options({}, key_file=Path("x.pem"), password_env="OTHER_PW", env=env)
    assert other.key_file == Path("x.pem") and other.password == KEY_PASSWORD
    assert KEY_PASSWORD not in repr(other)
    secret_file = tmp_path / "pw"
    secret_file.write_text(KEY_PASSWORD + "\n", encoding="utf-8")
    filed = signing_options(
        {},
        env={"AUDITKIT_SIGNING_KEY_FILE": "k", "AUDITKIT_SIGNING_CERT_FILE": "c"}
        | {"AUDITKIT_SIGNING_KEY_PASSWORD_FILE": str(secret_file)},
    )
    assert filed.password == KEY_PASSWORD


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        ({"key_file": Path("k")}, {}, "--sign-key needs --sign-cert too"),
        ({"cert_file": Path("c")}, {}, "--sign-cert needs --sign-key too"),
        ({"tsa": "ftp://tsa.example/"}, {}, "--tsa-url must be an http or https URL"),
        ({"tsa": "http://u:p@tsa.example/"}, {}, "must not carry a user name or password"),
        (
            {"key_file": Path("k"), "cert_file": Path("c"), "password_env": "NOPE"},
            {},
            "--sign-key-password-env NOPE: no such environment variable is set",
        ),
        ({}, {"AUDITKIT_TSA_URL": "tsa.example"}, "AUDITKIT_TSA_URL must be an http"),
    ],
)
def test_signing_options_refuse_what_cannot_work(
    kwargs: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        signing_options({}, env=env, **kwargs)  # type: ignore[arg-type]


def test_credentials_in_the_url_are_never_repeated() -> None:
    with pytest.raises(ConfigError) as exc:
        tsa_url("https://user:hunter2@tsa.example/", "--tsa-url")
    assert "hunter2" not in str(exc.value)


def test_config_file_takes_a_tsa_url_but_never_a_key(tmp_path: Path) -> None:
    good = tmp_path / "auditkit.toml"
    good.write_text('[signing]\ntsa_url = "http://tsa.example/tsr"\n', encoding="utf-8")
    settings = config.load(good, env={})
    assert settings.signing == {"tsa_url": "http://tsa.example/tsr"}
    assert settings.public_dict()["signing"] == {"tsa_url": "http://tsa.example/tsr"}
    for body, message in [
        ('key_password = "x"', "signing.key_password: secrets do not belong in the config"),
        ('private_key = "x"', "signing.private_key: secrets do not belong in the config"),
        ('key_file = "k.pem"', "signing.key_file is not a setting"),
        ('tsa_url = "tsa.example"', "signing.tsa_url must be an http or https URL"),
        ("tsa_timeout_seconds = 0", "signing.tsa_timeout_seconds must be a positive number"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[signing]\n{body}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            config.load(bad, env={})


def test_signer_repr_and_material_repr_hold_no_key(pki: TestPki) -> None:
    from auditkit.signing.settings import SigningOptions

    signer = PackSigner.load(SigningOptions(key_file=pki.signer_key, cert_file=pki.signer_cert))
    assert "PRIVATE" not in repr(signer) and "key_der" not in repr(signer.material)
    assert signer.profile == "PAdES-B-B" and signer.tsa_url is None


def test_trust_anchors_load_and_refuse_garbage(pki: TestPki, tmp_path: Path) -> None:
    trust = load_trust([pki.ca_cert])
    assert trust.given and len(trust.roots) == 1 and trust.describe() == str(pki.ca_cert)
    assert not load_trust().given
    junk = tmp_path / "junk.pem"
    junk.write_text("nope", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds no PEM or DER X.509 certificate"):
        load_trust([junk])


def test_bundled_demo_material_is_marked_test_only_and_loads() -> None:
    demo = demo_pki()
    readme = (demo.signer_key.parent / "README.md").read_text(encoding="utf-8")
    assert "never use for real evidence" in readme
    from auditkit.signing.settings import SigningOptions

    signer = PackSigner.load(SigningOptions(key_file=demo.signer_key, cert_file=demo.signer_cert))
    assert signer.material is not None and "TEST ONLY" in signer.material.subject
