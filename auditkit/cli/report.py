"""Evidence-pack commands: `report` (a period), `evidence` (messages or one recipient), `verify`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import click

from auditkit.cli.base import (
    cli,
    echo_json,
    json_option,
    load_settings,
    period_option,
    store_options,
)
from auditkit.config import Settings
from auditkit.errors import UsageError
from auditkit.findings import Period, parse_period
from auditkit.store import Store

OUT_OPTION = click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Pack folder; written beside it and renamed into place, replacing an older pack "
    "(never a folder holding files auditkit did not write: that exits 6).",
)
SAMPLE_OPTION = click.option(
    "--sample-size",
    default=25,
    show_default=True,
    type=click.IntRange(min=0),
    help="Messages drawn at random for evidence pages in the PDF.",
)
SEED_OPTION = click.option(
    "--seed",
    default=42,
    show_default=True,
    type=int,
    help="Seed of the sample (printed in the report, so it can be redrawn).",
)


def _build(
    settings: Settings,
    period: Period,
    out_dir: Path,
    *,
    message_ids: Sequence[str] | None = None,
    recipient: str | None = None,
    sample_size: int = 25,
    seed: int = 42,
) -> dict[str, object]:
    from auditkit.controls import run_controls
    from auditkit.controls.settings import vocabulary_for
    from auditkit.pack import check_replaceable
    from auditkit.report import write_pack
    from auditkit.report.messages import recipient_message_ids

    # Before the controls run (minutes on a large store): a folder holding files auditkit
    # did not write is refused now, not after the work. write_pack checks again.
    check_replaceable(out_dir)
    with Store(settings.db_path, read_only=True) as store:
        # A pack of chosen messages (or one recipient's) only reports findings about them,
        # so only they are checked.
        chosen = list(message_ids) if message_ids is not None else None
        if recipient is not None:
            chosen = recipient_message_ids(store, settings, period, recipient)
        vocabulary = vocabulary_for(store.con, settings)
        results = run_controls(store, settings, period, message_ids=chosen, vocabulary=vocabulary)
        pack = write_pack(
            store,
            settings,
            period,
            out_dir,
            results=results,
            message_ids=message_ids,
            recipient=recipient,
            sample_size=sample_size,
            seed=seed,
            vocabulary=vocabulary,
        )
    return pack.to_dict() | {"period": period.label}


def _echo_pack(summary: dict[str, object]) -> None:
    counts = summary["counts"]
    assert isinstance(counts, dict)
    click.echo(f"pack:     {summary['pack']} ({summary['period']})")
    click.echo(f"messages: {counts.get('messages', 0):,}   findings: {counts.get('findings', 0):,}")
    click.echo(f"manifest: sha256 {summary['manifest_sha256']}")
    click.echo(f"check it: auditkit verify {summary['pack']}")


@cli.command()
@period_option(required=True)
@OUT_OPTION
@SAMPLE_OPTION
@SEED_OPTION
@store_options
@json_option
def report(
    period: str,
    out_dir: Path,
    sample_size: int,
    seed: int,
    db_path: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Write the evidence pack for a period from the store (no network).

    Runs the controls over the period, then writes report.pdf, report.html, messages.csv
    (every outbound message), decisions.csv, findings.csv, audit_log.csv and manifest.json.
    Same store and options give byte-identical files.

    \b
    Examples:
      auditkit report --period 2026Q3 --out reports/2026Q3
      auditkit report --period last-quarter --out /srv/evidence/q --sample-size 50 --seed 7
      auditkit report --period 2026-08 --out reports/aug --json
    """
    settings = load_settings(config_file, db_path=db_path)
    summary = _build(settings, parse_period(period), out_dir, sample_size=sample_size, seed=seed)
    if as_json:
        echo_json(summary)
    else:
        _echo_pack(summary)


