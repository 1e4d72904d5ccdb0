"""Waivers: documented, approved, expiring exceptions that turn a matching finding "waived".

Config: `[[waivers]] control, target, justification, approver, expires = 2026-12-31`. A
waiver matches a finding on (control id, target id). It stops applying the day after
`expires`, so an auditor sees the finding open again instead of an exception that quietly
outlived its approval. A waiver that has expired, or whose target has no finding (a typo in
the id, or the issue was fixed), is a `WaiverWarning`: `check` prints it and the evidence
pack shows it, because an exception nobody notices has stopped working is a gap in the
evidence.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal

from auditkit.config_keys import reject_unknown
from auditkit.errors import ConfigError
from auditkit.findings import Finding

_TEXT_KEYS = ("control", "target", "justification", "approver")
# The keys of a [[waivers]] entry; any other is a ConfigError (config_keys.reject_unknown).
WAIVER_KEYS = (*_TEXT_KEYS, "expires")


@dataclass(frozen=True)
class Waiver:
    control: str
    target: str
    justification: str
    approver: str
    expires: date

    def applies(self, finding: Finding, today: date) -> bool:
        return (
            finding.control_id == self.control
            and finding.target_id == self.target
            and today <= self.expires
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "control": self.control,
            "target": self.target,
            "justification": self.justification,
            "approver": self.approver,
            "expires": self.expires.isoformat(),
        }


def parse_waivers(
    entries: Iterable[Mapping[str, Any]], known_controls: Collection[str]
) -> list[Waiver]:
    """Validate `[[waivers]]`; any problem raises ConfigError naming `waivers[i].key`."""
    waivers = []
    for index, entry in enumerate(entries):
        where = f"waivers[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a table with {', '.join(_TEXT_KEYS)} and expires")
        # Unknown keys first: `expiry = …` should say "did you mean expires", not "expires is
        # required".
        reject_unknown(entry, WAIVER_KEYS, where, kind="waiver field")
        values: dict[str, Any] = {}
        for key in _TEXT_KEYS:
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{where}.{key} is required and must be a non-empty string, got {value!r}"
                )
            values[key] = value.strip()
        if values["control"] not in known_controls:
            close = difflib.get_close_matches(
                values["control"].upper(), sorted(known_controls), n=1
            )
            raise ConfigError(
                f"{where}.control: unknown control id {values['control']!r}"
                + (f"; did you mean {close[0]}?" if close else "")
            )
        values["expires"] = _expiry(entry.get("expires"), where)
        waivers.append(Waiver(**values))
    return waivers


def _expiry(value: Any, where: str) -> date:
    # TOML gives a date for `expires = 2026-12-31`; accept an ISO string too.
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}.expires is required and must be a date (YYYY-MM-DD), got {value!r}")


def apply_waivers(
    findings: Iterable[Finding], waivers: Iterable[Waiver], today: date
) -> list[Finding]:
    """Mark findings covered by a current waiver as waived, carrying the waiver. (Expired
    and unmatched waivers are reported by `waiver_warnings`.)"""
    waivers = list(waivers)
    out = []
    for finding in findings:
        match = next((w for w in waivers if w.applies(finding, today)), None)
        if match is not None:
            finding = replace(finding, state="waived", waiver=match.to_dict())
        out.append(finding)
    return out


@dataclass(frozen=True)
class WaiverWarning:
    """A waiver that no longer does what it was approved for: it has `expired`, or it is
    `unmatched` (its control found nothing on its target)."""

    control: str
    target: str
    problem: Literal["expired", "unmatched"]
    message: str  # one line, without a "warning:" prefix (the CLI adds it)

    def to_dict(self) -> dict[str, str]:
        return {
            "control": self.control,
            "target": self.target,
            "problem": self.problem,
            "message": self.message,
        }


def waiver_warnings(
    waivers: Iterable[Waiver],
    findings: Mapping[str, Sequence[Finding] | None],
    today: date,
) -> list[WaiverWarning]:
    """One warning per waiver that has expired or matches no finding, in waiver order.

    `findings` holds, for each control the run evaluated, its findings after waivers were
    applied, or None when the run cannot tell what it would find (the control errored or
    was inconclusive): then only expiry is reported. Waivers of controls not in `findings`
    are not about this run and give no warning.
    """
    out = []
    for waiver in waivers:
        if waiver.control not in findings:
            continue
        found = findings[waiver.control]
        subject = f"waiver for {waiver.control} {waiver.target}"
        match = (
            None
            if found is None
            else next((f for f in found if f.target_id == waiver.target), None)
        )
        if today > waiver.expires:
            if found is None:
                consequence = "renew or remove it"
            elif match is None:
                consequence = "it matches no finding either; remove it"
            elif match.state == "waived":
                consequence = "another waiver covers the finding; remove this one"
            elif match.state == "open":
                consequence = "the finding is open again"
            else:
                consequence = f"the finding is back to {match.state}"
            message = f"{subject} expired on {waiver.expires.isoformat()}; {consequence}"
            out.append(WaiverWarning(waiver.control, waiver.target, "expired", message))
        elif found is not None and match is None:
            message = (
                f"{subject} matches no finding of {waiver.control}; check the target id, "
                "or remove the waiver if the issue is fixed"
            )
            out.append(WaiverWarning(waiver.control, waiver.target, "unmatched", message))
    return out
