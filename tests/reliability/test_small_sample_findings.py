"""The 60-message sample is another rendering of the generator's facts than the bundled
quarter the controls were written beside: `auditkit demo` on it must find exactly what the
generator planted in it, as the bundled quarter's demo does (tests/cli/test_demo.py).

It read that sample's message sent after the last one its listings returned (PC-001) only
once the usage range stopped ending at the newest stored email's day."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.cli.test_demo import keys, read_json
from tests.reliability.conftest import Workspace

# Reads the session's workspace: a dozen CLI runs, end to end.
pytestmark = pytest.mark.slow


def test_the_demo_finds_exactly_what_was_planted_in_the_small_sample(
    workspace: Workspace, small_dataset: Path
) -> None:
    with (workspace.demo / "findings.csv").open(encoding="utf-8", newline="") as fh:
        found = keys(list(csv.DictReader(fh)))
    planted = keys(read_json(small_dataset / "expected_findings.json"))
    assert found == planted, {"missed": planted - found, "unplanted": found - planted}
