"""CS-001..CS-005 on hand-built stores, including mixed → review and transactional → n/a."""

from __future__ import annotations

import pytest

from auditkit.config import Settings
from auditkit.errors import ConfigError
from auditkit.controls.canspam import parse_postal_address
from auditkit.store import Store
from tests.controls.conftest import StoreBuilder, check, targets, ts

ADDRESS = "1200 Harbor Blvd., Suite 400\nOakland, CA 94607"
OPT_OUT = "[Unsubscribe](https://northwind.example/unsubscribe?u=1)"
PROMO = {"category": "promotion"}
SETTINGS = Settings(
    mailboxes={
        "deals@northwind.example": {"classification": "commercial", "appends_postal_address": True},
        "support@northwind.example": {"classification": "transactional"},
    }
)


def _commercial(build: StoreBuilder, id: str, body: str, **kw: object) -> None:
    build.email(id, **{"subject": "Summer sale", "body_markdown": body, "tags": PROMO, **kw})


# --- CS-001 ------------------------------------------------------------------------------
def test_parse_postal_address() -> None:
    parsed = parse_postal_address(
        "Northwind Supply Co., 1200 Harbor Boulevard, Suite 400, Oakland, CA 94607"
    )
    assert parsed is not None
    assert (parsed.street, parsed.city, parsed.state, parsed.zip) == (
        "1200 harbor blvd",
        "oakland",
        "ca",
        "94607",
    )
    box = parse_postal_address("PO Box 77, Springfield, IL 62701-1234")
    assert box is not None and box.street == "po box 77" and box.zip == "62701"
    assert parse_postal_address("") is None and parse_postal_address("somewhere nice") is None


def test_cs_001_postal_address(store: Store, build: StoreBuilder) -> None:
    build.account()
    build.mailbox(address="agent@northwind.example")  # no policy: auto
    build.mailbox(id="mbx_support", address="support@northwind.example")
    build.mailbox(id="mbx_deals", address="deals@northwind.example")
    _commercial(build, "full", f"20% off!\n\n{ADDRESS}\n{OPT_OUT}")
    _commercial(build, "none", f"20% off! {OPT_OUT}")
    _commercial(build, "partial", f"20% off! Visit us in Oakland, CA 94607. {OPT_OUT}")
    _commercial(build, "other", f"20% off! 9 Elm St, Reno, NV 89501 {OPT_OUT}")
    _commercial(
        build,
        "appended",
        "20% off!",
        mailbox_id="mbx_deals",
        from_address="deals@northwind.example",
    )
    build.email("transactional", body_markdown="Your order shipped.")  # out of scope
    # Promotion inside a transactional mailbox: mixed → review, never a silent pass.
    build.email(
        "mixed",
        body_markdown="Your refund is done. Also 20% off Pro with code SAVE20.",
        mailbox_id="mbx_support",
    )
    result = check(store, "CS-001", settings=SETTINGS)
    assert result.status == "fail"
    assert targets(result, "open") == {"none"}
    assert targets(result, "review") == {"partial", "other", "mixed"}
    assert result.checked == 6
    partial = next(f for f in result.findings if f.target_id == "partial")
    assert partial.evidence["components_missing"] == ["street"]
    mixed = next(f for f in result.findings if f.target_id == "mixed")
    assert "Mixed" in mixed.reason and mixed.evidence["classification"] == "mixed"


def test_cs_001_signature_block_counts(store: Store, build: StoreBuilder) -> None:
    build.account()
    build.mailbox(signature_block=f"Northwind Supply Co.\n{ADDRESS}")
    _commercial(build, "e1", "20% off!")
    assert check(store, "CS-001").status == "pass"


def test_cs_001_account_without_address_fails_every_commercial_message(
    store: Store, build: StoreBuilder
) -> None:
    build.account(physical_address=None)
    _commercial(build, "e1", f"20% off! {ADDRESS}")
    result = check(store, "CS-001")
    assert targets(result, "open") == {"e1"}
    assert "no parseable physical_address" in result.findings[0].reason


