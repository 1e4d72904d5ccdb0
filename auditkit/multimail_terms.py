"""MultiMail's email vocabulary: status names and oversight modes, and the sets auditkit reads.

Every module that asks "is this email final / sent / waiting / stopped?" or "was its
mailbox gated?" imports the answer from here, so the harvester, the controls and the
evidence pack can never disagree about what a status means. The status lifecycle is
multimail-api.md §7 (`delivered` and `bounced` are integration-guide statuses only; the
real API records delivery in `delivered_at` / `bounced_at`); the modes are §6.
"""

from __future__ import annotations

# The oversight modes of a mailbox (multimail-api.md §6), and those that hold outbound mail
# until a human approves it.
OVERSIGHT_MODES = ("read_only", "gated_all", "gated_send", "monitored", "autonomous")
GATED_MODES = ("gated_send", "gated_all")

# A reviewer's rejection or a cancellation stopped the message.
STOPPED_STATUSES = ("rejected", "cancelled")
# Statuses after which an email never changes again (the store's `is_final`, with a
# delivery or bounce time).
FINAL_STATUSES = frozenset({*STOPPED_STATUSES, "send_failed"})
# Guide-shape statuses that are terminal even when no timestamp came with them.
GUIDE_FINAL_STATUSES = frozenset({"delivered", "bounced"})
# Waiting for a reviewer's decision.
PENDING_APPROVAL_STATUSES = ("pending_send_approval", "pending_inbound_approval")
# Statuses under which an outbound email has not (yet) left MultiMail.
UNSENT_STATUSES = (
    "pending_scan",
    *PENDING_APPROVAL_STATUSES,
    "scheduled",
    *STOPPED_STATUSES,
    "send_failed",
)
# An outbound email that still waits to go out: the evidence pack's decision `pending`.
WAITING_STATUSES = ("pending_scan", "pending_send_approval", "scheduled")
