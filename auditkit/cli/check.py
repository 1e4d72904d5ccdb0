"""`auditkit check` (run the controls over a period) and `auditkit controls` (the catalogue)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from auditkit.cli.base import (
    cli,
    echo_json,
    fail_on_option,
    json_option,
    load_settings,
    period_option,
    store_options,
)
from auditkit.errors import NothingToDoError
from auditkit.findings import (
    ControlResult,
    Period,
    failing_controls,
    inconclusive_controls,
    parse_period,
    verdict_exit_code,
)

# The controls, the store (DuckDB, pyarrow) and the vocabulary load inside each command, so
# `auditkit --help` does not pay for them (tests/cli/test_startup.py).


def _period_dict(period: Period) -> dict[str, str]:
    return {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()}


def _print_table(period: Period, results: Sequence[ControlResult], fail_on: str) -> None:
    click.echo(f"period {period.label} ({period.start}..{period.end})")
    click.echo(f"{'ID':8}  {'SEVERITY':8}  {'STATUS':14}  {'FINDINGS':>8}  TITLE")
    for r in results:
        click.echo(f"{r.id:8}  {r.severity:8}  {r.status:14}  {len(r.findings):>8}  {r.title}")
    lines = []
    for r in results:
        if r.status in ("error", "not_applicable", "inconclusive"):
            lines.append(f"{r.id} {r.status}: {r.detail}")
        for f in r.findings:
            lines.append(f"{r.id} [{f.state}] {f.target_type} {f.target_id}: {f.reason}")
    if lines:
        click.echo("")
        for line in lines:
            click.echo(line)
    failing = failing_controls(results, fail_on)
    inconclusive = inconclusive_controls(results, fail_on)
    click.echo("")
    click.echo(
        f"{len(failing)} control(s) failing at or above {fail_on}"
        + (f": {', '.join(r.id for r in failing)}" if failing else "")
    )
    if inconclusive:
        click.echo(
            f"{len(inconclusive)} control(s) inconclusive: {', '.join(r.id for r in inconclusive)}"
            " (see `auditkit vocabulary`)"
        )


@cli.command()
@period_option()
@fail_on_option
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
    account: str | None,
    as_json: bool,
) -> None:
    """Run the compliance controls over one period of the store (read-only).

    Prints one line per control (id, severity, status, findings) and then each finding.
    Waived findings and findings marked for review are shown but never fail the check;
    OVS-007 findings are informational (severity low), so use --fail-on medium to ignore them.

    \b
    Exit codes: 0 no open finding at or above --fail-on, 10 controls failed, 11 none
    failed but one was inconclusive (an audit-log meaning is unknown: see
    `auditkit vocabulary`), 9 no outbound mail in the period (nothing was checked, which
    is not a clean result), 2 bad option, 3 bad config, 5 store missing or locked.

    \b
    Examples:
      auditkit check --period 2026Q3
      auditkit check --period 2026-07 --fail-on high
      auditkit check --period 2026-07-01..2026-09-30 --control OVS-001 --control CS-003
      auditkit check --period last-quarter --json > check.json
      auditkit check --period 2026Q3 --account eu      # one of several [accounts.NAME]
    """
    from auditkit.controls import nothing_checked, outbound_in_period, run_controls
    from auditkit.store import Store

    settings = load_settings(config_file, account, db_path=db_path)
    the_period = parse_period(period)
    with Store.for_settings(settings, read_only=True) as store:
        results = run_controls(store, settings, the_period, only=control_ids or None)
        outbound = outbound_in_period(store, the_period)
    # On stderr, so they show with --json too and never corrupt its stdout.
    for warning in results.warnings:
        click.echo(f"warning: {warning.message}", err=True)
    if as_json:
        echo_json(
            {
                "period": _period_dict(the_period),
                "outbound_messages": outbound,
                "config": str(settings.config_file) if settings.config_file else None,
                "controls": [r.to_dict() for r in results],
            }
        )
    else:
        _print_table(the_period, results, fail_on)
    if code := verdict_exit_code(results, fail_on):
        ctx.exit(code)
    if not outbound:
        raise NothingToDoError(nothing_checked(the_period))


@cli.command("controls")
@json_option
def controls_command(as_json: bool) -> None:
    """List the control catalogue: ids, severities, what each checks and why.

    \b
    Examples:
      auditkit controls
      auditkit controls --json    # includes each control's evidence SQL
    """
    from auditkit.controls import catalogue

    items = catalogue()
    if as_json:
        echo_json({"controls": [c.to_dict() for c in items]})
        return
    click.echo(f"{'ID':8}  {'SEVERITY':8}  {'APPLIES TO':17}  TITLE")
    for c in items:
        click.echo(f"{c.id:8}  {c.severity:8}  {c.applies_to:17}  {c.title}")
        click.echo(f"{'':8}  reference: {c.reference}")


@cli.command("vocabulary")
@store_options
@json_option
def vocabulary_command(
    db_path: Path | None, config_file: Path | None, account: str | None, as_json: bool
) -> None:
    """Show how the audit log is read: every action seen, and what each meaning maps to.

    MultiMail documents no audit action names, so auditkit infers which actions mean
    "email sent", "approved", "mode changed" and so on from the records themselves
    (an entry at each email's approved_at, and so on), unless [controls.audit_actions]
    names them. A meaning that cannot be established makes the controls that need it
    inconclusive; this listing says where each meaning came from, with support counts.

    \b
    Examples:
      auditkit vocabulary
      auditkit vocabulary --json | jq '.meanings.approved'
      # then, if a meaning is wrong or unknown, in auditkit.toml:
      #   [controls.audit_actions]
      #   approved = { action = "oversight.decide", metadata = { action = "approve" } }
    """
    from auditkit.audit_actions import observed_actions
    from auditkit.controls.settings import ControlSettings
    from auditkit.store import Store
    from auditkit.vocabulary import MEANINGS
    from auditkit.vocabulary_inference import resolve_vocabulary

    settings = load_settings(config_file, account, db_path=db_path)
    configured = ControlSettings.from_settings(settings).audit_actions
    with Store.for_settings(settings, read_only=True) as store:
        con = store.cursor()
        try:
            vocabulary = resolve_vocabulary(con, configured)
            actions = observed_actions(con)
        finally:
            con.close()
    if as_json:
        echo_json({"actions": actions, **vocabulary.to_dict()})
        return
    click.echo(f"{'ACTION':40}  {'COUNT':>9}  RESOURCE TYPES / METADATA KEYS")
    for a in actions:
        click.echo(
            f"{(a['action'] or '(none)'):40}  {a['count']:>9,}  "
            f"{', '.join(a['resource_types']) or '-'} / {', '.join(a['metadata_keys']) or '-'}"
        )
        if a["example"]:
            click.echo(f"{'':40}  {'':>9}  e.g. {a['example']['id']}: {a['example']['metadata']}")
    if not actions:
        click.echo("(the audit log is empty)")
    click.echo("")
    click.echo(f"{'MEANING':18}  {'RECOGNISED AS':48}  SOURCE")
    for meaning in MEANINGS:
        mapping = vocabulary[meaning]
        click.echo(f"{meaning:18}  {mapping.describe():48}  {mapping.provenance()}")
    for family, counts in sorted(vocabulary.unexplained.items()):
        listed = ", ".join(f"{a} ({n:,})" for a, n in counts.items())
        click.echo(f"\nentries on {family} resources that no meaning explains: {listed}")
