"""The audit log: entries, suppressions (with their audit entries), key history and
background opt-outs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from auditkit.devtools.sample.base import iso
from auditkit.devtools.sample.population import OVERSIGHT_ACTIONS, PopulationCounts


class AuditTrail(PopulationCounts):
    """Audit entries and suppressions; every other layer records through these."""

    def _audit(
        self,
        ts: datetime,
        action: str,
        resource_type: str,
        resource_id: str,
        actor_key_id: str,
        metadata: dict[str, Any] | None,
    ) -> str:
        entry_id = self.ids.new(ts)
        self.audit_sink.push(
            ts,
            entry_id,
            {
                "id": entry_id,
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "actor_key_id": actor_key_id,
                "metadata": metadata,
                "created_at": iso(ts),
            },
        )
        self.counters.audit += 1
        if action in OVERSIGHT_ACTIONS:
            self._count_usage(ts, "oversight_actions")
        if actor_key_id in self.key_ids:
            self.key_last_used[actor_key_id] = max(ts, self.key_last_used.get(actor_key_id, ts))
        return entry_id

    def _add_suppression(
        self, ts: datetime, address: str, reason: str, mailbox_id: str | None
    ) -> str:
        suppression_id = self.ids.new(ts)
        self.suppressions.append(
            {
                "id": suppression_id,
                "email_address": address,
                "reason": reason,
                "mailbox_id": mailbox_id,
                "created_at": iso(ts),
            }
        )
        # System actions (bounce hooks, the hosted unsubscribe page) have no API key.
        self._audit(
            ts + timedelta(milliseconds=5),
            "suppression.added",
            "suppression",
            suppression_id,
            "system",
            {"email_address": address, "reason": reason},
        )
        return suppression_id

    def _setup_history(self) -> None:
        """Audit entries from before the sample window: key creation."""
        for key in self.keys.values():
            created = datetime.fromisoformat(key["created_at"].replace("Z", "+00:00"))
            # Keys were created in the dashboard with an operator approval code: no key acted.
            self._audit(
                created,
                "api_key.created",
                "api_key",
                key["id"],
                "system",
                {"name": key["name"], "scopes": key["scopes"]},
            )

    def _background_suppressions(self) -> None:
        """Opt-outs and complaints from addresses the regular traffic never writes to."""
        start = datetime(2026, 4, 1, tzinfo=UTC)
        span = (datetime(2026, 9, 25, tzinfo=UTC) - start).total_seconds()
        reasons = ("unsubscribe", "unsubscribe", "unsubscribe", "spam_complaint", "hard_bounce")
        picks = []
        for _ in range(24):
            ts = start + timedelta(
                seconds=int(self.rng.uniform(0, span)), milliseconds=self.rng.randrange(1000)
            )
            picks.append((ts, self._reserved_customer()[1], self.rng.choice(reasons)))
        for ts, address, reason in sorted(picks):
            scope = self.mailboxes["outreach"].id if reason == "unsubscribe" else None
            self._add_suppression(ts, address, reason, scope)
