"""What a pack covers: a period, explicit message ids, or one recipient, and the SQL that
selects those outbound messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditkit.evidence_sql import addressed_to_sql, bare_address
from auditkit.findings import Period

# What the shared DKIM ranking and mode reconstruction need of each selected message.
SELECTED_COLUMNS = ", ".join(
    f"e.{c}"
    for c in (
        "id",
        "mailbox_id",
        "direction",
        "from_address",
        "to_addresses",
        "cc_addresses",
        "subject",
        "status",
        "created_at",
        "approved_by",
        "approved_at",
        "decision",
        "decision_note",
        "delivered_at",
        "bounced_at",
        "bounce_type",
        "agent",
        "conversation_id",
        "dkim_verified",
        "raw_sha256",
    )
)


@dataclass(frozen=True)
class Scope:
    """Which outbound messages a pack covers: a period, explicit ids, or one recipient."""

    period: Period
    message_ids: tuple[str, ...] | None = None
    recipient: str | None = None

    def __post_init__(self) -> None:
        # The bare address, as stored To/Cc values are read: "Jane Roe <Jane@x.com>" and
        # "jane@x.com" select the same mail, and the pack records the one address.
        if self.recipient is not None:
            object.__setattr__(self, "recipient", bare_address(self.recipient))

    @property
    def kind(self) -> str:
        if self.message_ids is not None:
            return "messages"
        return "recipient" if self.recipient is not None else "period"

    def describe(self) -> str:
        if self.kind == "messages":
            ids = self.message_ids or ()
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            return f"{len(ids)} selected outbound message(s): {shown}"
        if self.kind == "recipient":
            return (
                f"outbound messages to or copied to {self.recipient} created in {self.period.label}"
            )
        return f"every outbound message created in {self.period.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message_ids": list(self.message_ids) if self.message_ids is not None else None,
            "recipient": self.recipient,
        }


def scope_params(scope: Scope) -> dict[str, Any]:
    return {
        "use_period": scope.kind != "messages",
        "start": scope.period.start_at,
        "end": scope.period.end_before,
        "use_ids": scope.message_ids is not None,
        "ids": list(scope.message_ids or ()),
        "use_recipient": scope.recipient is not None,
        "recipient": scope.recipient or "",
    }


def selected_sql(scope: Scope) -> str:
    """The selected outbound emails; only the filters the scope uses, so DuckDB never
    evaluates a recipient lambda over a million rows it does not need. Recipients match
    bare addresses or "Name <address>"."""
    where = ["e.direction = 'outbound'"]
    if scope.kind != "messages":
        where.append("e.created_at >= $start AND e.created_at < $end")
    if scope.message_ids is not None:
        where.append("list_contains($ids, e.id)")
    if scope.recipient is not None:
        where.append(addressed_to_sql("e.to_addresses", "e.cc_addresses", "$recipient"))
    # Only the columns the pack derives from: `sel` is referenced several times, so DuckDB
    # materialises it, and `e.*` would drag every body and raw record of the quarter along.
    return f"SELECT {SELECTED_COLUMNS} FROM multimail_emails e WHERE " + " AND ".join(where)
