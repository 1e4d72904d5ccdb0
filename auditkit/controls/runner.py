"""The runner: evaluate the catalogue over one period of a store, apply waivers.

`run_controls` only reads the store, turns a control that raises into an `error` result
(never `pass`), and applies waivers. Its results (a list) also carry `warnings`: the
waivers that have expired or match no finding, for `check` to print and the evidence pack
to show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from auditkit.classify import CLASSIFIER_VERSION, ClassificationRules
from auditkit.config import Settings
from auditkit.controls.context import CheckContext
from auditkit.controls.registry import PER_MESSAGE, Control, catalogue, get_control, id_order
from auditkit.controls.settings import ControlSettings
from auditkit.controls.waivers import (
    Waiver,
    WaiverWarning,
    apply_waivers,
    parse_waivers,
    waiver_warnings,
)
from auditkit.findings import ControlResult, Finding, Period, Status
from auditkit.store import Store, books
from auditkit.vocabulary import Vocabulary

logger = logging.getLogger(__name__)


class ControlResults(list[ControlResult]):
    """What `run_controls` returns: the results in catalogue order (a plain list to every
    caller) plus `warnings`, the waivers of the run's controls that have expired or match
    no finding. The attribute rides on the list so that the results handed to `write_pack`
    bring their warnings into the pack without another argument."""

    def __init__(
        self, results: Iterable[ControlResult] = (), warnings: Iterable[WaiverWarning] = ()
    ) -> None:
        super().__init__(results)
        self.warnings: tuple[WaiverWarning, ...] = tuple(warnings)


def outbound_in_period(store: Store, period: Period) -> int:
    """How many outbound messages were created in `period`: zero means the per-message
    controls had nothing to look at, which must never read as a clean result."""
    return int(
        store.con.execute(
            "SELECT count(*) FROM multimail_emails WHERE direction = 'outbound' "
            "AND created_at >= $start AND created_at < $end",
            {"start": period.start_at, "end": period.end_before},
        ).fetchall()[0][0]
    )


def nothing_checked(period: Period) -> str:
    """The one line `check` and `run` end with when the period holds no outbound mail."""
    return (
        f"no outbound message was created in {period.label} ({period.start}..{period.end}): "
        "the per-message controls checked nothing, which is not a clean result; harvest first, "
        "or check the period"
    )


def run_controls(
    store: Store,
    settings: Settings,
    period: Period,
    *,
    only: Sequence[str] | None = None,
    message_ids: Sequence[str] | None = None,
    today: date | None = None,
    now: datetime | None = None,
    timings: dict[str, float] | None = None,
    vocabulary: Vocabulary | None = None,
) -> ControlResults:
    """Evaluate the catalogue (or the `only` ids) over `period`; results in catalogue order,
    with the waiver warnings of the controls run in `.warnings` (see `ControlResults`).

    `message_ids` limits the per-message checks to those outbound messages of the period
    (an evidence pack for chosen messages: on a large store, scoping the shared derivations
    is most of its time); account-level checks still cover the period.

    `now` bounds "at period end" for a period that has not ended: by default when the store's
    data was read (`books.data_as_of`), not the wall clock, so mail approved after the
    harvest is not reported pending and the same store gives the same findings whenever
    checked. `today` (default: the wall clock's date) decides which waivers have expired.
    `timings`, when given, receives seconds per control id (benchmarks). `vocabulary` is the
    audit-log vocabulary (`controls.context.vocabulary_for`); when None it is resolved on
    first use.
    """
    now = now or books.data_as_of(store, period.end_before)
    today = today or datetime.now(UTC).date()
    control_settings = ControlSettings.from_settings(settings)
    rules = ClassificationRules.from_settings(settings)
    waivers = parse_waivers(settings.waivers, {c.id for c in catalogue()})
    selected = (
        catalogue()
        if not only
        else sorted({get_control(c) for c in only}, key=lambda c: id_order(c.id))
    )

    # Our own cursor: the caller's connection may hold an unfinished result, and the temp
    # tables the context creates stay private to this run.
    con = store.cursor()  # scoped to the store's account, like store.con
    ctx = CheckContext(con, control_settings, rules, period, now, message_ids, vocabulary)
    results = []
    # Each control's findings, or None where the run cannot tell what it would find.
    evaluated: dict[str, tuple[Finding, ...] | None] = {}
    try:
        for ctl in selected:
            started = time.perf_counter()
            result, complete = _run_one(ctl, ctx, waivers, today)
            results.append(result)
            evaluated[ctl.id] = result.findings if complete else None
            if timings is not None:
                timings[ctl.id] = time.perf_counter() - started
    finally:
        ctx.close()
        con.close()
    if message_ids is not None:
        # A waiver about a message this run did not look at says nothing about it.
        chosen = set(message_ids)
        waivers = [
            w
            for w in waivers
            if w.target in chosen or get_control(w.control).applies_to not in PER_MESSAGE
        ]
    warnings = waiver_warnings(waivers, evaluated, today)
    for warning in warnings:
        logger.info("%s", warning.message)
    return ControlResults(results, warnings)


def _run_one(
    ctl: Control, ctx: CheckContext, waivers: list[Waiver], today: date
) -> tuple[ControlResult, bool]:
    """The control's result, and whether its findings are complete (it reached a verdict on
    everything in scope): only then can a waiver be said to match no finding."""
    ctx.control_id = ctl.id
    meta: dict[str, Any] = {
        "id": ctl.id,
        "title": ctl.title,
        "severity": ctl.severity,
        "rationale": ctl.rationale,
        "reference": ctl.reference,
    }
    try:
        ctx.prepare()
        outcome = ctl.evaluate(ctx)
    except Exception as exc:  # a broken control must report error, never pass
        logger.error("control %s raised %s: %s", ctl.id, type(exc).__name__, exc)
        logger.debug("control %s traceback", ctl.id, exc_info=True)
        return ControlResult(**meta, status="error", detail=f"{type(exc).__name__}: {exc}"), False
    if outcome.not_applicable is not None:
        return ControlResult(
            **meta, status="not_applicable", checked=outcome.checked, detail=outcome.not_applicable
        ), True
    findings = apply_waivers(outcome.findings, waivers, today)
    findings.sort(key=lambda f: (f.target_type, f.target_id, f.reason))
    status: Status = "fail" if any(f.state != "waived" for f in findings) else "pass"
    detail = outcome.detail
    if outcome.inconclusive:
        # What the control did establish still fails it; otherwise it is never a pass.
        if status == "pass":
            status = "inconclusive"
            detail = "; ".join(d for d in (outcome.inconclusive, detail) if d)
        else:
            detail = "; ".join(d for d in (detail, "incomplete: " + outcome.inconclusive) if d)
    if ctl.applies_to == "commercial_email" and not detail:
        detail = f"classifier {CLASSIFIER_VERSION}"
    return ControlResult(
        **meta, status=status, findings=tuple(findings), checked=outcome.checked, detail=detail
    ), not outcome.inconclusive
