"""One scheduled run: harvest → (archive) → check → report, under a run lock, for cron and `demo`.

The pieces are the same library calls the individual commands make; this module only
sequences them and summarises the outcome. Exit-code decisions stay in the CLI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkit.config import Settings
from auditkit.errors import ConfigError, UsageError
from auditkit.evidence_sql import addressed_to_sql, bare_address
from auditkit.findings import ControlResult, Period, failing_controls, inconclusive_controls
from auditkit.runlock import run_lock
from auditkit.store import Store

if TYPE_CHECKING:
    from auditkit.signing.sign import PackSigner

logger = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    period: Period
    pack_dir: Path
    harvest: dict[str, Any] = field(default_factory=dict)
    archive: dict[str, Any] | None = None
    controls: list[ControlResult] = field(default_factory=list)
    outbound: int = 0  # outbound messages created in the period (0: nothing was checked)
    seconds: dict[str, float] = field(default_factory=dict)
    signing: dict[str, Any] = field(default_factory=dict)  # the manifest's record; {}: unsigned

    def failing(self, fail_on: str = "low") -> list[ControlResult]:
        """Controls with an open finding at or above `fail_on` severity."""
        return failing_controls(self.controls, fail_on)

    def inconclusive(self, fail_on: str = "low") -> list[ControlResult]:
        return inconclusive_controls(self.controls, fail_on)

    def to_dict(self, fail_on: str = "low") -> dict[str, Any]:
        return {
            "period": self.period.label,
            "pack": str(self.pack_dir),
            "harvest": self.harvest,
            "archive": self.archive,
            "controls": {
                r.id: {
                    "status": r.status,
                    "open_findings": sum(f.state == "open" for f in r.findings),
                }
                for r in self.controls
            },
            "failing_controls": [r.id for r in self.failing(fail_on)],
            "inconclusive_controls": [r.id for r in self.inconclusive(fail_on)],
            "outbound_messages": self.outbound,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            **({"signing": self.signing} if self.signing else {}),
        }


def run_pipeline(
    settings: Settings,
    period: Period,
    out_dir: Path,
    *,
    harvest_kwargs: dict[str, Any] | None = None,
    between_harvests: Callable[[], object] | None = None,
    archive_paths: Sequence[Path] = (),
    archive_keys: Path | None = None,
    log: Callable[[str], None] = logger.info,
    signer: PackSigner | None = None,
) -> PipelineResult:
    """Harvest, check and write the pack for `period` into `out_dir` (replaced atomically).

    `between_harvests`, when given, runs after a first harvest and is followed by a second
    one with a full audit-log scan: the demo uses it to show source-side tampering.
    `archive_paths` (.eml / mbox / Maildir, e.g. a journal export) are verified after the
    harvests, as `auditkit harvest-archive` does: offline against the pinned keys in
    `archive_keys`, else against live DNS. The archive feeds ID-001..ID-003.
    `signer` (loaded, so checked, by the caller before this runs) signs and timestamps
    the pack.
    """
    from auditkit.archive import harvest_archive
    from auditkit.controls import outbound_in_period, run_controls
    from auditkit.controls.settings import vocabulary_for
    from auditkit.dkim_keys import DnsKeyLookup, KeyLookup, load_keys_file
    from auditkit.harvest import harvest, new_run_id
    from auditkit.pack import check_replaceable
    from auditkit.report import write_pack

    if archive_keys is not None and not archive_paths:
        raise ConfigError("archive keys given without an archive path to verify")
    # Read the keys before taking the lock: a bad keys file fails fast and changes nothing.
    lookup: KeyLookup | None = None
    for path in archive_paths:
        if not path.exists():
            raise ConfigError(f"archive path {path} does not exist")
    if archive_paths:
        lookup = load_keys_file(archive_keys) if archive_keys is not None else DnsKeyLookup()
    # Likewise a pack folder holding files auditkit did not write: refused before the
    # harvest, not after it (write_pack checks again before replacing the folder).
    check_replaceable(out_dir)

    result = PipelineResult(period=period, pack_dir=out_dir)
    with (
        run_lock(settings.db_path),
        Store.for_settings(settings) as store,
    ):
        t0 = time.perf_counter()
        summary = harvest(settings, store, **(harvest_kwargs or {}))
        if between_harvests is not None:
            between_harvests()
            summary = harvest(
                settings, store, **{**(harvest_kwargs or {}), "full_audit_scan": True}
            )
        result.harvest = summary.to_dict()
        result.seconds["harvest"] = time.perf_counter() - t0
        log(f"harvest: {summary.one_line()}")

        if lookup is not None:
            t0 = time.perf_counter()
            archived = harvest_archive(
                store, list(archive_paths), lookup, run_id=f"archive-{new_run_id()}"
            )
            result.archive = archived.to_dict()
            result.seconds["archive"] = time.perf_counter() - t0
            log(
                f"archive: {archived.messages} message(s), matched "
                + ", ".join(f"{k} {v}" for k, v in archived.matched.items())
                + "; dkim "
                + ", ".join(f"{k} {v}" for k, v in sorted(archived.dkim.items()))
            )

        t0 = time.perf_counter()
        vocabulary = vocabulary_for(store.con, settings)
        result.controls = run_controls(store, settings, period, vocabulary=vocabulary)
        result.outbound = outbound_in_period(store, period)
        result.seconds["check"] = time.perf_counter() - t0
        failing = result.failing()
        log(f"check: {len(result.controls)} controls, {len(failing)} with open findings")

        t0 = time.perf_counter()
        pack = write_pack(
            store,
            settings,
            period,
            out_dir,
            results=result.controls,
            vocabulary=vocabulary,
            signer=signer,
        )
        result.seconds["report"] = time.perf_counter() - t0
        result.signing = pack.signing
        log(f"report: evidence pack written to {out_dir}")
    return result


def build_pack(
    settings: Settings,
    period: Period,
    out_dir: Path,
    *,
    message_ids: Sequence[str] | None = None,
    recipient: str | None = None,
    sample_size: int = 25,
    seed: int = 42,
    signer: PackSigner | None = None,
) -> dict[str, object]:
    """Check `period` (or just the chosen messages / one recipient's) and write the pack,
    signed and timestamped by `signer` when given.

    Returns the pack summary the CLI prints (`PackResult.to_dict()` plus the period).
    """
    from auditkit.controls import run_controls
    from auditkit.controls.settings import vocabulary_for
    from auditkit.pack import check_replaceable
    from auditkit.report import write_pack
    from auditkit.report.messages import recipient_message_ids

    # Before the controls run (minutes on a large store): a folder holding files auditkit
    # did not write is refused now, not after the work, and so is a TSA that does not
    # answer. write_pack checks the folder again.
    check_replaceable(out_dir)
    if signer is not None:
        signer.check_tsa()
    with Store.for_settings(settings, read_only=True) as store:
        # A pack of chosen messages (or one recipient's) only reports findings about them,
        # so only they are checked.
        chosen = list(message_ids) if message_ids is not None else None
        if recipient is not None:
            chosen = recipient_message_ids(store, settings, period, recipient)
        started = time.perf_counter()
        vocabulary = vocabulary_for(store.con, settings)
        inferred = time.perf_counter()
        results = run_controls(store, settings, period, message_ids=chosen, vocabulary=vocabulary)
        # Where a pack's time goes before write_pack: on a large store, inferring the
        # vocabulary reads the whole audit log even when one message is checked.
        logger.info(
            "pack: vocabulary inferred in %.2fs, %d controls run in %.2fs",
            inferred - started,
            len(results),
            time.perf_counter() - inferred,
        )
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
            signer=signer,
        )
    return pack.to_dict() | {"period": period.label}


def selection_period(
    settings: Settings, message_ids: Sequence[str] | None, recipient: str | None
) -> Period:
    """The days the selected messages were created on, for packs asked for without --period."""
    with Store.for_settings(settings, read_only=True) as store:
        if message_ids:
            found = {
                r[0]
                for r in store.con.execute(
                    "SELECT id FROM multimail_emails "
                    "WHERE direction = 'outbound' AND list_contains($ids, id)",
                    {"ids": list(message_ids)},
                ).fetchall()
            }
            if unknown := [m for m in dict.fromkeys(message_ids) if m not in found]:
                raise UsageError(
                    f"no outbound message with id {', '.join(unknown[:10])} in {settings.db_path}"
                    + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                    + (
                        "; to select the mail sent to an address, use --recipient ADDRESS"
                        if any("@" in m for m in unknown)
                        else ""
                    )
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
                "WHERE direction = 'outbound' AND "
                + addressed_to_sql("to_addresses", "cc_addresses", "$r"),
                {"r": bare_address(recipient or "")},
            ).fetchall()[0]
            what = f"recipient {recipient}"
    first, last, n = row
    if not n or first is None:
        raise UsageError(f"no outbound message with a creation time found for {what}")
    start, end = date(first.year, first.month, first.day), date(last.year, last.month, last.day)
    return Period(f"{start.isoformat()}..{end.isoformat()}", start, end)
