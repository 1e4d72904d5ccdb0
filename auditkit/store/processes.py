"""Who holds a store file: DuckDB's lock error names a PID; /proc names its command."""

from __future__ import annotations

import re
from pathlib import Path


def lock_holder(message: str) -> str:
    """'PID 4242 (auditkit harvest --full-audit-scan)' from DuckDB's lock error, which names
    the holder's PID; its command line comes from /proc where there is one."""
    found = re.search(r"\(PID (\d+)\)", message)
    return describe_process(int(found.group(1))) if found else "another process"


def describe_process(pid: int) -> str:
    """'PID 4242 (auditkit run --period last-quarter)', or 'PID 4242' when /proc says nothing."""
    command = process_command(pid)
    return f"PID {pid}" + (f" ({command})" if command else "")


def process_command(pid: int) -> str | None:
    """The command line of process `pid` (Linux /proc), shortened; None when unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    words = [w.decode("utf-8", "replace") for w in raw.split(b"\0") if w]
    # "/…/python /…/bin/auditkit harvest" reads better as "auditkit harvest".
    if len(words) > 1 and Path(words[0]).name.startswith("python") and not words[1].startswith("-"):
        words = words[1:]
    if words:
        words[0] = Path(words[0]).name
    return " ".join(words)[:120] or None
