"""Evidence packs: `write_pack()` renders control results and store records into a folder of
report.pdf (PDF/A-3u carrying the four CSVs as associated files), report.html, messages.csv,
decisions.csv, findings.csv, audit_log.csv, assessment-results.json (OSCAL) and a hashed
manifest.json, replaced atomically.

The report never recomputes control results: it renders the `results` it is given, plus the
store records they are about.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkit.config import Settings
from auditkit.config_accounts import DEFAULT_ACCOUNT
from auditkit.controls.settings import vocabulary_for
from auditkit.errors import ReportError
from auditkit.findings import ControlResult, Period
from auditkit.pack import check_replaceable, staged_pack_dir, write_manifest
from auditkit.reconciliation import reconcile
from auditkit.report import charts, csv_export, oscal, population
from auditkit.report.context import (
    SNAPSHOT_TABLES,
    VOCABULARY_SHOWN,
    build_context,
    company_name,
)
from auditkit.report.messages import MessageTable, message_params, selected_message_ids
from auditkit.report.pdf import render_html, render_pdf
from auditkit.report.pdf_attach import Revision, append_ledgers, deflate_ledger
from auditkit.report.results import iter_finding_rows, scoped_results, warning_rows
from auditkit.report.scope import Scope
from auditkit.store import Store, books
from auditkit.vocabulary import Vocabulary

if TYPE_CHECKING:  # pyHanko costs a second to import; only signing commands load it
    from auditkit.signing.sign import PackSigner

logger = logging.getLogger(__name__)

FORMATS = ("pdf", "html", "csv")
# From this many messages in scope the PDF renders in a second process, alongside the CSVs.
PARALLEL_PDF_MESSAGES = 50_000
PACK_MEMORY_LIMIT = "1GB"
CSV_FILES = (
    "messages.csv",
    "decisions.csv",
    "findings.csv",
    "audit_log.csv",
    "reconciliation.csv",
)
# What each ledger is: the PDF attachment's /Desc and the OSCAL back-matter description.
CSV_DESCRIPTIONS = {
    "messages.csv": "Every outbound message in scope, one row each.",
    "decisions.csv": "The approve, reject and cancel audit entries joined to their emails.",
    "findings.csv": "Every finding, with its full evidence JSON and any waiver.",
    "audit_log.csv": "The audit-log entries in scope, with their hash-chain position.",
    "reconciliation.csv": (
        "MultiMail's own counts against the harvested population, per UTC day (PC-001)."
    ),
}
# Settings that shape what the pack shows; URLs, paths and secrets stay out (see public_dict()).
PARAMETER_SETTINGS = (
    "company_name",
    "intercom_version",
    "intercom_app_id",
    "controls",
    "mailboxes",
    "classification",
    "waivers",
)

__all__ = ["FORMATS", "PackResult", "write_pack"]


@dataclass(frozen=True)
class PackResult:
    out_dir: Path
    manifest_sha256: str
    files: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    signing: dict[str, Any] = field(default_factory=dict)  # the manifest's, when signed

    def to_dict(self) -> dict[str, Any]:
        return {
            "pack": str(self.out_dir),
            "manifest_sha256": self.manifest_sha256,
            "files": list(self.files),
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
        } | ({"signing": self.signing} if self.signing else {})


def catalogue_version(default: str = "unversioned") -> str:
    try:
        from auditkit import controls
    except ImportError:
        return default
    return str(getattr(controls, "CATALOGUE_VERSION", default))


def write_pack(
    store: Store,
    settings: Settings,
    period: Period,
    out_dir: Path | str,
    *,
    results: Sequence[ControlResult],
    message_ids: Sequence[str] | None = None,
    recipient: str | None = None,
    sample_size: int = 25,
    seed: int = 42,
    formats: Sequence[str] = FORMATS,
    max_flagged_pages: int | None = None,
    vocabulary: Vocabulary | None = None,
    signer: PackSigner | None = None,
) -> PackResult:
    """Write the evidence pack for `period` (or the given messages / recipient) into `out_dir`.

    `message_ids` selects exactly those outbound messages (the period then only labels the
    pack); `recipient` selects messages to or copied to that address within the period.
    The pack is built in a temporary sibling folder and renamed over `out_dir`; a failure
    leaves any previous pack untouched. An existing `out_dir` is replaced only if it is
    empty or an auditkit pack holding nothing but its listed files (`check_replaceable`);
    otherwise ReportError, before any work. Same store and arguments → byte-identical files.
    The PDF shows every finding, evidence pages for up to `max_flagged_pages` flagged
    messages (default MAX_FLAGGED_MESSAGE_PAGES) plus `sample_size` messages drawn with
    `seed`; the CSVs hold every message.
    `signer` signs and timestamps report.pdf once every file is rendered, before the
    manifest hashes it, then timestamps the manifest (manifest.json.tsr). Its TSA is asked
    for a timestamp before any work too; a TSA failure (SourceError), then or later, leaves
    any previous pack untouched, like any other failure.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ReportError(
            f"unknown pack format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}"
        )
    if sample_size < 0:
        raise ReportError("sample size must be 0 or more")
    if signer is not None and signer.material is not None and "pdf" not in formats:
        raise ReportError("a signing key was given, but this pack has no report.pdf to sign")
    # Fail fast: a folder holding files auditkit did not write is refused before the store
    # is read (staged_pack_dir checks again on entry and right before the rename).
    check_replaceable(Path(out_dir))
    if signer is not None:
        signer.check_tsa()  # likewise a TSA that is down or broken (SourceError)
    scope = Scope(
        period=period,
        message_ids=tuple(dict.fromkeys(message_ids)) if message_ids is not None else None,
        recipient=recipient,
    )
    public = settings.public_dict()
    parameters = {
        "scope": scope.to_dict(),
        "sample_size": sample_size,
        "seed": seed,
        "formats": sorted(formats),
        "settings": {k: public[k] for k in PARAMETER_SETTINGS},
    }
    if store.account != DEFAULT_ACCOUNT:
        # Which of the store's accounts the pack is about (the store reads only its rows).
        # Left out for the one account of a setup without [accounts]: its packs stay the
        # bytes they were before accounts existed.
        parameters["account"] = store.account
    in_scope = None
    if scope.kind != "period":
        in_scope = set(selected_message_ids(store, settings, scope))
        if scope.message_ids is not None and (missing := sorted(set(scope.message_ids) - in_scope)):
            raise ReportError(f"no outbound message with id {', '.join(missing[:10])} in the store")
    results = scoped_results(results, scope, in_scope)
    # The one `check` uses on the same store (callers that ran the check pass it in).
    vocabulary = vocabulary or vocabulary_for(store.con, settings)
    snapshot = store.snapshot_digest(SNAPSHOT_TABLES)
    logger.info("pack: store snapshot digest after %s", _since(started, cpu_started))
    version = catalogue_version(str(settings.controls.get("catalogue_version", "unversioned")))

    as_of = books.data_as_of(store, period.end_before)
    # What PC-001 decided on; a pack of chosen messages is no population to reconcile.
    reconciliation = reconcile(store.con, period, vocabulary) if scope.kind == "period" else None
    counts: dict[str, int] = {}
    findings = [f for r in results for f in r.findings]
    with (
        _memory_limit(store, PACK_MEMORY_LIMIT),
        MessageTable(store, scope, settings, findings, vocabulary) as table,
        staged_pack_dir(Path(out_dir)) as stage,
        ExitStack() as background,
    ):
        pdf_job = None
        revision: Revision | None = None
        logger.info("pack: messages materialised after %s", _since(started, cpu_started))
        if "html" in formats or "pdf" in formats:
            context = build_context(
                store,
                settings,
                scope,
                results,
                table,
                sample_size=sample_size,
                seed=seed,
                snapshot_digest=snapshot,
                catalogue_version=version,
                parameters=parameters,
                vocabulary=vocabulary,
                **({"flagged_cap": max_flagged_pages} if max_flagged_pages is not None else {}),
            )
            context["reconciliation"] = population.page(reconciliation)
            # Charts describe a population; for hand-picked messages they would only mislead.
            context["charts"] = {}
            if scope.kind != "messages":
                context["charts"] = charts.render_charts(context)
            html = render_html(context)
            counts["message_pages"] = len(context["messages"])
            counts.setdefault("messages", context["counts"]["messages"])
            if "html" in formats:
                (stage / "report.html").write_text(html, encoding="utf-8", newline="")
            logger.info("pack: HTML ready after %s", _since(started, cpu_started))
            if "pdf" in formats:
                if context["counts"]["messages"] >= PARALLEL_PDF_MESSAGES:
                    # Big packs: lay the PDF out on the other core while DuckDB streams the CSVs.
                    pool = background.enter_context(
                        ProcessPoolExecutor(
                            max_workers=1, mp_context=multiprocessing.get_context("spawn")
                        )
                    )
                    pdf_job = pool.submit(render_pdf, html, stage / "report.pdf", as_of=as_of)
                else:
                    revision = render_pdf(html, stage / "report.pdf", as_of=as_of)
                    logger.info("pack: PDF rendered after %s", _since(started, cpu_started))
        if "csv" in formats:
            counts.update(_write_csvs(store, stage, scope, settings, results, table, vocabulary))
            counts["reconciliation_rows"] = csv_export.write_rows_csv(
                stage / "reconciliation.csv",
                population.RECONCILIATION_FIELDS,
                population.csv_rows(reconciliation),
            )
            logger.info("pack: CSV files written after %s", _since(started, cpu_started))
        if "pdf" in formats:
            # The CSVs go into the PDF, deflated while a big pack's PDF is still rendering.
            with tempfile.TemporaryDirectory(prefix=".ledgers-", dir=stage) as scratch:
                ledgers = [
                    deflate_ledger(stage / name, Path(scratch), CSV_DESCRIPTIONS[name])
                    for name in (CSV_FILES if "csv" in formats else ())
                ]
                if pdf_job is not None:
                    revision = pdf_job.result()  # re-raises the child's ReportError
                    logger.info("pack: PDF rendered after %s", _since(started, cpu_started))
                assert revision is not None
                append_ledgers(stage / "report.pdf", revision, ledgers, when=as_of)
            logger.info("pack: CSVs attached after %s", _since(started, cpu_started))
        tool_version, as_of_text = _tool_version(), as_of.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
        meta = {
            "tool": {"name": "auditkit", "version": tool_version},
            "period": {
                "label": period.label,
                "start": period.start.isoformat(),
                "end": period.end.isoformat(),
            },
            "parameters": parameters,
            "store_snapshot_digest": snapshot,
            "control_catalogue_version": version,
            "data_as_of": as_of_text,
            "counts": dict(sorted(counts.items())),
            "controls": {r.id: r.status for r in sorted(results, key=lambda r: r.id)},
            # Waivers that expired or match nothing: a reviewer must see them with the pack.
            "warnings": warning_rows(results),
            # How the audit log was read: each meaning's matchers and where they came from.
            "audit_vocabulary": {
                m: {k: v for k, v in vocabulary[m].to_dict().items() if k != "meaning"}
                for m in VOCABULARY_SHOWN
            },
        }
        if signer is not None:
            meta["signing"] = signer.sign_pack(stage)
            logger.info("pack: signed after %s", _since(started, cpu_started))
        oscal.write_assessment_results(
            stage,
            scope=scope,
            results=results,
            company=company_name(store, settings),
            as_of=as_of,
            facts={
                "store-snapshot-digest": snapshot,
                "control-catalogue-version": version,
                "tool-version": tool_version,
                "data-as-of": as_of_text,
            },
            descriptions=CSV_DESCRIPTIONS,
        )
        digest = write_manifest(stage, meta)
        if signer is not None:
            signer.timestamp_manifest(stage)
        files = tuple(sorted(p.name for p in stage.iterdir()))
    elapsed = time.perf_counter() - started
    logger.info("pack %s written in %.1fs (%s)", out_dir, elapsed, ", ".join(files))
    signing = meta.get("signing")
    return PackResult(
        Path(out_dir), digest, files, counts, elapsed, signing if isinstance(signing, dict) else {}
    )


