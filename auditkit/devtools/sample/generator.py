"""`QuarterGenerator`: the day-by-day run that streams the JSONL files (so 1M-message
benchmark sets keep memory bounded), and `generate()`."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from auditkit.devtools.sample.base import Planted, TimeOrderedSink, at, epoch_ms
from auditkit.devtools.sample.files import SmallFiles
from auditkit.devtools.sample.world import (
    DEFAULT_MESSAGES,
    DEFAULT_SEED,
    FIRST_DAY,
    LAST_DAY,
    MODE_CHANGED_BY,
    OUTREACH_MONITORED_AT,
    PERIOD_END,
    PERIOD_START,
)

# The logger name the generator has always logged under.
logger = logging.getLogger("auditkit.sample")


class QuarterGenerator(SmallFiles):
    """Builds the whole dataset into `out`; `run()` returns a summary of what it wrote.

    Layers, each building on the one before: GeneratorBase (state) → People → AuditTrail →
    Conversations (Intercom) → Emails → Violations (planted) → SmallFiles → this run loop.
    """

    def _day_counts(self) -> list[tuple[date, int]]:
        """Regular messages per day: weekdays weigh 1, weekends 0.35, boundary days 0.5."""
        days = [FIRST_DAY + timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]
        weights = []
        for day in days:
            w = 1.0 if day.weekday() < 5 else 0.35
            if not (PERIOD_START.date() <= day < PERIOD_END.date()):
                w *= 0.5
            weights.append(w)
        total = sum(weights)
        exact = [self.messages * w / total for w in weights]
        counts = [int(x) for x in exact]
        # Largest remainder, ties by date: deterministic and sums to exactly `messages`.
        order = sorted(range(len(days)), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in order[: self.messages - sum(counts)]:
            counts[i] += 1
        return list(zip(days, counts, strict=True))

    def _day_times(self, day: date, count: int) -> list[datetime]:
        """`count` distinct millisecond timestamps in the day, busiest in US business hours."""
        start = epoch_ms(at(day, 0, 0))
        seen: set[int] = set()
        out = []
        for _ in range(count):
            hour = min(max(self.rng.gauss(18.0, 3.5), 0.0), 23.999)  # ~11:00 Pacific in UTC
            ms = start + int(hour * 3_600_000) + self.rng.randrange(1000)
            while ms in seen:
                ms += 1
            seen.add(ms)
            out.append(datetime.fromtimestamp(ms / 1000, tz=UTC))
        return sorted(out)

    def run(self) -> dict[str, Any]:
        out = self.out
        for sub in ("multimail", "intercom/eu", "imports", "invalid"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        self._build_account_objects()
        self.key_ids = {k["id"] for k in self.keys.values()}
        with (
            (out / "multimail" / "emails.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as emails_fh,
            (out / "multimail" / "audit_log.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as audit_fh,
            (out / "intercom" / "conversations.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as conv_fh,
            (out / "intercom" / "eu" / "conversations.jsonl").open(
                "w", encoding="utf-8", newline="\n"
            ) as eu_conv_fh,
        ):
            self.email_sink = TimeOrderedSink(emails_fh)
            self.audit_sink = TimeOrderedSink(audit_fh)
            self.conversations_fh = conv_fh
            self.eu_conversations_fh = eu_conv_fh
            self._setup_history()
            plants = self._planted()
            for ts, address in self.cs003_suppressions:
                self._add_suppression(ts, address, "unsubscribe", self.mailboxes["outreach"].id)
            self._background_suppressions()
            by_day: dict[date, list[Planted]] = {}
            for p in plants:
                by_day.setdefault(p.created.date(), []).append(p)
            self.messages = max(self.messages - sum(p.listed for p in plants), 0)
            for day, count in self._day_counts():
                self.email_sink.flush_before(at(day, 0, 0))
                self.audit_sink.flush_before(at(day, 0, 0))
                events: list[tuple[datetime, int, Planted | None]] = [
                    (t, 0, None) for t in self._day_times(day, count)
                ]
                events += [(p.created, i + 1, p) for i, p in enumerate(by_day.get(day, []))]
                for ts, _, planted in sorted(events, key=lambda e: (e[0], e[1])):
                    if planted is None:
                        self._regular(ts)
                        continue
                    target = planted.build(ts)
                    for control_id, target_type, *rest in planted.findings:
                        self._expect(control_id, target_type, str(target), *rest)
                if day == OUTREACH_MONITORED_AT.date():
                    entry = self._audit(
                        OUTREACH_MONITORED_AT,
                        "mailbox.oversight_mode_changed",
                        "mailbox",
                        self.mailboxes["outreach"].id,
                        self.keys["outreach"]["id"],
                        {"from": "gated_send", "to": "monitored", "changed_by": MODE_CHANGED_BY},
                    )
                    self._expect(
                        "OVS-007",
                        "audit_entry",
                        entry,
                        "outreach@ (commercial) loosened from gated_send to monitored mid-quarter",
                    )
            self.email_sink.flush_before(None)
            self.audit_sink.flush_before(None)
        self._write_small_files()
        self._write_population_files(out / "multimail")
        return {
            "outbound": self.counters.outbound,
            "inbound": self.counters.inbound,
            "audit_entries": self.counters.audit,
            "conversations": self.counters.conversations,
            "suppressions": len(self.suppressions),
            "expected_findings": len(self.expected),
            "statuses": dict(sorted(self.counters.by_status.items())),
        }


def generate(
    out: Path, *, messages: int = DEFAULT_MESSAGES, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Write a complete dataset into `out` (created; existing generated files are replaced)."""
    generator = QuarterGenerator(out, messages=messages, seed=seed)  # validates first
    for sub in ("multimail", "intercom", "imports", "invalid"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    summary = generator.run()
    logger.info("sample data written to %s: %s", out, summary)
    return summary
