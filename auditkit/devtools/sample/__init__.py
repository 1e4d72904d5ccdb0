"""Seeded generator of the sample quarter (2026Q3, Northwind Supply Co.) and of benchmark sets.

`python -m auditkit.sample --messages N --out DIR [--seed 42]` writes the layout described in
ARCHITECTURE.md "Sample data". The same seed and N always give byte-identical files: one
`random.Random` drives everything, JSON keys are sorted and records are written in a fixed
order. Messages are generated day by day and written to the JSONL files as soon as every
earlier record is out, so 1M-message sets stream with memory bounded by about two days of
events (plus the small suppression and key lists).

Every message is compliant except the planted violations listed in `expected_findings.json`
and `README.md`, so a control run over the sample must find exactly that set.

Modules, in the order `QuarterGenerator`'s layers build on each other: `world` (the company,
its people and texts), `base` (ids, timestamps, the ordered writer, shared state), `people`
(customers, account objects), `audit` (audit log, suppressions), `intercom`
(conversations), `emails` (messages and bodies, regular traffic), `planted` (violations and
expected findings), `files` (the small files, config, README), `generator` (the day-by-day
run, `generate()`), `cli` (`main`).
"""

from auditkit.devtools.sample.cli import main
from auditkit.devtools.sample.generator import QuarterGenerator, generate
from auditkit.devtools.sample.world import (
    DEFAULT_MESSAGES,
    DEFAULT_SEED,
    PHYSICAL_ADDRESS,
    REVIEWERS,
    UNSUBSCRIBE_URL,
)

__all__ = [
    "DEFAULT_MESSAGES",
    "DEFAULT_SEED",
    "PHYSICAL_ADDRESS",
    "REVIEWERS",
    "UNSUBSCRIBE_URL",
    "QuarterGenerator",
    "generate",
    "main",
]
