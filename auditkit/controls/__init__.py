"""The compliance controls: a registry of controls with stable ids, and the runner.

`registry` holds the catalogue model and `@control`; each family module registers its
controls on import: `oversight` (OVS-001..003, 006, 007), `segregation` (OVS-004, 005),
`canspam` (CS-*), `identity` (ID-*), `traceability` (TR-*), `auditlog` (AL-*) and
`population` (PC-*).
`runner.run_controls` evaluates them over one period of a store; `context` builds the
period's shared views and `settings` validates the `[controls]` configuration. Importing
this package imports every family, so `catalogue()` is always complete.
"""

from __future__ import annotations

# Registration happens on import; the order does not matter (catalogue() sorts by id).
from auditkit.controls import (  # noqa: F401
    auditlog,
    canspam,
    identity,
    oversight,
    population,
    segregation,
    traceability,
)
from auditkit.controls.registry import (
    CATALOGUE_VERSION,
    Control,
    Outcome,
    catalogue,
    control,
    get_control,
)
from auditkit.controls.runner import (
    ControlResults,
    nothing_checked,
    outbound_in_period,
    run_controls,
)

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
