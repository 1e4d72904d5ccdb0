"""PC-001: the harvested population against MultiMail's own counts (usage, webhook deliveries,
the audit log's send entries), including the false accusations it must not make."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from auditkit.config import Settings
from auditkit.controls import run_controls
from auditkit.findings import ControlResult
from auditkit.store import Store
from tests.builders import StoreBuilder
from tests.controls.conftest import NOW, Q3, check, targets

DAYS = [date(2026, 8, d) for d in range(1, 11)]
SENT_PER_DAY = [3, 5, 2, 4, 6, 1, 3, 5, 2, 4]
GAP = "em_0805_2"
FORBIDDEN = (
    "MultiMail answered 403 Forbidden for /v1/usage: the key in MULTIMAIL_API_KEY lacks the "
    "scope this endpoint needs (Insufficient scope)"
)


def world(
    build: StoreBuilder,
    *,
    sent_type: str = "emails_sent",
    hook_type: str = "message.sent",
    unlisted: tuple[str, ...] = (),
    hooks: bool = True,
) -> None:
    """Ten days of sent mail, each email with its send entry, counted by usage (and, with
    `hooks`, delivered to one tenant-wide webhook). `unlisted` emails are counted and
    logged but never harvested."""
    for day, sent in zip(DAYS, SENT_PER_DAY, strict=True):
        for i in range(sent):
            email_id = f"em_{day:%m%d}_{i}"
            created = datetime(day.year, day.month, day.day, 8 + i, tzinfo=UTC)
            if email_id not in unlisted:
                build.email(
                    email_id, created_at=created, delivered_at=created + timedelta(minutes=3)
                )
            build.audit(f"au_{email_id}", "email.sent", email_id, created_at=created)
            if hooks:
                build.delivery(f"wd_{email_id}", hook_type, created)
        build.usage(day, sent_type, sent)
        build.usage(day, "api_calls", 7 * sent + 3)  # no record can check it
    build.coverage(
        "usage_daily",
        covered_from=datetime(2026, 8, 1, tzinfo=UTC),
        covered_to=datetime(2026, 8, 11, tzinfo=UTC),
    )
    if hooks:
        build.webhook("wh_1", [hook_type, "message.bounced"])
        build.coverage(
            "webhook_deliveries",
            covered_from=datetime(2026, 7, 31, 12, tzinfo=UTC),
            harvested_at=datetime(2026, 8, 12, 3, tzinfo=UTC),
        )


def findings(result: ControlResult) -> set[tuple[str, str, str]]:
    return {(f.target_type, f.target_id, f.state) for f in result.findings}


def test_passes_when_every_count_reconciles(store: Store, build: StoreBuilder) -> None:
    world(build)
    result = check(store, "PC-001")
    assert result.status == "pass", result.detail
    assert not result.findings and result.checked > 0
    assert "emails_sent as outbound email that left MultiMail" in result.detail
    assert "not reconciled: api_calls" in result.detail


def test_finds_an_email_the_listing_never_returned(store: Store, build: StoreBuilder) -> None:
    world(build, unlisted=(GAP,))
    result = check(store, "PC-001")
    assert result.status == "fail"
    assert findings(result) == {("day", "2026-08-05", "open"), ("email", GAP, "open")}
    day = next(f for f in result.findings if f.target_type == "day")
    assert "usage emails_sent counts 6, harvested 5" in day.reason
    assert "webhook message.sent counts 6, harvested 5" in day.reason
    email = next(f for f in result.findings if f.target_type == "email")
    assert "au_" + GAP in email.reason and "no mailbox listing returned it" in email.reason


@pytest.mark.parametrize(
    ("sent_type", "hook_type"),
    [("sent", "email.sent"), ("OutboundEmails", "EmailSent"), ("email.sent", "message.sent")],
)
def test_event_type_spellings_are_inferred_not_assumed(
    store: Store, build: StoreBuilder, sent_type: str, hook_type: str
) -> None:
    world(build, sent_type=sent_type, hook_type=hook_type)
    assert check(store, "PC-001").status == "pass"


@pytest.mark.parametrize(("sent_type", "hook_type"), [("sent", "EmailSent")])
def test_other_spellings_find_the_same_gap(
    store: Store, build: StoreBuilder, sent_type: str, hook_type: str
) -> None:
    world(build, sent_type=sent_type, hook_type=hook_type, unlisted=(GAP,))
    result = check(store, "PC-001")
    assert findings(result) == {("day", "2026-08-05", "open"), ("email", GAP, "open")}
    assert f"usage {sent_type} counts 6, harvested 5" in result.findings[0].reason


def test_a_quarantined_record_is_an_explained_difference(store: Store, build: StoreBuilder) -> None:
    world(build, unlisted=(GAP,))
    # The harvest saw the email but refused it as bad input, and counted it.
    store.quarantine(
        "run_test",
        "multimail",
        f"/v1/mailboxes/mbx_1/emails/{GAP}",
        "to is int, not a string or list of strings",
        json.dumps({"id": GAP, "received_at": "2026-08-05T10:00:00Z", "to": 7}),
        GAP,
    )
    result = check(store, "PC-001")
    assert result.status == "pass" and not result.findings, findings(result)


def test_a_quarantined_record_of_another_day_explains_nothing(
    store: Store, build: StoreBuilder
) -> None:
    world(build, unlisted=(GAP,))
    store.quarantine(
        "run_test",
        "multimail",
        "/v1/mailboxes/mbx_1/emails/em_other",
        "bad record",
        json.dumps({"id": "em_other", "received_at": "2026-08-09T10:00:00Z"}),
        "em_other",
    )
    assert ("day", "2026-08-05", "open") in findings(check(store, "PC-001"))


@pytest.mark.parametrize("status", [403, 404])
def test_not_applicable_when_the_sources_refuse(
    store: Store, build: StoreBuilder, status: int
) -> None:
    world(build, hooks=False)
    reason = FORBIDDEN if status == 403 else "MultiMail answered HTTP 404 for /v1/usage: Not found"
    build.coverage("usage_daily", http_status=status, reason=reason)
    build.coverage(
        "webhook_deliveries",
        http_status=status,
        reason=reason.replace("usage", "webhook-deliveries"),
    )
    result = check(store, "PC-001")
    assert result.status == "not_applicable"
    assert reason in result.detail and "webhook-deliveries" in result.detail


def test_one_source_refused_still_reconciles_the_others(store: Store, build: StoreBuilder) -> None:
    world(build, unlisted=(GAP,))
    build.coverage("usage_daily", http_status=403, reason=FORBIDDEN)
    result = check(store, "PC-001")
    # Webhook counts alone put the day up for review; the audit log names the email.
    assert findings(result) == {("day", "2026-08-05", "review"), ("email", GAP, "open")}
    assert result.status == "fail"
    assert "usage: unavailable" in result.detail and FORBIDDEN in result.detail


def test_inconclusive_when_no_usage_event_type_maps_to_sent_mail(
    store: Store, build: StoreBuilder
) -> None:
    world(build, hooks=False)
    store.con.execute(
        f"DELETE FROM {store.base('multimail_usage_daily')} WHERE event_type = 'emails_sent'"
    )
    result = check(store, "PC-001")
    assert result.status == "inconclusive" and not result.findings
    assert "usage event type" in result.detail


def test_a_count_off_on_many_days_is_not_mapped_or_accused(
    store: Store, build: StoreBuilder
) -> None:
    # A usage figure that only resembles sent mail must not be read as sent mail.
    world(build, hooks=False)
    for day, sent in zip(DAYS, SENT_PER_DAY, strict=True):
        build.usage(day, "emails_sent", sent + (day.day % 3))
    result = check(store, "PC-001")
    assert result.status == "inconclusive" and not result.findings


def test_a_harvested_email_without_its_send_entry(store: Store, build: StoreBuilder) -> None:
    world(build)
    store.con.execute(
        f"DELETE FROM {store.base('multimail_audit_log')} WHERE resource_id = 'em_0803_1'"
    )
    assert findings(check(store, "PC-001")) == {("email", "em_0803_1", "open")}


def test_a_run_over_chosen_messages_is_not_applicable(store: Store, build: StoreBuilder) -> None:
    world(build, unlisted=(GAP,))
    (result,) = run_controls(
        store,
        Settings(),
        Q3,
        only=["PC-001"],
        now=NOW,
        message_ids=["em_0801_0"],
    )
    assert result.status == "not_applicable" and targets(result) == set()


def test_a_mailbox_never_listed_in_full_makes_it_inconclusive_not_an_accusation(
    store: Store, build: StoreBuilder
) -> None:
    # A --mailbox harvest (or a failed detail read) leaves a mailbox without a complete
    # listing: account-wide counts will differ, and that is no evidence of a gap.
    world(build, unlisted=(GAP,))
    build.mailbox(id="mbx_1", address="support@northwind.example")
    build.mailbox(id="mbx_2", address="outreach@northwind.example")
    store.set_cursor("multimail", "emails_listed:mbx_1:outbound", "2026-08-12T00:00:00", "r1")
    result = check(store, "PC-001")
    assert result.status == "inconclusive" and not result.findings
    assert "outreach@northwind.example has never been listed in full" in result.detail
    store.set_cursor("multimail", "emails_listed:mbx_2:outbound", "2026-08-12T00:00:00", "r1")
    assert findings(check(store, "PC-001")) == {
        ("day", "2026-08-05", "open"),
        ("email", GAP, "open"),
    }
