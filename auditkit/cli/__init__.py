"""Command-line interface: a thin click layer over the auditkit library.

`base` holds the group, shared options and error-to-exit-code mapping; each topic module
registers its commands on import.
"""

from __future__ import annotations

from auditkit.cli import archive, check, harvest, pipeline, report, sandbox  # noqa: F401  (registers commands)
from auditkit.cli.base import cli, main

__all__ = ["cli", "main"]
