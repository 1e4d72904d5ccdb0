"""MultiMail's own counts of the sample: daily usage and the webhook delivery history.

Both are counted while the mail is generated, from the same facts the records carry, so
they reconcile with the records exactly, except where a planted gap says otherwise (an
email the listing never returns is still counted here). Nothing here draws from the
seeded random stream: adding these files changed no other record of the sample.

- `multimail/usage_daily.json`: `UsageDaily` for the sample's days. `emails_sent` counts
  outbound mail that left MultiMail (by the day it was created), `emails_received` inbound
  mail, `oversight_actions` approval and rejection entries, `api_calls` a figure no record
  can check (PC-001 must leave it unreconciled, not guess).
- `multimail/webhook_deliveries.jsonl`: one delivery per event to the tenant-wide
  subscription (`message.sent` when the email is created, `message.delivered`,
  `message.bounced`), kept as a provider keeps a history: the last
  `DELIVERY_HISTORY_DAYS` days before the snapshot, at most `DELIVERY_HISTORY_MAX` records.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from auditkit.devtools.sample.base import dumps, iso, write_json
from auditkit.devtools.sample.people import People
from auditkit.devtools.sample.world import FIRST_DAY, LAST_DAY, SNAPSHOT_AT

DELIVERY_HISTORY_DAYS = 14
DELIVERY_HISTORY_MAX = 20_000
DELIVERY_CUTOFF = SNAPSHOT_AT - timedelta(days=DELIVERY_HISTORY_DAYS)
# The actions whose entries MultiMail counts as oversight actions.
OVERSIGHT_ACTIONS = ("oversight.approved", "oversight.rejected")


class PopulationCounts(People):
    """Usage counters and webhook deliveries, fed by the layers that write the records."""

    usage: Counter[tuple[date, str]]
    deliveries: list[tuple[datetime, str, str]]  # (time, id, event type)

    def _count_usage(self, ts: datetime, event_type: str) -> None:
        if not hasattr(self, "usage"):
            self.usage = Counter()
        self.usage[(ts.date(), event_type)] += 1

    def _deliver(self, ts: datetime | None, event_type: str, record_id: str) -> None:
        """A delivery of `event_type` about `record_id` to the tenant-wide subscription,
        if the provider still holds it at the snapshot."""
        if not hasattr(self, "deliveries"):
            self.deliveries = []
        if ts is None or ts < DELIVERY_CUTOFF:
            return
        digest = hashlib.sha256(f"{event_type}|{record_id}".encode()).hexdigest()[:24]
        self.deliveries.append((ts, f"whd_{digest}", event_type))

    def _write_population_files(self, mm: Path) -> None:
        usage = getattr(self, "usage", Counter())
        data = []
        day = FIRST_DAY
        while day <= LAST_DAY:
            counts = {t: n for (d, t), n in usage.items() if d == day}
            # A figure no harvested record reflects: PC-001 must leave it unreconciled.
            counts["api_calls"] = 3 * sum(counts.values()) + 17
            data += [
                {"date": day.isoformat(), "event_type": t, "count": counts[t]}
                for t in sorted(counts)
            ]
            day += timedelta(days=1)
        write_json(mm / "usage_daily.json", {"breakdown": "daily", "data": data})
        subscriptions = [w for w in self.webhooks if isinstance(w, dict)]
        url = next(str(w["url"]) for w in subscriptions if w.get("mailbox_id") is None)
        kept = sorted(getattr(self, "deliveries", []))[-DELIVERY_HISTORY_MAX:]
        with (mm / "webhook_deliveries.jsonl").open("w", encoding="utf-8", newline="\n") as fh:
            for ts, delivery_id, event_type in kept:
                fh.write(dumps(_delivery(ts, delivery_id, event_type, url)) + "\n")


def _delivery(ts: datetime, delivery_id: str, event_type: str, url: str) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "event_type": event_type,
        "url": url,
        "status": "delivered",
        "attempts": 1,
        "response_status": 200,
        "created_at": iso(ts),
        "last_attempt_at": iso(ts),
    }
