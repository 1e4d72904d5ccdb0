"""`auditkit harvest` and `auditkit import`: fill the store from the API or from saved records."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any

import click

from auditkit.cli.base import cli, echo_json, json_option, load_settings, store_options
from auditkit.errors import NothingToDoError, SourceError, UsageError

if TYPE_CHECKING:  # the harvester (httpx, pyarrow) loads only when a command runs
    from auditkit.harvest import HarvestResult

DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"])


def _utc(value: datetime | None, *, end_of_day: bool = False) -> datetime | None:
    """Flag values are UTC; a bare date as --until means up to the end of that day."""
    if value is None:
        return None
    if end_of_day and value.time() == time(0, 0):
        value = value + timedelta(days=1)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StageLines:
    """Not a terminal (cron, CI, pipes): one summary line per finished stage on stderr."""

    def start(self, stage: str, total: int | None) -> None:
        pass

    def advance(self, stage: str, n: int) -> None:
        pass

    def finish(self, stage: str, count: int) -> None:
        click.echo(f"harvest: {stage}: {count} records", err=True)


class ProgressBars:
    """On a terminal: a click progress bar per stage on stderr when its total is known, and
    a count with its rate when it is not (a bar against an unknown total read "199/0")."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}
        self.counters: dict[str, tuple[int, float]] = {}  # stage → (count, started)

    def start(self, stage: str, total: int | None) -> None:
        if total:
            bar = click.progressbar(length=total, label=stage, file=sys.stderr, show_pos=True)
            self.bars[stage] = bar.__enter__()
        else:
            self.counters[stage] = (0, monotonic())

    def advance(self, stage: str, n: int) -> None:
        if stage in self.bars:
            self.bars[stage].update(n)
        elif stage in self.counters:
            count, started = self.counters[stage]
            count += n
            self.counters[stage] = (count, started)
            rate = count / max(monotonic() - started, 1e-6)
            click.echo(f"\r{stage}: {count:,} records ({rate:,.0f}/s)", err=True, nl=False)

    def finish(self, stage: str, count: int) -> None:
        bar = self.bars.pop(stage, None)
        if bar is not None:
            bar.__exit__(None, None, None)
            return
        started = self.counters.pop(stage, (0, monotonic()))[1]
        rate = count / max(monotonic() - started, 1e-6)
        click.echo(f"\rharvest: {stage}: {count:,} records ({rate:,.0f}/s)", err=True)


def _print_summary(result: HarvestResult, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"run {result.run_id}: {result.one_line()}")
    for name, count in sorted(result.counts.items()):
        click.echo(f"  {name:24} {count}")
    for name, count in sorted(result.skipped.items()):
        click.echo(f"  skipped {name:16} {count}")
    for error in result.errors:
        click.echo(f"  error: {error}")


@cli.command("harvest")
@click.option(
    "--since",
    metavar="DATE",
    type=DATE,
    default=None,
    help="Only emails received on or after DATE (UTC).",
)
@click.option(
    "--until",
    metavar="DATE",
    type=DATE,
    default=None,
    help="Only emails received up to the end of DATE (UTC).",
)
@click.option(
    "--mailbox",
    "mailbox_ids",
    multiple=True,
    metavar="ID_OR_ADDRESS",
    help="Only this mailbox's emails, by id or address as `auditkit status` lists them "
    "(repeatable); account-level data is always harvested.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 128),
    default=None,
    help="Parallel read_email calls [config harvest.concurrency; default 16].",
)
@click.option(
    "--full-audit-scan",
    is_flag=True,
    help="Re-read the whole audit log to detect entries removed at the source.",
)
@store_options
@json_option
def harvest_command(
    since: datetime | None,
    until: datetime | None,
    mailbox_ids: tuple[str, ...],
    concurrency: int | None,
    full_audit_scan: bool,
    db_path: Path | None,
    config_file: Path | None,
    account: str | None,
    as_json: bool,
) -> None:
    """Pull MultiMail records (and linked Intercom conversations) into the store.

    Reads the account, API keys, domains, webhooks, suppression list and mailboxes, the
    full read_email detail of every outbound message (final messages already stored are
    not read again outside the lookback window), the approval queue and the audit log.
    Intercom enrichment runs when INTERCOM_ACCESS_TOKEN is set. Before anything is
    written, each API is asked once: a wrong URL or a refused key fails within seconds,
    naming the cause. Safe to interrupt (Ctrl-C exits 130): the next run picks up where the
    store stands. Exits 4 when an API cannot be reached or a stage failed (partial run).

    \b
    Examples:
      export MULTIMAIL_API_KEY=mm_live_...
      auditkit harvest
      auditkit harvest --since 2026-07-01 --until 2026-09-30 --json
      auditkit harvest --mailbox support@northwind.example --full-audit-scan
      MULTIMAIL_API_KEY_EU=mm_live_... auditkit harvest --account eu   # [accounts.eu]
    """
    from auditkit.harvest import harvest, require_api_key
    from auditkit.sources.preflight import preflight
    from auditkit.store import Store

    settings = load_settings(config_file, account, db_path=db_path).with_overrides(
        concurrency=concurrency
    )
    start, end = _utc(since), _utc(until, end_of_day=True)
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--since {since:%Y-%m-%d} is not before --until {until:%Y-%m-%d}")
    require_api_key(settings)
    # A first run that cannot reach the API leaves no store file behind; an existing store
    # is opened (and its lock checked) first, and harvest() asks the APIs itself.
    fresh = not Path(settings.db_path).exists()
    if fresh:
        preflight(settings)
    progress = ProgressBars() if sys.stderr.isatty() and not as_json else StageLines()
    with Store.for_settings(settings) as store:
        result = harvest(
            settings,
            store,
            since=start,
            until=end,
            mailbox_ids=list(mailbox_ids) or None,
            full_audit_scan=full_audit_scan,
            progress=progress,
            check_endpoints=not fresh,
        )
    _print_summary(result, as_json)
    if result.outcome != "ok":
        raise SourceError(
            f"harvest {result.run_id} was partial: {len(result.errors)} stage(s) failed; "
            "rerun to complete it"
        )


@cli.command("import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@store_options
@json_option
def import_command(
    files: tuple[Path, ...],
    db_path: Path | None,
    config_file: Path | None,
    account: str | None,
    as_json: bool,
) -> None:
    """Load saved read_email records (JSON array or JSONL, /v1 or integration-guide shape).

    For evidence exported before auditkit existed. Records without an id or with wrong
    types are quarantined and counted, never dropped silently. A file that is not UTF-8
    text is refused (exit 3); when no record at all could be imported, exit 9.

    \b
    Examples:
      auditkit import exports/read_email_2026-07.jsonl
      auditkit import a.json b.jsonl --db audit.duckdb --json
    """
    from auditkit.harvest import import_emails
    from auditkit.store import Store

    settings = load_settings(config_file, account, db_path=db_path)
    with Store.for_settings(settings) as store:
        result = import_emails(settings, store, list(files))
    imported = result.counts.get("emails_imported", 0)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(
            f"imported {imported} emails from {len(files)} file(s); "
            f"{result.quarantined} quarantined"
        )
    if not imported:
        raise NothingToDoError(
            f"nothing imported: no usable read_email record in {len(files)} file(s)"
            + (
                f" ({result.quarantined} quarantined; see `auditkit status`)"
                if result.quarantined
                else ""
            )
        )
