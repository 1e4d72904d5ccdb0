"""DuckDB's spill folder: one private folder per open store, and the sweep of the folders
that killed processes left behind.

A store's spill folder (sorts, joins and evicted blocks past `memory_limit`) is removed
when the store closes. A process that is killed (SIGKILL, the OOM killer, a cron timeout)
never closes it, and it is killed most often exactly when it was spilling: gigabytes
left beside the store or in /tmp, run after run. So each folder holds a lock file its
process keeps locked (flock) for as long as the store is open; the kernel releases it
when the process ends, however it ends. Opening a store sweeps the folder it spills in:
every other spill folder whose lock can be taken belongs to no live process, and goes.

Folders without a lock file (made by an older auditkit, or a moment old) are left alone,
and so are other users' folders, which are owner-only and cannot be opened.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "auditkit-spill-"
LOCK_NAME = ".owner.lock"
# The lock file is made and locked under this name, then renamed to LOCK_NAME: a sweep
# that finds LOCK_NAME finds it locked, so it can never take a folder being set up.
_UNLOCKED_NAME = ".owner.lock.new"


class SpillFolder:
    """A private, owner-only spill folder in `base` (None: the system's temp folder), held
    locked until `remove`. Making one sweeps `base` of folders no live process holds."""

    def __init__(self, base: Path | None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        try:
            self._fd = os.open(self.path / _UNLOCKED_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(self.path / _UNLOCKED_NAME, self.path / LOCK_NAME)
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        self.swept = sweep(self.path.parent, keep=self.path)

    def remove(self) -> None:
        """Remove the folder and what DuckDB left in it, then let go of the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)


def sweep(base: Path, *, keep: Path | None = None) -> list[Path]:
    """Remove every spill folder in `base` (but `keep`) whose lock no process holds; returns
    the folders removed. Anything that cannot be opened or locked is left as it is."""
    removed = []
    for folder in sorted(base.glob(PREFIX + "*")):
        if folder == keep:
            continue
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDWR)
        except OSError:  # no lock file, not a folder, or another user's
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: its process is alive
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed
