"""Where an export goes (`export.settings`), `[export]` in auditkit.toml, and what the
command says when it cannot run: no Iceberg writes here (see test_export.py for those)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditkit import config
from auditkit.cli import cli
from auditkit.errors import ConfigError, UsageError
from auditkit.export.iceberg import open_catalog
from auditkit.export.settings import catalog_target, check_export_table
from auditkit.store import Store
from tests.conftest import HitCounter


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "auditkit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_out_dir_is_a_local_sqlite_catalog_with_its_warehouse(tmp_path: Path) -> None:
    target = catalog_target({}, out_dir=tmp_path / "lake", env={})
    assert target.kind == "sql" and target.local_dir == (tmp_path / "lake").resolve()
    assert target.uri == f"sqlite:///{(tmp_path / 'lake' / 'catalog.db').resolve()}"
    assert target.warehouse == (tmp_path / "lake" / "warehouse").resolve().as_uri()
    assert target.namespace == "auditkit"


def test_flags_beat_env_beat_the_file(tmp_path: Path) -> None:
    table = {"catalog": "rest", "uri": "https://file.example/catalog", "namespace": "from_file"}
    env = {"AUDITKIT_EXPORT_CATALOG_URI": "https://env.example/catalog"}
    target = catalog_target(table, env=env)
    assert (target.kind, target.uri, target.namespace) == (
        "rest",
        "https://env.example/catalog",
        "from_file",
    )
    target = catalog_target(table, env=env, uri="https://flag.example/c", namespace="flag_ns")
    assert (target.uri, target.namespace) == ("https://flag.example/c", "flag_ns")


def test_secrets_come_from_the_environment_and_stay_out_of_repr_and_records(
    tmp_path: Path,
) -> None:
    (tmp_path / "password").write_text("pw-SECRET-from-file\n", encoding="utf-8")
    env = {
        "AUDITKIT_EXPORT_CATALOG_TOKEN": "tok-SECRET",
        "AUDITKIT_EXPORT_CATALOG_PASSWORD_FILE": str(tmp_path / "password"),
    }
    target = catalog_target(
        {"catalog": "rest", "uri": "https://cat.example/api"}, env=env, warehouse="lake"
    )
    assert target.token == "tok-SECRET" and target.password == "pw-SECRET-from-file"
    shown = repr(target) + str(target.public_dict()) + target.describe()
    assert "SECRET" not in shown
    assert target.public_dict()["token_set"] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[export]\ncatalgo = "rest"\n', "did you mean export.catalog?"),
        ('[export]\ntoken = "abc"\n', "secrets do not belong in the config file"),
        ('[export]\ncatalog = "hive"\n', "export.catalog must be one of sql, rest"),
        ('[export]\ncatalog = "rest"\nuri = "https://u:pw@cat.example"\n', "password"),
        ('[export]\ncatalog = "rest"\nuri = "thrift://metastore:9083"\n', "http or https URL"),
        ('[export]\nuri = "catalog.db"\n', "SQLAlchemy database URL"),
        ('[export]\nnamespace = "a b"\n', "export.namespace must be a namespace"),
        ("[export]\nwarehouse = 3\n", "export.warehouse must be a non-empty string"),
    ],
)
def test_the_export_table_is_strict(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="auditkit.toml") as caught:
        config.load(config_file=write_config(tmp_path, text), env={})
    assert message in str(caught.value)
    assert "pw" not in str(caught.value).replace("password", "")


def test_a_valid_export_table_loads_and_is_recorded(tmp_path: Path) -> None:
    text = (
        '[export]\ncatalog = "sql"\nuri = "postgresql+psycopg://lake@db.example/iceberg"\n'
        'warehouse = "s3://evidence/auditkit"\nnamespace = "audit.northwind"\n'
    )
    settings = config.load(config_file=write_config(tmp_path, text), env={})
    assert check_export_table(settings.export) == settings.export
    assert settings.public_dict()["export"]["warehouse"] == "s3://evidence/auditkit"
    target = catalog_target(settings.export, env={})
    assert (target.kind, target.namespace) == ("sql", "audit.northwind")


def test_a_sql_catalog_needs_a_warehouse_and_out_excludes_another_catalog(
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match="warehouse"):
        catalog_target({"uri": "sqlite:////tmp/c.db"}, env={})
    with pytest.raises(UsageError, match="give one or the other"):
        catalog_target({}, out_dir=tmp_path, uri="https://cat.example", env={})
    with pytest.raises(UsageError, match="needs --out DIR"):
        catalog_target({}, env={})
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(UsageError, match="not a folder"):
        catalog_target({}, out_dir=tmp_path / "file", env={})


def test_export_without_pyiceberg_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Store(tmp_path / "store.duckdb").close()
    for module in ("pyiceberg", "pyiceberg.catalog"):
        monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(
        cli, ["export", "--db", str(tmp_path / "store.duckdb"), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 3, result.output
    assert "pip install 'auditkit[export]'" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_catalog_is_an_export_error_without_the_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, listener: HitCounter
) -> None:
    # A REST catalog that answers 404 to everything: the listener fixture's plain server.
    monkeypatch.setenv("AUDITKIT_EXPORT_CATALOG_TOKEN", "tok-SECRET-never-shown")
    Store(tmp_path / "store.duckdb").close()
    url = f"http://{listener.host}/catalog"
    result = CliRunner().invoke(
        cli,
        ["export", "--db", str(tmp_path / "store.duckdb"), "--catalog", "rest"]
        + ["--catalog-uri", url, "--warehouse", "lake"],
    )
    assert result.exit_code == 6, result.output
    assert "cannot be opened" in result.output
    assert "tok-SECRET" not in result.output


def test_open_catalog_creates_the_namespace_once(tmp_path: Path) -> None:
    target = catalog_target({}, out_dir=tmp_path / "lake", env={})
    open_catalog(target)
    catalog = open_catalog(target)  # a second open finds it
    assert ("auditkit",) in catalog.list_namespaces()


def test_every_harvested_table_is_exported() -> None:
    """A table a migration adds to HARVESTED_TABLES must reach the export, or the same
    control SQL run on the export sees less than the store (PC-001 reads the population
    tables and the cursors)."""
    from auditkit.export.tables import EXPORT_TABLES
    from auditkit.store.schema import HARVESTED_TABLES

    exported = {t.name for t in EXPORT_TABLES}
    assert set(HARVESTED_TABLES) <= exported
    assert "_auditkit_cursors" in exported
