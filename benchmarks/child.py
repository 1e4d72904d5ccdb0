"""Run a benchmark step in a fresh process and measure that process alone: wall time, CPU
time (user + system) and peak RSS, from os.wait4, so no other step's memory counts."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float
    rss_mib: float
    output: str  # the child's stdout, stripped
    exit_code: int = 0
    error: str = ""  # the last line of the child's stderr when it failed


def run_measured(
    module: str, *args: str, check: bool = True, env: Mapping[str, str] | None = None
) -> Measured:
    """`python -m module args…` (in `env`, else this process's environment); exits the
    benchmark if the child fails, unless `check` is false (then the failure is in the
    result, for the benchmark to report)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=None if env is None else dict(env),
        )
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        stderr.seek(0)
        log = stderr.read()
    sys.stderr.write(log)
    code = os.waitstatus_to_exitcode(status)
    error = next((line for line in reversed(log.splitlines()) if "Error" in line), "")
    if code != 0 and check:
        raise SystemExit(f"{module} {' '.join(args)} failed (exit {code}): {error}")
    return Measured(
        wall=time.perf_counter() - t0,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=usage.ru_maxrss / 1024,  # Linux: KiB
        output=output.strip(),
        exit_code=code,
        error=error,
    )
