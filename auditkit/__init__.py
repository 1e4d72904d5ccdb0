"""auditkit: evidence about email that AI agents send through MultiMail.

Harvest MultiMail and Intercom records into DuckDB, check them against oversight and
CAN-SPAM controls, and render verifiable evidence packs. The CLI in `auditkit.cli` is a
thin layer over these library modules.
"""

from __future__ import annotations

__version__ = "0.1.0"
USER_AGENT = f"auditkit/{__version__}"

__all__ = ["__version__", "USER_AGENT"]