@contextmanager
def _memory_limit(store: Store, limit: str) -> Iterator[None]:
    """Cap DuckDB's memory for the pack (it spills to the store's temp folder beyond it) and
    restore the caller's limit: a store opened with a larger `[store] memory_limit` (for
    faster controls) would otherwise let a million-message pack use all of it."""
    con = store.con
    previous = con.execute("SELECT current_setting('memory_limit')").fetchall()[0]
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{previous[0]}'")


def _since(started: float, cpu_started: float) -> str:
    """Elapsed wall time, and this process's CPU time (all its threads; not the PDF
    worker's), for the phase lines a benchmark reads."""
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return f"{wall:.1f}s (CPU {cpu:.1f}s)"


def _tool_version() -> str:
    from auditkit import __version__

    return __version__


def _write_csvs(
    store: Store,
    stage: Path,
    scope: Scope,
    settings: Settings,
    results: Sequence[ControlResult],
    table: str,
    vocabulary: Vocabulary,
) -> dict[str, int]:
    params: Mapping[str, Any] = message_params(scope, settings)
    selected = f"SELECT message_id AS id, mailbox_id FROM {table}"
    period_pack = scope.kind == "period"
    counts = {
        "messages": csv_export.write_query_csv(
            store,
            stage / "messages.csv",
            csv_export.MESSAGE_FIELDS,
            csv_export.message_csv_sql(table),
            params,
        ),
        "decisions": csv_export.write_query_csv(
            store,
            stage / "decisions.csv",
            csv_export.DECISION_FIELDS,
            csv_export.decisions_csv_sql(selected, vocabulary, period_pack=period_pack),
            params,
        ),
        "audit_log_entries": csv_export.write_query_csv(
            store,
            stage / "audit_log.csv",
            csv_export.AUDIT_LOG_FIELDS,
            csv_export.audit_log_csv_sql(selected, vocabulary, period_pack=period_pack),
            params,
        ),
    }
    rows = (
        {**f, "finding_id": f["id"]} for f in iter_finding_rows(results, evidence_limit=sys.maxsize)
    )
    counts["findings"] = csv_export.write_rows_csv(
        stage / "findings.csv", csv_export.FINDING_FIELDS, rows
    )
    return counts