@pytest.mark.parametrize("control_id", ["CS-001", "CS-002", "CS-003"])
def test_cs_content_controls_not_applicable_to_transactional_mail(
    store: Store, build: StoreBuilder, control_id: str
) -> None:
    build.account()
    build.email("t1", subject="Re: your order", body_markdown="Your order #12 shipped.")
    result = check(store, control_id)
    assert result.status == "not_applicable"
    assert "transactional" in result.detail


# --- CS-002 ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "has_opt_out"),
    [
        (f"20% off! {OPT_OUT}", True),
        ("20% off! Manage: https://northwind.example/email-preferences", True),
        ("20% off! Reply STOP to stop these emails.", True),
        ("20% off! Reply with 'unsubscribe' and we will remove you.", True),
        ("20% off! Just reply if you have questions.", False),
        ("20% off! Visit https://northwind.example/deals", False),
    ],
)
def test_cs_002_opt_out(store: Store, build: StoreBuilder, body: str, has_opt_out: bool) -> None:
    _commercial(build, "e1", body)
    result = check(store, "CS-002")
    assert result.status == ("pass" if has_opt_out else "fail")
    assert targets(result, "open") == (set() if has_opt_out else {"e1"})


def test_cs_002_mixed_is_review(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    build.email("mixed", body_markdown="Your refund is done. Also 20% off Pro.")
    result = check(store, "CS-002", settings=SETTINGS)
    assert targets(result, "review") == {"mixed"}
    assert result.status == "fail"


# --- CS-003 ------------------------------------------------------------------------------
def test_cs_003_opt_out_deadline_in_business_days(store: Store, build: StoreBuilder) -> None:
    # Suppressed Wed 1 July 2026; 3 July is the observed Independence Day → deadline Thu 16 July.
    build.suppression("s1", "Opted.Out@Example.com", ts("2026-07-01 09:00"))
    _commercial(
        build,
        "on_deadline",
        OPT_OUT,
        to_addresses=["opted.out@example.com"],
        created_at=ts("2026-07-16 08:00"),
        delivered_at=ts("2026-07-16 09:00"),
    )
    _commercial(
        build,
        "day_after",
        OPT_OUT,
        to_addresses=["Opted Out <OPTED.OUT@example.com>"],
        created_at=ts("2026-07-17 08:00"),
        delivered_at=ts("2026-07-17 09:00"),
    )
    # Never delivered: falls back to created_at.
    _commercial(
        build,
        "cc_late",
        OPT_OUT,
        to_addresses=["x@example.com"],
        cc_addresses=["opted.out@example.com"],
        created_at=ts("2026-08-20 08:00"),
        delivered_at=None,
    )
    _commercial(
        build,
        "other_recipient",
        OPT_OUT,
        to_addresses=["fine@example.com"],
        created_at=ts("2026-08-20 08:00"),
    )
    build.email(
        "transactional_late",
        to_addresses=["opted.out@example.com"],
        created_at=ts("2026-08-20 08:00"),
    )
    result = check(store, "CS-003")
    assert result.status == "fail"
    assert targets(result) == {"day_after", "cc_late"}
    late = next(f for f in result.findings if f.target_id == "day_after")
    assert late.evidence["deadline"] == "2026-07-16"
    assert late.evidence["suppression_id"] == "s1"
    assert "1 send(s)" in result.detail


def test_cs_003_bounces_are_not_opt_outs(store: Store, build: StoreBuilder) -> None:
    # A hard bounce suppresses the address but is no request to stop: a later send is only
    # counted in the detail. An unsubscribe after a bounce starts the 10 days from itself.
    build.suppression("b1", "gone@example.com", ts("2026-07-01 09:00"), reason="hard_bounce")
    build.suppression("b2", "back@example.com", ts("2026-07-01 09:00"), reason="Soft-Bounce")
    build.suppression("u2", "back@example.com", ts("2026-08-03 09:00"), reason="unsubscribe")
    build.suppression("c1", "angry@example.com", ts("2026-07-01 09:00"), reason="spam_complaint")
    build.suppression("x1", "odd@example.com", ts("2026-07-01 09:00"), reason=None)
    for email_id, to in [
        ("to_bounced", "gone@example.com"),
        ("to_back_before_unsubscribe", "back@example.com"),
        ("to_complainer", "angry@example.com"),
        ("to_unknown_reason", "odd@example.com"),
    ]:
        _commercial(
            build,
            email_id,
            OPT_OUT,
            to_addresses=[to],
            created_at=ts("2026-07-29 08:00"),
            delivered_at=ts("2026-07-29 08:05"),
        )
    _commercial(
        build,
        "to_back_late",
        OPT_OUT,
        to_addresses=["back@example.com"],
        created_at=ts("2026-08-25 08:00"),
        delivered_at=ts("2026-08-25 08:05"),
    )
    result = check(store, "CS-003")
    assert targets(result) == {"to_complainer", "to_unknown_reason", "to_back_late"}
    late = next(f for f in result.findings if f.target_id == "to_back_late")
    assert late.evidence["suppression_id"] == "u2"
    assert "1 send(s) to addresses suppressed only for a delivery failure" in result.detail

    # The reasons that mean a delivery failure are a setting.
    strict = Settings(controls={"delivery_failure_reasons": []})
    assert "to_bounced" in targets(check(store, "CS-003", settings=strict))
    with pytest.raises(ConfigError, match="delivery_failure_reasons"):
        check(store, "CS-003", settings=Settings(controls={"delivery_failure_reasons": "bounce"}))


def test_cs_003_pass_without_suppressions(store: Store, build: StoreBuilder) -> None:
    _commercial(build, "e1", OPT_OUT)
    assert check(store, "CS-003").status == "pass"


# --- CS-004 ------------------------------------------------------------------------------
def test_cs_004_reply_subject_without_thread(store: Store, build: StoreBuilder) -> None:
    build.email(
        "inbound",
        direction="inbound",
        thread_id="thr_real",
        created_at=ts("2026-08-01 09:00"),
        subject="Question",
        from_address="customer@example.com",
    )
    _commercial(build, "real_reply", OPT_OUT, subject="Re: Question", thread_id="thr_real")
    _commercial(build, "fake_reply", OPT_OUT, subject="RE: your account", thread_id="thr_new")
    _commercial(build, "fake_fwd", OPT_OUT, subject="Fwd: invoice", thread_id=None)
    _commercial(build, "plain", OPT_OUT, subject="Summer sale")
    result = check(store, "CS-004")
    assert result.status == "fail"
    assert targets(result) == {"fake_reply", "fake_fwd"}


def test_cs_004_applies_to_transactional_mail_too(store: Store, build: StoreBuilder) -> None:
    build.email(
        "support_fake_reply",
        subject="Re: your order #4411",
        body_markdown="Your return was received.",
    )
    result = check(store, "CS-004")
    assert targets(result, "open") == {"support_fake_reply"}


def test_cs_004_pass_and_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("draft", subject="Re: hi", status="pending_send_approval", delivered_at=None)
    assert check(store, "CS-004").status == "not_applicable"
    _commercial(build, "plain", OPT_OUT, subject="Summer sale")
    assert check(store, "CS-004").status == "pass"


# --- CS-005 ------------------------------------------------------------------------------
def test_cs_005_from_domain_verification(store: Store, build: StoreBuilder) -> None:
    build.account()
    build.domain()
    build.domain(id="dom_2", domain="pending.example", status="pending", dkim_verified=False)
    build.domain(id="dom_3", domain="nodkim.example", status="active", dkim_verified=False)
    build.email("ok", from_address="Support <support@northwind.example>")
    build.email("default", from_address="agent@northwind.multimail.dev")
    build.email("pending", from_address="a@pending.example")
    build.email("nodkim", from_address="a@nodkim.example")
    build.email("unknown", from_address="a@elsewhere.example")
    build.email("other_slug", from_address="a@someoneelse.multimail.dev")
    build.email(
        "not_sent", from_address="a@elsewhere.example", status="rejected", delivered_at=None
    )
    result = check(store, "CS-005")
    assert result.status == "fail"
    assert targets(result) == {"pending", "nodkim", "unknown", "other_slug"}
    assert result.checked == 6


def test_cs_005_not_applicable(store: Store, build: StoreBuilder) -> None:
    build.email("draft", status="pending_send_approval", delivered_at=None)
    assert check(store, "CS-005").status == "not_applicable"
