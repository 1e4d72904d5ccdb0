"""Fixtures for control tests: an in-memory store, its row builder, and `check()`.

The row builder itself lives in `tests/builders.py` (shared with the report tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import click
import pytest

from auditkit.config import Settings
from auditkit.controls import run_controls
from auditkit.findings import ControlResult, Period, parse_period
from auditkit.store import Store
from tests.builders import ScratchStore, StoreBuilder

Q3 = parse_period("2026Q3")
# After Q3 ended, before any test waiver expires unless the test says otherwise.
NOW = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    with ScratchStore() as s:
        yield s


@pytest.fixture
def build(store: Store) -> StoreBuilder:
    return StoreBuilder(store)


def check(
    store: Store,
    control_id: str,
    *,
    settings: Settings | None = None,
    period: Period = Q3,
    today: date | None = None,
) -> ControlResult:
    (result,) = run_controls(
        store, settings or Settings(), period, only=[control_id], now=NOW, today=today
    )
    return result


def targets(result: ControlResult, state: str | None = None) -> set[str]:
    return {f.target_id for f in result.findings if state is None or f.state == state}


@pytest.fixture
def cli() -> click.Group:
    """The `auditkit` click group, for CliRunner tests."""
    from auditkit.cli import cli as group

    return group
