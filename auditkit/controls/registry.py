"""The control registry: the catalogue's ids, metadata and evidence SQL, and `@control`.

Each family module (`oversight`, `segregation`, `canspam`, `identity`, `traceability`,
`auditlog`, `population`) registers its controls with `@control(...)` when it is imported; ids are a
public contract. This module imports no family, so the families import it freely; the
package `auditkit.controls` imports every family, which fills the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditkit.controls.context import CheckContext
from auditkit.errors import UsageError
from auditkit.findings import Finding, Severity
from auditkit.vocabulary import MEANINGS

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
# 2026.12-2: PC-001 added (population completeness against MultiMail's usage, webhook
#   deliveries and audit log).
# 2026.12-3: CS-002 (and the classifier's opt-out link signal) recognises more opt-out
#   wording (a label and its link anywhere in one sentence, "stop hearing from us", "rather
#   not receive these emails", "adjust your email settings"), and opt-out wording with a
#   link, address or reply verb it cannot read as one instruction is a review finding
#   instead of an open one; CS-001 and CS-002 read a message's archived as-sent copies
#   too (a footer added at send time is not in the stored draft). CS-003 reads a
#   suppression reason as an opt-out only when it names one ([controls] opt_out_reasons);
#   a late send after a suppression whose reason names neither an opt-out nor a delivery
#   failure, or none, is a review finding.
# 2026.12-4: AL-001 also reports an audit entry the source gave in two different versions
#   within one harvest (before, one version was kept and the other dropped unsaid).
CATALOGUE_VERSION = "2026.12-4"

APPLIES_TO = (
    "outbound_email",
    "commercial_email",
    "api_key",
    "mailbox",
    "audit_log",
    "conversation_link",
    "population",
)
# Controls that look at messages: a run limited to chosen messages sees only those.
PER_MESSAGE = ("outbound_email", "commercial_email", "conversation_link")


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
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=id_order)]


def id_order(control_id: str) -> tuple[int, str]:
    """Catalogue order: by family (OVS, CS, ID, TR, AL, PC), then by id."""
    families = ["OVS", "CS", "ID", "TR", "AL", "PC"]
    prefix = control_id.split("-", 1)[0]
    return (families.index(prefix) if prefix in families else len(families), control_id)


def get_control(control_id: str) -> Control:
    try:
        return _REGISTRY[control_id.upper()]
    except KeyError:
        raise UsageError(
            f"unknown control {control_id!r}; known: {', '.join(c.id for c in catalogue())}"
        ) from None
