"""`auditkit harvest-archive`: independent DKIM and identity checks on copies of sent mail."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from auditkit.cli.base import cli, echo_json, json_option, load_settings, store_options
from auditkit.errors import ConfigError, NothingToDoError, StoreError, one_line

if TYPE_CHECKING:  # the archive reader, dkimpy and the store load only when the command runs
    from auditkit.archive import ArchiveSummary
    from auditkit.dkim_keys import KeyLookup


@cli.command("harvest-archive")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Verify offline against pinned keys, no DNS: lines `selector._domainkey.domain "
    "TXT-record-text`, or a JSON export of dkim_key_records.",
)
@click.option(
    "--stored-keys",
    is_flag=True,
    help="Verify offline against the key records already captured in the store "
    "(re-check after a key rotation), no DNS.",
)
@click.option(
    "--match-window-minutes",
    type=click.IntRange(min=0),
    default=60,
    show_default=True,
    help="How far the Date header may lie outside created_at..delivered_at for a "
    "recipients + subject match.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Verification processes; above 1 needs --keys or --stored-keys. Each worker "
    "re-imports auditkit (~100 MiB), so it pays off only for large archives on idle cores.",
)
@store_options
@json_option
def harvest_archive_command(
    paths: tuple[Path, ...],
    keys_file: Path | None,
    stored_keys: bool,
    match_window_minutes: int,
    workers: int,
    db_path: Path | None,
    config_file: Path | None,
    account: str | None,
    as_json: bool,
) -> None:
    """Verify DKIM on archived copies of sent mail and match them to harvested emails.

    MultiMail's API returns no raw message, so DKIM can only be checked independently on
    copies: a journal mailbox receiving auto_bcc, or .eml / mbox / Maildir exports. Each
    PATH is an .eml file, an mbox file, a Maildir folder, or a folder searched recursively.
    Messages are read one at a time, matched to harvested emails (X-MultiMail-Id or the id
    in Message-ID, else recipients + subject + time; ambiguous matches are reported, never
    guessed), every DKIM-Signature is verified, and the TXT key record used is captured in
    the store so the check can be repeated offline after the key rotates. Expiry (x=) is
    judged against the email's delivered_at (else the Date header). Raw messages are kept
    zlib-compressed by SHA-256: re-running on the same files changes nothing.

    \b
    Examples:
      auditkit harvest-archive /srv/journal/Maildir              # live DNS, keys captured
      auditkit harvest-archive exports/*.eml --keys sample_data/dns/keys.txt
      auditkit harvest-archive journal.mbox --stored-keys --json # re-verify offline
    """
    from auditkit.archive import harvest_archive, stored_key_lookup
    from auditkit.dkim_keys import DnsKeyLookup, load_keys_file
    from auditkit.store import Store

    if keys_file and stored_keys:
        raise ConfigError("use either --keys or --stored-keys, not both")
    settings = load_settings(config_file, account, db_path=db_path)
    if str(settings.db_path) != ":memory:" and not Path(settings.db_path).exists():
        # Archived copies are matched to harvested emails: a new empty store matches nothing.
        raise StoreError(
            f"store {settings.db_path} does not exist: run `auditkit harvest` first "
            "(or pass --db with the store that holds the harvested mail)"
        )
    with Store.for_settings(settings) as store:
        lookup: KeyLookup
        if keys_file:
            lookup = load_keys_file(keys_file)
        elif stored_keys:
            lookup = stored_key_lookup(store)
            if not len(lookup):
                raise ConfigError(
                    f"store {settings.db_path} has no captured key records; "
                    "run once with DNS or --keys"
                )
        else:
            lookup = DnsKeyLookup()
        offline = keys_file is not None or stored_keys
        if workers > 1 and not offline:
            raise ConfigError(
                "--workers above 1 needs --keys or --stored-keys (DNS lookups stay in one process)"
            )
        run_id = f"archive-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        summary = harvest_archive(
            store,
            list(paths),
            lookup,
            run_id=run_id,
            match_window=timedelta(minutes=match_window_minutes),
            workers=workers,
        )
    if as_json:
        echo_json(summary.to_dict())
    else:
        _print_summary(summary)
    if not summary.messages:
        raise NothingToDoError(
            f"no message found in {', '.join(str(p) for p in paths)}: nothing was verified "
            "(expected .eml files, an mbox or a Maildir)"
        )


def _print_summary(summary: ArchiveSummary) -> None:
    click.echo(f"run:      {summary.run_id}")
    click.echo(
        f"messages: {summary.messages} read, {summary.new_messages} new, "
        f"{summary.duplicates_in_run} duplicate(s) in this run"
    )
    click.echo("matched:  " + ", ".join(f"{k} {v}" for k, v in summary.matched.items()))
    click.echo("dkim:     " + ", ".join(f"{k} {v}" for k, v in sorted(summary.dkim.items())))
    click.echo(
        f"body changed vs approved: {summary.body_mismatches}; "
        f"missing identity header: {summary.missing_identity}; "
        f"key records captured: {summary.key_records_captured}"
    )
    for p in summary.problems[:20]:
        if "match" in p:
            click.echo(
                f"  {p['source_path']}: ambiguous match, candidates {', '.join(p['candidates'])}"
            )
        else:
            # A parser's complaint may quote the file's bytes: keep it one short line.
            click.echo(f"  {p['source_path']}: {p['result']} ({one_line(str(p['reason']), 200)})")
    if len(summary.problems) > 20:
        click.echo(f"  … {len(summary.problems) - 20} more (use --json)")
