"""Commands that string the stages together: `run` (cron), `demo` (sample quarter), `status`."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from auditkit.cli.signing import load_pack_signer, signing_flags
from auditkit.config_accounts import DEFAULT_ACCOUNT
from auditkit.errors import ConfigError, NothingToDoError, SourceError
from auditkit.findings import parse_period, verdict_exit_code

if TYPE_CHECKING:  # the pipeline (store, controls, renderer) loads only when a command runs
    from auditkit.pipeline import PipelineResult
    from auditkit.store import StoreStatus


def _stage_logger(quiet: bool) -> Callable[[str], None]:
    """One line per stage on stderr; nothing at all under cron unless something fails."""
    return (lambda _msg: None) if quiet else (lambda msg: click.echo(msg, err=True))


def _print_result(result: PipelineResult, fail_on: str, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_dict(fail_on))
        return
    failing = result.failing(fail_on)
    click.echo(f"period:  {result.period.label} ({result.period.start}..{result.period.end})")
    click.echo(f"pack:    {result.pack_dir}")
    click.echo(
        f"controls: {len(result.controls)} run, {len(failing)} failing at or above {fail_on}"
    )
    for r in failing:
        open_count = sum(f.state == "open" for f in r.findings)
        click.echo(
            f"  {r.id:8} {r.severity:6} {r.status:5} {open_count} open finding(s)  {r.title}"
        )
    for r in result.inconclusive(fail_on):
        click.echo(f"  {r.id:8} {r.severity:6} inconclusive: {r.detail}")


def _require_complete_harvest(result: PipelineResult) -> None:
    """A pack from a partial harvest is written (it shows what the store holds), but the run
    must not look compliant: a source that could not be reached is the tool failing (exit 4),
    whatever the controls found in the data that did arrive."""
    harvest = result.harvest
    if harvest.get("outcome") != "ok":
        errors = harvest.get("errors") or []
        raise SourceError(
            f"harvest {harvest.get('run_id')} was partial ({len(errors)} stage(s) failed"
            + (f", first: {errors[0]}" if errors else "")
            + f"); the pack in {result.pack_dir} covers only what the store holds; "
            "rerun to complete it"
        )


@cli.command()
@period_option()
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Output root; the pack goes to OUT/<period>/ and replaces an older "
    "pack (never files auditkit did not write: that exits 6).",
)
@fail_on_option
@click.option(
    "--full-audit-scan", is_flag=True, help="Re-read the whole audit log to detect removed entries."
)
@click.option(
    "--archive",
    "archive_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Sent-mail archive to verify before the check (.eml, mbox, Maildir or a folder of "
    "them, e.g. a journal export); repeatable. Same as `auditkit harvest-archive`.",
)
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Verify the archive offline against these pinned DKIM keys "
    "(harvest-archive --keys format) instead of live DNS.",
)
@signing_flags
@store_options
@json_option
def run(
    period: str,
    out_root: Path,
    fail_on: str,
    full_audit_scan: bool,
    archive_paths: tuple[Path, ...],
    keys_file: Path | None,
    db_path: Path | None,
    config_file: Path | None,
    account: str | None,
    as_json: bool,
    **signing: Any,
) -> None:
    """Harvest, check and report in one process, for cron and systemd timers.

    A lock next to the store stops overlapping runs (the second exits 8 and changes
    nothing). The pack is written beside its final place and renamed into it, so a
    reader never sees half a pack. Quiet when stderr is not a terminal.

    \b
    Exit codes: 0 compliant, 10 controls failed, 11 none failed but one was inconclusive,
    9 no outbound mail in the period (the pack is written; nothing was checked), 3-8 the
    tool failed (see README); a harvest that could not reach every source exits 4 after
    writing the pack. With --sign-key / --tsa-url the pack is signed and timestamped as
    `report` does: a bad key exits 3 before the harvest, a failing TSA 4 without a pack.

    \b
    Examples:
      auditkit run --period last-quarter --out /srv/evidence
      auditkit run --period 2026Q3 --fail-on high --json
      auditkit run --archive /srv/journal/Maildir --keys /srv/audit/dkim-keys.txt
      # crontab: 15 3 2 1,4,7,10 *  cd /srv/audit && auditkit run --out /srv/evidence
      auditkit run --account eu --out /srv/evidence/eu   # one of several [accounts.NAME]
    """
    from auditkit.controls import nothing_checked
    from auditkit.pipeline import run_pipeline

    if keys_file is not None and not archive_paths:
        raise ConfigError("--keys needs at least one --archive PATH")
    settings = load_settings(config_file, account, db_path=db_path)
    signer = load_pack_signer(settings, **signing)  # a bad key fails before the harvest
    p = parse_period(period)
    result = run_pipeline(
        settings,
        p,
        out_root / p.label,
        harvest_kwargs={"full_audit_scan": full_audit_scan},
        archive_paths=archive_paths,
        archive_keys=keys_file,
        log=_stage_logger(quiet=not sys.stderr.isatty()),
        signer=signer,
    )
    _print_result(result, fail_on, as_json)
    _require_complete_harvest(result)
    if code := verdict_exit_code(result.controls, fail_on):
        sys.exit(code)
    if not result.outbound:
        raise NothingToDoError(nothing_checked(p))


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports/demo"),
    show_default=True,
    help="Where the evidence pack goes.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Sample dataset folder [default: the bundled sample_data/].",
)
@click.option("--period", default="2026Q3", show_default=True, help="Period to check and report.")
@click.option(
    "--accounts",
    "account_count",
    type=click.IntRange(1, 2),
    default=1,
    show_default=True,
    help="2: also serve a second account (the quarter generated with another seed) under its "
    "own key, harvest both into the one store and write a pack per account in OUT/<account>/.",
)
@json_option
def demo(
    out_dir: Path, data_dir: Path | None, period: str, account_count: int, as_json: bool
) -> None:
    """Run the whole job on the bundled sample quarter, offline.

    Starts the sandbox API in-process on a free 127.0.0.1 port with a throw-away key,
    harvests it into a fresh store next to the pack (OUT.duckdb), applies the sample's
    source-side tampering and harvests again, verifies the sample sent-mail archive
    (DATA/archive) offline against the pinned keys in DATA/dns/keys.txt, runs every
    control, and writes the evidence pack. The sample has planted violations, so
    failing controls are expected and the exit code is 0.

    The pack is signed (PAdES) with auditkit's bundled TEST-ONLY key, whose key is public,
    and timestamped by a local RFC 3161 responder the demo starts on 127.0.0.1 and stops
    afterwards: it shows what a signed pack looks like, never who made it.

    With --accounts 2 the store holds two MultiMail accounts ([accounts.NAME]):
    `northwind` (the sample) and `northwind_seed7` (generated with seed 7, no archive);
    each is harvested, checked and reported on its own, into OUT/northwind/ and
    OUT/northwind_seed7/. Those two packs are not signed.

    \b
    Examples:
      auditkit demo
      auditkit demo --out /tmp/pack --json
      auditkit demo --accounts 2 --out reports/demo2
    """
    from auditkit.devtools import DEMO_CONCURRENCY, bundled_sample_data
    from auditkit.devtools.sandbox import SandboxServer
    from auditkit.devtools.tsa import TsaServer, demo_pki
    from auditkit.pack import check_replaceable
    from auditkit.pipeline import run_pipeline
    from auditkit.signing.settings import SigningOptions
    from auditkit.signing.sign import PackSigner

    if account_count > 1:
        from auditkit.devtools.demo_accounts import run_demo_accounts

        results = run_demo_accounts(
            out_dir, data_dir, parse_period(period), log=_stage_logger(quiet=as_json)
        )
        if as_json:
            echo_json({"accounts": {name: r.to_dict() for name, r in results.items()}})
        for name, result in results.items():
            if not as_json:
                click.echo(f"account {name}:")
                _print_result(result, "low", as_json)
            _require_complete_harvest(result)
        if not as_json:
            click.echo(f"Store with both accounts: {out_dir}.duckdb; check with: auditkit status")
        return
    # Before the stale demo store next to it is deleted: a --out holding files auditkit did
    # not write changes nothing at all. A previous demo pack is replaced as usual.
    check_replaceable(out_dir)
    data_dir = data_dir or bundled_sample_data()
    if not (data_dir / "multimail").is_dir():
        raise ConfigError(f"sample data not found in {data_dir}; pass --data DIR")
    # The bundled sample ships an archive and its pinned keys; a --data set may not.
    archive_dir, keys = data_dir / "archive", data_dir / "dns" / "keys.txt"
    archive_paths = [archive_dir] if archive_dir.is_dir() and keys.is_file() else []
    archive_keys = keys if archive_paths else None
    db_path = Path(f"{out_dir}.duckdb")
    out_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in (db_path, Path(f"{db_path}.wal")):
        stale.unlink(missing_ok=True)

    # Throw-away credentials that exist only for this process's sandbox, and the bundled
    # TEST-ONLY signing key with a time-stamping authority that lives as long as the demo.
    pki = demo_pki()
    with (
        TsaServer(pki.tsa_cert, pki.tsa_key) as tsa,
        SandboxServer(
            data_dir,
            api_key=f"mm_test_{secrets.token_hex(12)}",
            intercom_token=f"ic_test_{secrets.token_hex(12)}",
            intercom_eu_token=f"ic_test_{secrets.token_hex(12)}",
        ) as server,
    ):
        settings = server.aim(
            load_settings(data_dir / "auditkit.toml", db_path=db_path)
        ).with_overrides(concurrency=DEMO_CONCURRENCY)
        tsa_url = tsa.url
        signer = PackSigner.load(
            SigningOptions(key_file=pki.signer_key, cert_file=pki.signer_cert, tsa_url=tsa_url)
        )
        result = run_pipeline(
            settings,
            parse_period(period),
            out_dir,
            between_harvests=server.apply_mutations,
            archive_paths=archive_paths,
            archive_keys=archive_keys,
            log=_stage_logger(quiet=as_json),
            signer=signer,
        )
    _print_result(result, "low", as_json)
    if not as_json:
        _print_demo_signing(result.signing, tsa_url)
    _require_complete_harvest(result)
    if not as_json:
        click.echo(
            f"Open {out_dir / 'report.pdf'} (PDF) or {out_dir / 'report.html'}; "
            f"check it with: auditkit verify {out_dir}\n"
            f"(add --trust {pki.ca_cert} to check the chain to the TEST-ONLY CA)"
        )


def _print_demo_signing(signing: dict[str, Any], tsa_url: str) -> None:
    """What signed the demo pack, said so that nobody takes it for a real signature."""
    pdf = signing.get("pdf") or {}
    stamp = pdf.get("document_timestamp") or {}
    click.echo(
        f"signed:  report.pdf, {pdf.get('profile')}, by {pdf.get('signer')} at "
        f"{pdf.get('signed_at')}"
    )
    click.echo(
        "         with auditkit's bundled TEST-ONLY key: it is public, so this signature shows "
        "the pack is intact, never who made it; do not use it for real evidence"
    )
    click.echo(
        f"timestamped: report.pdf and manifest.json (manifest.json.tsr) at {stamp.get('time')} "
        f"by {stamp.get('tsa')}, a local TEST-ONLY RFC 3161 responder ({tsa_url}, stopped)"
    )


@cli.command()
@store_options
@json_option
def status(
    db_path: Path | None, config_file: Path | None, account: str | None, as_json: bool
) -> None:
    """Show the store's recent runs, record counts and how fresh the data is, per account.

    \b
    Examples:
      auditkit status
      auditkit status --db reports/demo.duckdb --json
      auditkit status --account eu
    """
    from auditkit.store import Store  # DuckDB only: the store imports pyarrow when loading

    settings = load_settings(config_file, account, every_account=True, db_path=db_path)
    with Store.for_settings(settings, read_only=True) as store:
        # Named: that one. Else every account the store holds or the config names.
        names = (
            [settings.account]
            if account is not None
            else sorted({*store.stored_accounts(), *(a.name for a in settings.accounts)})
        )
        states = {}
        for name in names:
            store.scope_to(name)
            states[name] = store.status()
    now = datetime.now(UTC)
    if as_json:
        if list(states) == [DEFAULT_ACCOUNT]:  # no accounts: the document as it always was
            echo_json(states[DEFAULT_ACCOUNT].to_dict(str(settings.db_path), now))
            return
        per_account = [
            {"account": name, **state.to_dict(str(settings.db_path), now)}
            for name, state in states.items()
        ]
        echo_json({"store": str(settings.db_path), "accounts": per_account})
        return
    click.echo(f"store: {settings.db_path}")
    for name, state in states.items():
        if len(states) > 1 or name != DEFAULT_ACCOUNT:
            click.echo(f"account: {name}")
        _echo_status(state, now)


def _echo_status(state: StoreStatus, now: datetime) -> None:
    last_ok, age_hours = (
        state.last_successful_harvest,
        state.hours_since_last_successful_harvest(now),
    )
    click.echo(
        "last successful harvest: "
        + ("never" if last_ok is None else f"{last_ok:%Y-%m-%d %H:%M} UTC ({age_hours:.1f} h ago)")
    )
    for t, n in state.counts.items():
        click.echo(f"  {t:26} {n:>9,}")
    if state.mailboxes:
        # Both names: `harvest --mailbox` takes either.
        click.echo("mailboxes (address, id), outbound listing:")
        for _id, address, listed_at in state.mailboxes:
            listing = (
                f"complete as of {listed_at[:16].replace('T', ' ')} UTC; "
                "harvests list the lookback window"
                if listed_at
                else "never complete yet; the next harvest lists it in full"
            )
            click.echo(f"  {address or '(no address)':34} {_id:28} {listing}")
    click.echo("recent runs:")
    for run_id, command, started, _finished, outcome, secs in state.runs:
        dur = "" if secs is None else f"{secs:.1f}s"
        click.echo(f"  {started:%Y-%m-%d %H:%M:%S}  {command:8} {outcome:8} {dur:>8}  {run_id}")
