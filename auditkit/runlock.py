"""An advisory lock so two scheduled runs on one store never overlap.

DuckDB already refuses a second writer, but a run is harvest → check → report: the lock
covers the whole sequence, including the report phase that only reads. The lock file sits
next to the store and is released by the kernel if the process dies, so a killed run
never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from auditkit.errors import RunLockedError
from auditkit.store import describe_process


@contextmanager
def run_lock(store_path: Path) -> Iterator[Path]:
    lock_path = Path(f"{store_path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RunLockedError(
                f"another auditkit run ({_holder(lock_path)}) holds {lock_path}; this run did "
                "nothing (try again later)"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock_path
    finally:
        os.close(fd)


def _holder(lock_path: Path) -> str:
    """Who holds the lock: the holder wrote its PID in the file."""
    try:
        pid = int(lock_path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return "PID unknown"
    return describe_process(pid)
