"""Evidence-pack commands: `report` (a period), `evidence` (messages or one recipient), `verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from auditkit.cli.base import (
    cli,
    echo_json,
    json_option,
    load_settings,
    period_option,
    store_options,
)
from auditkit.cli.signing import load_pack_signer, signing_flags
from auditkit.errors import UsageError
from auditkit.findings import parse_period

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


def _echo_pack(summary: dict[str, object]) -> None:
    counts = summary["counts"]
    assert isinstance(counts, dict)
    click.echo(f"pack:     {summary['pack']} ({summary['period']})")
    click.echo(f"messages: {counts.get('messages', 0):,}   findings: {counts.get('findings', 0):,}")
    click.echo(f"manifest: sha256 {summary['manifest_sha256']}")
    signing = summary.get("signing") or {}
    assert isinstance(signing, dict)
    pdf = signing.get("pdf") or {}
    if pdf.get("signer"):
        click.echo(f"signed:   {pdf['file']} by {pdf['signer']} ({pdf['profile']})")
    if stamp := pdf.get("document_timestamp"):
        click.echo(f"timestamp: {pdf['file']} at {stamp['time']} by {stamp['tsa']}")
    if signing.get("manifest_timestamp"):
        click.echo(f"timestamp: manifest.json, in {signing['manifest_timestamp']['file']}")
    click.echo(f"check it: auditkit verify {summary['pack']}")


@cli.command()
@period_option(required=True)
@OUT_OPTION
@SAMPLE_OPTION
@SEED_OPTION
@signing_flags
@store_options
@json_option
def report(
    period: str,
    out_dir: Path,
    sample_size: int,
    seed: int,
    db_path: Path | None,
    config_file: Path | None,
    account: str | None,
    as_json: bool,
    **signing: Any,
) -> None:
    """Write the evidence pack for a period from the store (no network).

    Runs the controls over the period, then writes report.pdf, report.html, messages.csv
    (every outbound message), decisions.csv, findings.csv, audit_log.csv and manifest.json.
    Same store and options give byte-identical files. With --sign-key, report.pdf is signed
    (PAdES) as an update appended to those bytes; with --tsa-url, the signature, report.pdf
    and manifest.json (manifest.json.tsr) are timestamped. A bad key or certificate exits 3
    before any work; a TSA that fails exits 4 (it is asked once before the controls run,
    then for each timestamp) and leaves any previous pack as it was.

    \b
    Examples:
      auditkit report --period 2026Q3 --out reports/2026Q3
      auditkit report --period last-quarter --out /srv/evidence/q --sample-size 50 --seed 7
      auditkit report --period 2026-08 --out reports/aug --json
      auditkit report --period 2026Q3 --out reports/2026Q3 --sign-key key.pem \\
          --sign-cert cert.pem --tsa-url http://tsa.example/tsr
      auditkit report --period 2026Q3 --account eu --out reports/eu/2026Q3
    """
    from auditkit.pipeline import build_pack  # the store and the renderer: only when run

    settings = load_settings(config_file, account, db_path=db_path)
    signer = load_pack_signer(settings, **signing)  # a bad key fails here, before any work
    summary = build_pack(
        settings,
        parse_period(period),
        out_dir,
        sample_size=sample_size,
        seed=seed,
        signer=signer,
    )
    if as_json:
        echo_json(summary)
    else:
        _echo_pack(summary)


@cli.command()
@click.argument("message_ids", nargs=-1)
@click.option(
    "--recipient",
    default=None,
    help="Every outbound message to (or copied to) this address; any case, with or without "
    'a display name ("Jane Roe <jane@example.com>").',
)
@click.option(
    "--period",
    default=None,
    help="Limit --recipient to a period [default: all days with such messages].",
)
@OUT_OPTION
@SAMPLE_OPTION
@SEED_OPTION
@signing_flags
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
    account: str | None,
    as_json: bool,
    **signing: Any,
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
    from auditkit.pipeline import build_pack, selection_period

    settings = load_settings(config_file, account, db_path=db_path)
    signer = load_pack_signer(settings, **signing)  # a bad key fails here, before any work
    p = (
        parse_period(period)
        if period
        else selection_period(settings, message_ids or None, recipient)
    )
    summary = build_pack(
        settings,
        p,
        out_dir,
        message_ids=list(message_ids) or None,
        recipient=recipient,
        sample_size=sample_size,
        seed=seed,
        signer=signer,
    )
    if as_json:
        echo_json(summary)
    else:
        _echo_pack(summary)


@cli.command()
@click.argument("pack_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--trust",
    "trust_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Trust anchors (PEM bundle or DER certificate) for the signer and TSAs; repeatable. "
    "Without --trust or --trust-system, signatures are checked for integrity only.",
)
@click.option("--trust-system", is_flag=True, help="Also trust the system's CA bundle (TLS roots).")
@json_option
def verify(
    pack_dir: Path, trust_files: tuple[Path, ...], trust_system: bool, as_json: bool
) -> None:
    """Check every file of a pack against its manifest.json, and its signatures and
    timestamps when it has them (exit 7 on any difference).

    Names each file altered, added or removed since the pack was written, once, on stdout
    (with --json, in the JSON document). In a signed pack it also checks report.pdf's
    signature and timestamps and manifest.json.tsr, and says who signed and when; with
    --trust it also checks that the signer and the TSA chain to those anchors (offline:
    revocation is not checked), without it it claims integrity only. A path that is not
    a pack at all, with no manifest.json or one auditkit did not write, exits 3 (a missing
    path exits 2): only a real pack that changed exits 7.

    \b
    Examples:
      auditkit verify reports/2026Q3
      auditkit verify reports/2026Q3 --json
      auditkit verify reports/2026Q3 --trust our-ca.pem
    """
    from auditkit.pack import verify_pack
    from auditkit.signing.settings import load_trust

    result = verify_pack(pack_dir, trust=load_trust(trust_files, trust_system))
    if as_json:
        echo_json(result.to_dict())
    elif result.ok:
        click.echo(
            f"ok: {result.checked} files match manifest.json (sha256 {result.manifest_sha256})"
        )
    else:
        for problem in result.problems():
            click.echo(problem)
    if not as_json:  # who signed and when, also beside the problems: that is the context
        for line in result.signature_lines:
            click.echo(line)
    # The differences are on stdout now; the error line the CLI prints carries only counts.
    result.raise_for_problems(name_files=False)
