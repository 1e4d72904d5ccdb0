"""Building blocks of the generator: timestamps, ids, the time-ordered JSONL writer, and
`GeneratorBase`, the state every layer of `QuarterGenerator` shares."""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from auditkit.devtools.sample.world import DEFAULT_MESSAGES, DEFAULT_SEED, MIN_MESSAGES
from auditkit.errors import ConfigError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


# -- small formatting helpers -------------------------------------------------------------
def iso(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, the form the API uses."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def epoch_ms(ts: datetime) -> int:
    # Integer arithmetic: float timestamps can land one millisecond below the ISO string.
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def dumps(record: Any) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_json(path: Path, value: Any) -> None:
    path.write_text(
        json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def at(day: date, hour: int, minute: int, second: int = 0, ms: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=UTC)


class IdFactory:
    """ULID-looking ids: 10 characters of millisecond time, 16 of seeded randomness."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new(self, ts: datetime) -> str:
        value = (epoch_ms(ts) << 80) | self.rng.getrandbits(80)
        # 130 bits as 13 ten-bit chunks, two Crockford characters each, most significant first.
        return "".join(_CROCKFORD_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10))


@dataclass(frozen=True)
class Mailbox:
    key: str  # short name used in this package
    id: str
    address: str
    display_name: str
    agent: str
    category: str
    key_id: str  # the API key its agent sends with


@dataclass
class Planted:
    """One planted violation: when, how to build it, and the findings it must produce."""

    created: datetime
    build: Callable[[datetime], str | None]
    # (control_id, target_type, note[, requires]); target filled on build. `requires` names
    # the auditkit.toml setting without which no tool could call it a violation.
    findings: list[tuple[str, ...]]
    # False: the email is in the sources' counts but no listing returns it (not in
    # emails.jsonl), so it takes no regular message's place in the day's traffic.
    listed: bool = True


class TimeOrderedSink:
    """Writes JSONL records in (timestamp, id) order while they arrive slightly out of order:
    records wait in a heap until everything older than `flush_before` has been produced."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.heap: list[tuple[int, str, str]] = []
        self.written = 0

    def push(self, ts: datetime, record_id: str, record: dict[str, Any]) -> None:
        heapq.heappush(self.heap, (epoch_ms(ts), record_id, dumps(record)))

    def flush_before(self, ts: datetime | None) -> None:
        limit = math.inf if ts is None else epoch_ms(ts)
        while self.heap and self.heap[0][0] < limit:
            self.fh.write(heapq.heappop(self.heap)[2] + "\n")
            self.written += 1


@dataclass
class Counters:
    outbound: int = 0
    inbound: int = 0
    audit: int = 0
    conversations: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class GeneratorBase:
    """The state every layer of `QuarterGenerator` shares: one seeded `random.Random` drives
    everything, so the order in which layers draw from it is the data's identity."""

    # Opened by QuarterGenerator.run() for the length of the run.
    email_sink: TimeOrderedSink
    audit_sink: TimeOrderedSink
    conversations_fh: IO[str]
    eu_conversations_fh: IO[str]

    def __init__(
        self, out: Path, *, messages: int = DEFAULT_MESSAGES, seed: int = DEFAULT_SEED
    ) -> None:
        if messages < MIN_MESSAGES:
            raise ConfigError(
                f"--messages must be at least {MIN_MESSAGES}: the planted violations and the "
                "audit-log mutations need some regular traffic around them"
            )
        self.out = out
        self.messages = messages
        self.seed = seed
        self.rng = random.Random(seed)
        self.ids = IdFactory(self.rng)
        self.counters = Counters()
        self.regular_support = 0
        self.eu_email_id: str | None = None
        self.expected: list[dict[str, str]] = []
        self.suppressions: list[dict[str, Any]] = []
        self.key_last_used: dict[str, datetime] = {}
        self.key_ids: set[str] = set()
        self.conversation_seq = 0
        self.order_seq = 4400
        self.pool_size = max(400, messages // 2)
        self.reserved_seq = self.pool_size  # addresses above the pool are never picked at random
        self.notes: dict[str, str] = {}  # README lines per planted id
