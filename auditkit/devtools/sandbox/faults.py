"""Scripted faults (`SandboxServer.faults.add(...)`): the next matching requests fail."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

FAULT_KINDS = frozenset({"429", "500", "502", "503", "drop", "malformed", "timeout", "truncated"})
# A hold: more requests than any run makes, each kept waiting longer than any test lasts.
HOLD_TIMES = 100_000
HOLD_SECONDS = 3600.0


@dataclass
class Fault:
    """One scripted fault: the next `times` requests whose path matches `pattern` get `kind`."""

    pattern: re.Pattern[str]
    kind: str
    times: int
    retry_after: str | None
    seconds: float


class FaultPlan:
    """Scripted faults, consumed in the order they were added. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        path_regex: str,
        kind: str,
        times: int = 1,
        retry_after: str | None = "1",
        seconds: float = 2.0,
    ) -> None:
        """Fail the next `times` matching requests. Kinds: 429 (with `Retry-After: retry_after`
        unless None), 500/502/503, drop (close without answering), malformed (200 with broken
        JSON), timeout (say nothing for `seconds`, then close), truncated (the real answer's
        headers and the first half of its body, then close: the connection is cut while
        the body arrives)."""
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(Fault(re.compile(path_regex), kind, times, retry_after, seconds))

    def hold(self, path_regex: str) -> None:
        """Leave every matching request (retries included) unanswered until the server
        stops, so a run cannot get past it however fast or slow the machine; `clear()` lets
        later requests through."""
        self.add(path_regex, "timeout", times=HOLD_TIMES, seconds=HOLD_SECONDS)

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)
