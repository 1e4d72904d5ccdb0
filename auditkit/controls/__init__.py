"""The control registry and runner: stable control ids, their metadata and evidence SQL.

Each family module (`oversight`, `canspam`, `identity`, `traceability`, `auditlog`)
registers its controls with `@control(...)`; ids are a public contract. `run_controls`
evaluates them over one period of a store that it only reads, turns a control that raises
into an `error` result (never `pass`), and applies waivers. Its results (a list) also carry
`warnings`: the waivers that have expired or match no finding, for `check` to print and the
evidence pack to show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from auditkit.classify import CLASSIFIER_VERSION, ClassificationRules
from auditkit.config import Settings
from auditkit.controls.context import CheckContext, ControlSettings
from auditkit.controls.waivers import (
    Waiver,
    WaiverWarning,
    apply_waivers,
    parse_waivers,
    waiver_warnings,
)
from auditkit.errors import UsageError
from auditkit.findings import ControlResult, Finding, Period, Severity, Status
from auditkit.store import Store
from auditkit.vocabulary import MEANINGS, Vocabulary

logger = logging.getLogger(__name__)

# The version of the catalogue's meaning, printed on every evidence pack. Bump it (year.month-
# serial, e.g. "2026.11-2", or the new month with serial 1) whenever a control is added or
# removed, or any control's meaning changes: scope, evidence sources or their precedence,
# thresholds, severity. Wording-only edits to titles or rationales do not bump it.
# 2026.11-1: ID-001 prefers independent archive DKIM; ID-002 and ID-003 added.
# 2026.11-2: CS-003 no longer counts delivery-failure (bounce) suppressions as opt-outs.
# 2026.12-1: audit-log meanings inferred from the records (auditkit.vocabulary) instead of
#   fixed names, and a new status `inconclusive` when one cannot be established; OVS-004
#   also flags approval by any key holding the send scope and shows the approver's kind;
#   CS-004 covers commercial and mixed mail only and accepts a prior exchange with the
#   recipient; classifier cls-v2 and wider opt-out recognition (CS-001..CS-003).
CATALOGUE_VERSION = "2026.12-1"

APPLIES_TO = (
    "outbound_email",
    "commercial_email",
    "api_key",
    "mailbox",
    "audit_log",
    "conversation_link",
)
# Controls that look at messages: a run limited to chosen messages sees only those.
PER_MESSAGE = ("outbound_email", "commercial_email", "conversation_link")


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


@dataclass
class Outcome:
    """What a control's evaluation returns: how many targets it examined and what it found.

    `not_applicable` set means nothing was in scope; its text says why. `inconclusive` set
    means the control could not establish a verdict (a meaning of the audit log it needs is
    unknown): its text says what is missing and how to configure it.
    """

    checked: int
    findings: list[Finding] = field(default_factory=list)
    not_applicable: str | None = None
    detail: str = ""
    inconclusive: str | None = None


Evaluate = Callable[[CheckContext], Outcome]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: Severity
    rationale: str
    reference: str
    applies_to: str
    sql: str  # the evidence query, shown in `auditkit controls --json` and the report
    evaluate: Evaluate
    # The audit-log meanings (auditkit.vocabulary) the control reads.
    meanings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "applies_to": self.applies_to,
            "rationale": self.rationale,
            "reference": self.reference,
            "audit_meanings": list(self.meanings),
            "sql": self.sql.strip(),
        }


_REGISTRY: dict[str, Control] = {}


def control(
    *,
    id: str,
    title: str,
    severity: Severity,
    rationale: str,
    reference: str,
    applies_to: str,
    sql: str,
    meanings: tuple[str, ...] = (),
) -> Callable[[Evaluate], Evaluate]:
    """Register an evaluation function as control `id`; `meanings` names the audit-log
    meanings it reads (documentation, and the README's † marks are checked against it)."""

    def register(fn: Evaluate) -> Evaluate:
        if id in _REGISTRY:
            raise ValueError(f"control {id} registered twice")
        if severity not in ("low", "medium", "high"):
            raise ValueError(f"control {id}: severity {severity!r}")
        if applies_to not in APPLIES_TO:
            raise ValueError(f"control {id}: applies_to {applies_to!r}")
        unknown = set(meanings) - set(MEANINGS)
        if unknown:
            raise ValueError(f"control {id}: unknown audit meanings {sorted(unknown)}")
        _REGISTRY[id] = Control(
            id, title, severity, rationale, reference, applies_to, sql, fn, tuple(meanings)
        )
        return fn

    return register


def catalogue() -> list[Control]:
    """All controls in id order (the order of every listing and result set)."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=_id_order)]


def _id_order(control_id: str) -> tuple[int, str]:
    families = ["OVS", "CS", "ID", "TR", "AL"]
    prefix = control_id.split("-", 1)[0]
    return (families.index(prefix) if prefix in families else len(families), control_id)


def get_control(control_id: str) -> Control:
    try:
        return _REGISTRY[control_id.upper()]
    except KeyError:
        raise UsageError(
            f"unknown control {control_id!r}; known: {', '.join(c.id for c in catalogue())}"
        ) from None


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

    `now`/`today` are injectable for tests: `now` bounds "at period end" for a period that
    has not ended, `today` decides which waivers have expired. `timings`, when given,
    receives seconds per control id (benchmarks). `vocabulary` is the audit-log vocabulary
    (`controls.context.vocabulary_for`); when None it is resolved on first use.
    """
    now = now or datetime.now(UTC)
    today = today or now.date()
    control_settings = ControlSettings.from_settings(settings)
    rules = ClassificationRules.from_settings(settings)
    waivers = parse_waivers(settings.waivers, {c.id for c in catalogue()})
    selected = (
        catalogue()
        if not only
        else sorted({get_control(c) for c in only}, key=lambda c: _id_order(c.id))
    )

    # Our own cursor: the caller's connection may hold an unfinished result, and the temp
    # tables the context creates stay private to this run.
    con = store.con.cursor()
    con.execute("SET TimeZone = 'UTC'")
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
            if w.target in chosen or _REGISTRY[w.control].applies_to not in PER_MESSAGE
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
    meta = {
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


# Registration happens on import; the order here does not matter (catalogue() sorts by id).
from auditkit.controls import auditlog, canspam, identity, oversight, traceability  # noqa: E402,F401

__all__ = [
    "CATALOGUE_VERSION",
    "Control",
    "ControlResults",
    "Outcome",
    "catalogue",
    "control",
    "get_control",
    "nothing_checked",
    "outbound_in_period",
    "run_controls",
]
