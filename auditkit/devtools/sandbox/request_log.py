"""The requests the sandbox saw (`SandboxServer.requests`), for tests and benchmarks."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator
from typing import NamedTuple


class LoggedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    kind: str  # route kind: account, mailboxes, list, detail, pending, audit, api_keys, ...
    status: int  # 0 when the connection was dropped without an answer


class RequestLog:
    """The requests the sandbox saw, in arrival order, with counts per route kind.

    Keeps the latest `max_entries` requests (benchmarks make millions); the counts cover
    every request since the last clear().
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=max_entries)
        self._counts: Counter[str] = Counter()

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            self._counts[entry.kind] += 1

    def snapshot(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def count(self, kind: str) -> int:
        with self._lock:
            return self._counts[kind]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.snapshot())
