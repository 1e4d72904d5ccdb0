"""Run a benchmark step in a fresh process and measure that process alone: wall time, CPU
time (user + system) and peak RSS, from os.wait4, so no other step's memory counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float
    rss_mib: float
    output: str  # the child's stdout, stripped


def run_measured(module: str, *args: str) -> Measured:
    """`python -m module args…`; exits the benchmark if the child fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{module} {' '.join(args)} failed (exit {code})")
    return Measured(
        wall=time.perf_counter() - t0,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=usage.ru_maxrss / 1024,  # Linux: KiB
        output=output.strip(),
    )
