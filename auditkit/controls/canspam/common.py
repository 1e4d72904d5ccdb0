"""What the CAN-SPAM controls share: the commercial-mail scope and how a mixed message is judged."""

from __future__ import annotations

from auditkit.controls.context import CheckContext
from auditkit.findings import FindingState

BODY_SOURCE = "body_markdown (author's draft as stored) + mailbox signature_block"


def state_for(classification: str) -> FindingState:
    """A finding's state: `review` on mixed mail (a human decides its primary purpose)."""
    return "review" if classification == "mixed" else "open"


def mixed_note(classification: str) -> str:
    """The sentence a finding on mixed mail ends with."""
    return (
        " Mixed commercial/transactional content: a human must decide the primary purpose."
        if classification == "mixed"
        else ""
    )


def commercial_scope(ctx: CheckContext) -> tuple[int, int]:
    """(commercial or mixed, all) sent messages of the period: the content rules' scope."""
    table = ctx.classified()
    row = ctx.rows(
        f"SELECT count(*) FILTER (WHERE classification IN ('commercial', 'mixed')) AS commercial, "
        f"count(*) AS total FROM {table} WHERE is_sent"
    )[0]
    return row["commercial"], row["total"]


def not_applicable_reason(total: int) -> str:
    """Why a content rule had nothing to check, given how many messages were sent."""
    if not total:
        return "no outbound email created in the period was sent"
    return f"no commercial or mixed email among the {total} sent in the period (all transactional)"