def _span_period(
    settings: Settings, message_ids: Sequence[str] | None, recipient: str | None
) -> Period:
    """The days the selected messages were created on, for packs asked for without --period."""
    with Store(settings.db_path, read_only=True) as store:
        if message_ids:
            found = {
                r[0]
                for r in store.con.execute(
                    "SELECT id FROM multimail_emails WHERE direction = 'outbound' AND list_contains($ids, id)",
                    {"ids": list(message_ids)},
                ).fetchall()
            }
            if unknown := [m for m in dict.fromkeys(message_ids) if m not in found]:
                raise UsageError(
                    f"no outbound message with id {', '.join(unknown[:10])} in {settings.db_path}"
                    + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                )
            row = store.con.execute(
                "SELECT min(created_at), max(created_at), count(*) FROM multimail_emails "
                "WHERE direction = 'outbound' AND list_contains($ids, id)",
                {"ids": list(message_ids)},
            ).fetchall()[0]
            what = "message id(s) " + ", ".join(message_ids[:5])
        else:
            row = store.con.execute(
                "SELECT min(created_at), max(created_at), count(*) FROM multimail_emails "
                "WHERE direction = 'outbound' AND len(list_filter(coalesce(to_addresses, []) || "
                "coalesce(cc_addresses, []), lambda a: lower(trim(a)) = $r OR lower(a) LIKE '%<' || $r || '>')) > 0",
                {"r": (recipient or "").strip().lower()},
            ).fetchall()[0]
            what = f"recipient {recipient}"
    first, last, n = row
    if not n or first is None:
        raise UsageError(f"no outbound message with a creation time found for {what}")
    start, end = date(first.year, first.month, first.day), date(last.year, last.month, last.day)
    return Period(f"{start.isoformat()}..{end.isoformat()}", start, end)


@cli.command()
@click.argument("message_ids", nargs=-1)
@click.option(
    "--recipient", default=None, help="Every outbound message to (or copied to) this address."
)
@click.option(
    "--period",
    default=None,
    help="Limit --recipient to a period [default: all days with such messages].",
)
@OUT_OPTION
@SAMPLE_OPTION
@SEED_OPTION
@store_options
@json_option
def evidence(
    message_ids: tuple[str, ...],
    recipient: str | None,
    period: str | None,
    out_dir: Path,
    sample_size: int,
    seed: int,
    db_path: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Write an evidence pack for chosen messages, or for everything sent to one person.

    The pack has the same files as `report`, limited to those messages: each one gets an
    evidence page (Intercom conversation → draft → approval → delivery) in the PDF. The
    per-message checks run on just the selected messages (same verdicts as a full check,
    in a fraction of the time on a large store).

    \b
    Examples:
      auditkit evidence em_01J8Z3 em_01J8Z4 --out evidence/complaint-1142
      auditkit evidence --recipient jane@example.com --out evidence/jane
      auditkit evidence --recipient jane@example.com --period 2026Q3 --out evidence/jane-q3 --json
    """
    if bool(message_ids) == bool(recipient):
        raise UsageError("give either MESSAGE_ID... or --recipient ADDRESS (not both, not neither)")
    if message_ids and period:
        raise UsageError(
            "--period only applies with --recipient; message ids select exactly those messages"
        )
    settings = load_settings(config_file, db_path=db_path)
    p = parse_period(period) if period else _span_period(settings, message_ids or None, recipient)
    summary = _build(
        settings,
        p,
        out_dir,
        message_ids=list(message_ids) or None,
        recipient=recipient,
        sample_size=sample_size,
        seed=seed,
    )
    if as_json:
        echo_json(summary)
    else:
        _echo_pack(summary)


@cli.command()
@click.argument("pack_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
def verify(pack_dir: Path, as_json: bool) -> None:
    """Check every file of a pack against its manifest.json (exit 7 on any difference).

    Names each file altered, added or removed since the pack was written, once, on stdout
    (with --json, in the JSON document). A path that is not a pack at all, with no
    manifest.json or one auditkit did not write, exits 3 (a missing path exits 2): only a
    real pack that changed exits 7.

    \b
    Examples:
      auditkit verify reports/2026Q3
      auditkit verify reports/2026Q3 --json
    """
    from auditkit.pack import verify_pack

    result = verify_pack(pack_dir)
    if as_json:
        echo_json(result.to_dict())
    elif result.ok:
        click.echo(
            f"ok: {result.checked} files match manifest.json (sha256 {result.manifest_sha256})"
        )
    else:
        for problem in result.problems():
            click.echo(problem)
    # The differences are on stdout now; the error line the CLI prints carries only counts.
    result.raise_for_problems(name_files=False)
