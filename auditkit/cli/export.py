"""`auditkit export`: the store as Apache Iceberg tables (library: `auditkit.export`)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from auditkit.cli.base import (
    cli,
    echo_json,
    every_account_store_options,
    json_option,
    load_settings,
)
from auditkit.export.settings import CATALOG_KINDS

logger = logging.getLogger("auditkit.export")


@cli.command("export")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Export into a local catalog in this folder (SQLite catalog.db + warehouse/).",
)
@click.option(
    "--catalog",
    type=click.Choice(CATALOG_KINDS),
    default=None,
    help="Kind of catalog without --out [env AUDITKIT_EXPORT_CATALOG; [export] catalog; sql].",
)
@click.option(
    "--catalog-uri",
    default=None,
    help="REST catalog URL, or SQL catalog SQLAlchemy URL "
    "[env AUDITKIT_EXPORT_CATALOG_URI; [export] uri].",
)
@click.option(
    "--warehouse",
    default=None,
    help="Where data files go (s3://…, a path) or a REST warehouse name "
    "[env AUDITKIT_EXPORT_WAREHOUSE; [export] warehouse].",
)
@click.option(
    "--namespace",
    default=None,
    help="Iceberg namespace [env AUDITKIT_EXPORT_NAMESPACE; [export] namespace; auditkit].",
)
@every_account_store_options
@json_option
def export_command(
    out_dir: Path | None,
    catalog: str | None,
    catalog_uri: str | None,
    warehouse: str | None,
    namespace: str | None,
    db_path: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Export the store as Apache Iceberg tables, adding only what changed.

    Every account's rows of every harvested table, the sent-mail archive and the books
    (runs, quarantine, integrity events) become Iceberg tables of Parquet files
    partitioned by account and month, which Spark, Trino, Snowflake or DuckDB read. Each
    table commits atomically; a second export adds and removes only the rows that changed,
    and one with nothing changed commits
    nothing. An interrupted export is finished by running it again. Needs the `export`
    extra (pyiceberg): pip install 'auditkit[export]'.

    Catalog credentials come only from AUDITKIT_EXPORT_CATALOG_TOKEN, _CREDENTIAL or
    _PASSWORD (or their _FILE variants).

    \b
    Examples:
      auditkit export --out exports/northwind          # local SQLite catalog + Parquet
      auditkit export --catalog rest --catalog-uri https://iceberg.example/catalog \\
          --warehouse analytics --json
    """
    from auditkit.export.iceberg import TableExport, export_store
    from auditkit.export.settings import catalog_target

    settings = load_settings(config_file, every_account=True, db_path=db_path)
    target = catalog_target(
        settings.export,
        out_dir=out_dir,
        catalog=catalog,
        uri=catalog_uri,
        warehouse=warehouse,
        namespace=namespace,
    )

    def progress(result: TableExport) -> None:
        logger.info(
            "%s: %s rows, %s added, %s removed%s",
            result.table,
            f"{result.rows:,}",
            f"{result.added:,}",
            f"{result.removed:,}",
            "" if result.snapshot_id is None else f", snapshot {result.snapshot_id}",
        )

    from auditkit.store import Store

    with Store(settings.db_path, read_only=True, **settings.store_options()) as store:
        summary = export_store(store, target, progress=progress)
    if as_json:
        echo_json(summary.to_dict())
        return
    click.echo(f"{'table':24} {'rows':>10} {'added':>10} {'removed':>10}  snapshot")
    for t in summary.tables:
        snapshot = "unchanged" if t.snapshot_id is None else str(t.snapshot_id)
        click.echo(f"{t.table:24} {t.rows:>10,} {t.added:>10,} {t.removed:>10,}  {snapshot}")
    click.echo(summary.one_line())
