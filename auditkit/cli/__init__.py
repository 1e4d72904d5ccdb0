"""Command-line interface: a thin click layer over the auditkit library.

`base` holds the group, shared options and error-to-exit-code mapping; each topic module
registers its commands on import.
"""

from __future__ import annotations

from auditkit.cli import (  # noqa: F401  (registers commands)
    archive,
    check,
    export,
    harvest,
    pipeline,
    report,
    sandbox,
)
from auditkit.cli.base import cli, main

__all__ = ["cli", "main"]
