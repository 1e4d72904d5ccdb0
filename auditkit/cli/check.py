"""`auditkit check` (run the controls over a period) and `auditkit controls` (the catalogue)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from auditkit.cli.base import cli, echo_json, json_option, load_settings, store_options
from auditkit.controls import catalogue, run_controls
from auditkit.errors import EXIT_CONTROLS_FAILED
from auditkit.findings import SEVERITY_RANK, ControlResult, Period, parse_period
from auditkit.store import Store

FAIL_ON = click.Choice(["low", "medium", "high"])


def failing_results(results: Sequence[ControlResult], fail_on: str) -> list[ControlResult]:
    """Controls at or above `fail_on` with an open finding, or that could not be evaluated.

    Waived and review findings do not fail a check: they are shown, not counted.
    """
    floor = SEVERITY_RANK[fail_on]
    return [
        r
        for r in results
        if SEVERITY_RANK[r.severity] >= floor
        and (r.status == "error" or any(f.state == "open" for f in r.findings))
    ]


def _period_dict(period: Period) -> dict[str, str]:
    return {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()}


def _print_table(period: Period, results: Sequence[ControlResult], fail_on: str) -> None:
    click.echo(f"period {period.label} ({period.start}..{period.end})")
    click.echo(f"{'ID':8}  {'SEVERITY':8}  {'STATUS':14}  {'FINDINGS':>8}  TITLE")
    for r in results:
        click.echo(f"{r.id:8}  {r.severity:8}  {r.status:14}  {len(r.findings):>8}  {r.title}")
    lines = []
    for r in results:
        if r.status in ("error", "not_applicable"):
            lines.append(f"{r.id} {r.status}: {r.detail}")
        for f in r.findings:
            lines.append(f"{r.id} [{f.state}] {f.target_type} {f.target_id}: {f.reason}")
    if lines:
        click.echo("")
        for line in lines:
            click.echo(line)
    failing = failing_results(results, fail_on)
    click.echo("")
    click.echo(
        f"{len(failing)} control(s) failing at or above {fail_on}"
        + (f": {', '.join(r.id for r in failing)}" if failing else "")
    )


@cli.command()
@click.option(
    "--period",
    default="last-quarter",
    show_default=True,
    help="2026Q3, 2026-07, 2026-07-01..2026-09-30, last-quarter or last-month.",
)
@click.option(
    "--fail-on",
    type=FAIL_ON,
    default="low",
    show_default=True,
    help="Lowest severity whose open findings make the exit code 10.",
)
@click.option(
    "--control",
    "control_ids",
    multiple=True,
    metavar="ID",
    help="Run only this control (repeatable), e.g. --control OVS-001.",
)
@store_options
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    period: str,
    fail_on: str,
    control_ids: tuple[str, ...],
    db_path: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Run the compliance controls over one period of the store (read-only).

    Prints one line per control (id, severity, status, findings) and then each finding.
    Waived findings and findings marked for review are shown but never fail the check;
    OVS-007 findings are informational (severity low), so use --fail-on medium to ignore them.

    \b
    Exit codes: 0 no open finding at or above --fail-on, 10 controls failed,
    3 bad option or config, 5 store missing or locked.

    \b
    Examples:
      auditkit check --period 2026Q3
      auditkit check --period 2026-07 --fail-on high
      auditkit check --period 2026-07-01..2026-09-30 --control OVS-001 --control CS-003
      auditkit check --period last-quarter --json > check.json
    """
    settings = load_settings(config_file, db_path=db_path)
    the_period = parse_period(period)
    with Store(settings.db_path, read_only=True) as store:
        results = run_controls(store, settings, the_period, only=control_ids or None)
    if as_json:
        echo_json({"period": _period_dict(the_period), "controls": [r.to_dict() for r in results]})
    else:
        _print_table(the_period, results, fail_on)
    if failing_results(results, fail_on):
        ctx.exit(EXIT_CONTROLS_FAILED)


@cli.command("controls")
@json_option
def controls_command(as_json: bool) -> None:
    """List the control catalogue: ids, severities, what each checks and why.

    \b
    Examples:
      auditkit controls
      auditkit controls --json    # includes each control's evidence SQL
    """
    items = catalogue()
    if as_json:
        echo_json({"controls": [c.to_dict() for c in items]})
        return
    click.echo(f"{'ID':8}  {'SEVERITY':8}  {'APPLIES TO':17}  TITLE")
    for c in items:
        click.echo(f"{c.id:8}  {c.severity:8}  {c.applies_to:17}  {c.title}")
        click.echo(f"{'':8}  reference: {c.reference}")
