"""Waivers: documented, approved, expiring exceptions that turn a matching finding "waived".

Config: `[[waivers]] control, target, justification, approver, expires = 2026-12-31`. A
waiver matches a finding on (control id, target id). It stops applying the day after
`expires`, so an auditor sees the finding open again instead of an exception that quietly
outlived its approval.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from auditkit.errors import ConfigError
from auditkit.findings import Finding

logger = logging.getLogger(__name__)

_TEXT_KEYS = ("control", "target", "justification", "approver")


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
        values: dict[str, Any] = {}
        for key in _TEXT_KEYS:
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{where}.{key} is required and must be a non-empty string, got {value!r}"
                )
            values[key] = value.strip()
        if values["control"] not in known_controls:
            raise ConfigError(f"{where}.control: unknown control id {values['control']!r}")
        values["expires"] = _expiry(entry.get("expires"), where)
        unknown = sorted(set(entry) - set(_TEXT_KEYS) - {"expires"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]} is not a waiver field")
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
    """Mark findings covered by a current waiver as waived, carrying the waiver."""
    waivers = list(waivers)
    out = []
    for finding in findings:
        match = next((w for w in waivers if w.applies(finding, today)), None)
        if match is None:
            expired = next(
                (
                    w
                    for w in waivers
                    if w.control == finding.control_id and w.target == finding.target_id
                ),
                None,
            )
            if expired is not None:
                logger.info(
                    "waiver for %s on %s expired on %s; finding stays %s",
                    finding.control_id,
                    finding.target_id,
                    expired.expires,
                    finding.state,
                )
            out.append(finding)
        else:
            out.append(replace(finding, state="waived", waiver=match.to_dict()))
    return out
