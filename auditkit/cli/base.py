"""The click group, shared options and the one place errors become exit codes.

Command modules (`auditkit.cli.<topic>`) attach commands to `cli` and call library
functions; they never choose exit codes themselves except through `AuditkitError`
subclasses and `findings.verdict_exit_code`. Whatever goes wrong, the user sees one line:
`Error: …` on stderr (a JSON log line with --log-format json, and a JSON object on stdout
when the command was given --json), never a traceback unless --debug.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from auditkit import __version__, config
from auditkit.errors import EXIT_INTERRUPTED, AuditkitError, one_line

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


INTERRUPTED_MESSAGE = (
    "interrupted: the store is consistent (every batch commits with its cursor); "
    "rerun the same command to continue"
)


def report_failure(ctx: click.Context, message: str, exit_code: int, kind: str) -> None:
    """The one place a failure reaches the user: stderr, the JSON log, --json stdout."""
    message = one_line(message)
    if ctx.meta.get("auditkit.log_format") == "json":
        click.echo(
            json.dumps(
                {
                    "level": "error",
                    "logger": "auditkit",
                    "message": message,
                    "exit_code": exit_code,
                },
                sort_keys=True,
            ),
            err=True,
        )
    else:
        click.echo(f"Error: {message}", err=True)
    # One JSON document on stdout: the command's own summary when it printed one, else this.
    if ctx.meta.get("auditkit.json") and not ctx.meta.get("auditkit.json_printed"):
        echo_json({"error": {"type": kind, "message": message, "exit_code": exit_code}})


class AuditkitGroup(click.Group):
    """Translates AuditkitError into one error line and its exit code, Ctrl-C into 130;
    lists each command with its whole first sentence (click cuts it at the line width)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, command.get_short_help_str(limit=1000))
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AuditkitError as exc:
            if ctx.meta.get("auditkit.debug"):
                raise
            report_failure(ctx, str(exc), exc.exit_code, type(exc).__name__)
            ctx.exit(exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            if ctx.meta.get("auditkit.debug"):
                raise
            report_failure(ctx, INTERRUPTED_MESSAGE, EXIT_INTERRUPTED, "Interrupted")
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=AuditkitGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="auditkit")
@click.option("-v", "--verbose", count=True, help="More log detail on stderr (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log line format on stderr; json suits log shippers.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool, log_format: str) -> None:
    """Evidence about email that AI agents send through MultiMail.

    Harvest MultiMail (and linked Intercom conversations) into a local DuckDB store,
    check it against oversight and CAN-SPAM controls, and write evidence packs
    (PDF, HTML, CSV and a hashed manifest) that a regulator can verify.

    \b
    Examples:
      auditkit demo                                  # everything, on the bundled sample quarter
      auditkit harvest                               # pull MultiMail into ./auditkit.duckdb
      auditkit check --period 2026Q3                 # run the controls
      auditkit report --period 2026Q3 --out reports/2026Q3
      auditkit verify reports/2026Q3
    """
    ctx.meta["auditkit.debug"] = debug
    ctx.meta["auditkit.log_format"] = log_format
    configure_logging(verbose, log_format)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            },
            sort_keys=True,
        )


def configure_logging(verbose: int, log_format: str = "text") -> None:
    """Only the CLI configures logging; libraries just log. Third-party loggers stay quiet."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    # WeasyPrint warns on every render that it falls back to fontTools for font subsetting
    # (no HarfBuzz-Subset on Debian 12); that is not the user's problem, so only -vv shows it.
    # pyHanko logs a warning with a traceback for every signer it cannot chain to a trust
    # anchor; `verify` says that itself, in one line.
    for renderer in ("weasyprint", "fontTools", "pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(renderer).setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)


def store_options(fn: F) -> F:
    """`--db`, `--config` and `--account`, shared by every command that reads settings."""
    fn = click.option(
        "--account",
        default=None,
        metavar="NAME",
        help="The MultiMail account to work on ([accounts.NAME] in the config) "
        "[default: the only one configured].",
    )(fn)
    return every_account_store_options(fn)


def every_account_store_options(fn: F) -> F:
    """`--db` and `--config`, for a command that works on the whole store (every account)."""
    fn = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML config file [default: $AUDITKIT_CONFIG or ./auditkit.toml if present].",
    )(fn)
    fn = click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="DuckDB store [env AUDITKIT_DB; default ./auditkit.duckdb].",
    )(fn)
    return fn


PERIOD_HELP = "2026Q3, 2026-07, 2026-07-01..2026-09-30, last-quarter or last-month."
FAIL_ON = click.Choice(["low", "medium", "high"])


def period_option(*, required: bool = False) -> Callable[[F], F]:
    """`--period`, shared by check, report, run and evidence (one help text)."""
    if required:
        return click.option("--period", required=True, help=PERIOD_HELP)
    return click.option("--period", default="last-quarter", show_default=True, help=PERIOD_HELP)


def fail_on_option(fn: F) -> F:
    """`--fail-on`, shared by check and run."""
    return click.option(
        "--fail-on",
        type=FAIL_ON,
        default="low",
        show_default=True,
        help="Lowest severity whose open findings make the exit code 10 (or 11 when inconclusive).",
    )(fn)


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # A failing command still prints JSON on stdout (report_failure reads this).
    if value:
        ctx.meta["auditkit.json"] = True
    return value


def json_option(fn: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=_remember_json,
        help='Print a JSON summary on stdout (an {"error": …} object when the command fails).',
    )(fn)


def load_settings(
    config_file: Path | None,
    account: str | None = None,
    *,
    every_account: bool = False,
    **flags: Any,
) -> config.Settings:
    """Settings for a command, saying which config file is in use (or that none is): on a
    terminal as a line on stderr, under cron in the log (-v) and in `--json` output.

    They are `account`'s (`--account`; or the only account configured), unless
    `every_account` (`status`) and no account was named."""
    settings = config.load(config_file=config_file, **flags)
    source = config.describe_source(settings)
    if sys.stderr.isatty():
        click.echo(source, err=True)
    else:
        logging.getLogger("auditkit.config").info(source)
    if every_account and account is None:
        return settings
    return settings.for_account(account)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["auditkit.json_printed"] = True


def main() -> None:
    # `auditkit … | head` should end quietly, not with a BrokenPipeError traceback.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    cli(prog_name="auditkit")
