"""Primary-purpose classification: mailbox policy, tag rules, content rules, mixed content."""

from __future__ import annotations

import pytest

from auditkit.classify import (
    CLASSIFIER_VERSION,
    Classification,
    ClassificationRules,
    classify_message,
)
from auditkit.config import Settings
from auditkit.errors import ConfigError

RULES = ClassificationRules.from_settings(
    Settings(
        mailboxes={
            "support@northwind.example": {"classification": "transactional"},
            "deals@northwind.example": {"classification": "commercial"},
            "agent@northwind.example": {"classification": "auto"},
        },
        classification={
            "commercial_categories": ["promotion", "upsell"],
            "transactional_categories": ["support"],
        },
    )
)


@pytest.mark.parametrize(
    ("mailbox", "subject", "body", "tags", "label", "reason_fragment"),
    [
        (
            "deals@northwind.example",
            "Hello",
            "Just checking in.",
            None,
            "commercial",
            "mailbox policy: commercial",
        ),
        (
            "support@northwind.example",
            "Your refund",
            "Your refund for order #123 was processed.",
            None,
            "transactional",
            "no commercial signals",
        ),
        (
            "support@northwind.example",
            "Your refund",
            "Your refund was processed. Get 20% off Pro with code SAVE20!",
            None,
            "mixed",
            'discount code: "code SAVE20"',
        ),
        (
            "support@northwind.example",
            "Your ticket",
            "Your ticket is closed.",
            '{"category": "promotion"}',
            "mixed",
            "tag category promotion is a commercial category",
        ),
        (
            "agent@northwind.example",
            "New plans",
            "See https://northwind.example/pricing for the new tiers.",
            None,
            "commercial",
            "pricing/checkout link: https://northwind.example/pricing",
        ),
        (
            "agent@northwind.example",
            "Summer",
            "Limited time: 30% off everything.",
            None,
            "commercial",
            'promotional vocabulary: "Limited time"',
        ),
        (
            "agent@northwind.example",
            "Update",
            "Anything else?",
            '{"category": "upsell"}',
            "commercial",
            "tag category upsell",
        ),
        (
            "agent@northwind.example",
            "Your order",
            "Your order shipped.",
            None,
            "transactional",
            "no commercial signals",
        ),
        (
            "agent@northwind.example",
            "Your verification code",
            "Your code: 123456",
            None,
            "transactional",
            "no commercial signals",
        ),
        # Promotion with transactional content is deemed commercial by 16 CFR 316.3(a)(2):
        # (ii) when the transactional part does not open the body, (i) when the subject
        # line reads as commercial; a fake "Re: your order" subject alone is (ii).
        (
            "agent@northwind.example",
            "20% off today",
            "Big savings! " + "x" * 320 + " Your order #55 shipped.",
            None,
            "commercial",
            "not at the beginning of the body",
        ),
        (
            "agent@northwind.example",
            "20% off today",
            "Your order #55 shipped. Also 20% off today.",
            None,
            "commercial",
            "commercial content in the subject line",
        ),
        (
            "agent@northwind.example",
            "Re: your order #4411",
            "Our autumn catalog is out: shelving is 15% off with code SHELF15.",
            None,
            "commercial",
            "not at the beginning of the body",
        ),
        # Transactional content first and a plain subject: a human decides.
        (
            "agent@northwind.example",
            "Your order #55",
            "Your order #55 shipped. Also 20% off today.",
            None,
            "mixed",
            "promotional vocabulary",
        ),
        # Unconfigured mailbox falls back to the default policy (auto).
        (
            "other@northwind.example",
            "Hi",
            "Use promo code WELCOME10 at checkout.",
            None,
            "commercial",
            "mailbox policy: auto",
        ),
    ],
)
def test_classification(
    mailbox: str, subject: str, body: str, tags: str | None, label: str, reason_fragment: str
) -> None:
    result = classify_message(
        RULES, subject=subject, body_markdown=body, tags=tags, mailbox_address=mailbox
    )
    assert result.label == label
    assert any(reason_fragment in r for r in result.reasons), result.reasons


def test_transactional_tag_with_promotion_in_auto_mailbox_is_mixed() -> None:
    result = classify_message(
        RULES,
        subject="Hi",
        body_markdown="Thanks! Also: buy now and save $20.",
        tags='{"category": "support"}',
        mailbox_address="agent@northwind.example",
    )
    assert result.label == "mixed"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (
            Settings(mailboxes={"a@x.example": {"classification": "promo"}}),
            'mailboxes."a@x.example".classification',
        ),
        (
            Settings(classification={"commercial_categories": "promotion"}),
            "classification.commercial_categories",
        ),
        (
            Settings(classification={"commercial_categories": [""]}),
            "classification.commercial_categories",
        ),
        (Settings(classification={"default_policy": "spam"}), "classification.default_policy"),
        (Settings(mailboxes={"a@x.example": "commercial"}), 'mailboxes."a@x.example"'),
    ],
)
def test_invalid_classification_config_names_the_key(settings: Settings, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ClassificationRules.from_settings(settings)


# --- cls-v2: declared types, re-engagement wording, opt-out links --------------------------
AUTO = "agent@northwind.example"
DEFAULTS = ClassificationRules.from_settings(Settings())


def test_classifier_version_is_cls_v2() -> None:
    assert CLASSIFIER_VERSION == "cls-v2"


@pytest.mark.parametrize(
    ("tags", "metadata", "body", "label", "reason_fragment"),
    [
        # The sender's own label beats the content rules, in tags or metadata, any key.
        (
            None,
            '{"type": "marketing"}',
            "Just checking in.",
            "commercial",
            "metadata.type marketing declares commercial mail",
        ),
        (
            '{"email_type": "Newsletter"}',
            None,
            "Here is what happened this month.",
            "commercial",
            "tags.email_type newsletter declares commercial mail",
        ),
        (
            '{"kind": "advertising"}',
            None,
            "Your order #12 shipped last week.",
            "commercial",
            "tags.kind advertising declares commercial mail",
        ),
        (
            None,
            '{"message_type": "receipt"}',
            "Thanks for your payment of $40.",
            "transactional",
            "metadata.message_type receipt declares transactional mail",
        ),
        (
            '{"classification": "Support follow-up"}',
            None,
            "Did that fix it?",
            "transactional",
            "tags.classification support follow-up declares transactional mail",
        ),
        (
            None,
            '{"category": "SUPPORT_FOLLOWUP"}',
            "Did that fix it?",
            "transactional",
            "declares transactional mail",
        ),
        (
            '{"type": "onboarding"}',
            None,
            "Welcome aboard! Here is how to set up your team.",
            "transactional",
            "tags.type onboarding declares transactional mail",
        ),
        # Promotion inside declared-transactional mail still needs the 316.3 reading.
        (
            None,
            '{"type": "receipt"}',
            "Thanks for your order. Use code SAVE20 for 20% off.",
            "mixed",
            'discount code: "code SAVE20"',
        ),
        (
            '{"type": "notification"}',
            None,
            "We miss you! Your account is still here.",
            "mixed",
            "re-engagement wording",
        ),
        # Two declared types that disagree: a human decides.
        (
            '{"type": "marketing"}',
            '{"type": "receipt"}',
            "Hello.",
            "mixed",
            "tags.type marketing declares commercial mail",
        ),
        # A value outside both vocabularies says nothing.
        (
            '{"type": "reply", "kind": 7}',
            None,
            "Anything else?",
            "transactional",
            "no commercial signals",
        ),
    ],
)
def test_declared_type(
    tags: str | None, metadata: str | None, body: str, label: str, reason_fragment: str
) -> None:
    result = classify_message(
        RULES,
        subject="Hello",
        body_markdown=body,
        tags=tags,
        metadata=metadata,
        mailbox_address=AUTO,
    )
    assert result.label == label, result.reasons
    assert any(reason_fragment in r for r in result.reasons), result.reasons


def test_configured_categories_beat_declared_types() -> None:
    # "support" is configured transactional in RULES; the built-in "marketing" is ignored.
    result = classify_message(
        RULES,
        subject="Hi",
        body_markdown="Did that fix it?",
        tags='{"category": "support"}',
        metadata='{"type": "marketing"}',
        mailbox_address=AUTO,
    )
    assert result.label == "transactional"
    assert "tag category support is a transactional category" in result.reasons
    assert not any("marketing" in r for r in result.reasons)
    # Configured categories match across keys and spellings too.
    upsell = classify_message(
        RULES,
        subject="Hi",
        body_markdown="Your order #4 shipped.",
        metadata='{"message_type": "Up-Sell"}',
        mailbox_address=AUTO,
    )
    assert upsell.label == "commercial"
    assert "metadata.message_type up-sell is a commercial category" in upsell.reasons


def test_mailbox_policy_beats_declared_types() -> None:
    commercial = classify_message(
        RULES,
        subject="Hi",
        body_markdown="Your receipt.",
        metadata='{"type": "receipt"}',
        mailbox_address="deals@northwind.example",
    )
    assert commercial.label == "commercial"
    mixed = classify_message(
        RULES,
        subject="Hi",
        body_markdown="Your refund is done.",
        metadata='{"type": "newsletter"}',
        mailbox_address="support@northwind.example",
    )
    assert mixed.label == "mixed"
    assert "metadata.type newsletter declares commercial mail" in mixed.reasons


@pytest.mark.parametrize(
    ("subject", "body", "label"),
    [
        ("We miss you", "It has been quiet. Here is what is new at Northwind.", "commercial"),
        ("Hello again", "It's been a while! Come back and see our new range.", "commercial"),
        ("Hello again", "We haven't seen you in a few months - everything OK?", "commercial"),
        ("Hi Sam", "We'd love to have you back. Your cart is waiting.", "commercial"),
        ("Ready to return?", "Come back? We saved your spot.", "commercial"),
        ("Hi", "It's been a while since you last visited us.", "commercial"),
        ("Hi", "We want to win you back with something special.", "commercial"),
        # "your account" is a transactional marker: at most mixed.
        ("Hi", "Reactivate your account today and pick up where you left off.", "mixed"),
        # Support wording that shares words with win-back mail.
        ("Your ticket", "I'll come back to you tomorrow with an update.", "transactional"),
        (
            "Your ticket",
            "It's been a while since we heard from you - is this solved?",
            "transactional",
        ),
        ("Your ticket", "It's been a while, so I'm checking in on your ticket.", "transactional"),
        ("Hi", "Please come back to us if the problem returns.", "transactional"),
        ("Hi", "We haven't seen your reply yet.", "transactional"),
    ],
)
def test_reengagement_wording(subject: str, body: str, label: str) -> None:
    result = classify_message(DEFAULTS, subject=subject, body_markdown=body, mailbox_address=AUTO)
    assert result.label == label, result.reasons
    if label != "transactional":
        assert any(r.startswith("re-engagement wording") for r in result.reasons)


@pytest.mark.parametrize(
    ("body", "label", "reason_fragment"),
    [
        # Transactional content first: the opt-out footer does not change the purpose.
        (
            "Your order #12 has shipped.\n\n[Unsubscribe](https://northwind.example/u/1)",
            "transactional",
            "opt-out link alone, and the body opens with transactional content",
        ),
        (
            "Your invoice INV-7 is attached.\nManage your email preferences: "
            "https://northwind.example/p/8f3a",
            "transactional",
            "opt-out link",
        ),
        # No transactional content: list mail of unclear purpose, a human reads it.
        (
            "Here's what's new at Northwind this month.\nUnsubscribe: https://x.example/p/1",
            "mixed",
            "a human decides the primary purpose",
        ),
        (
            "Thanks for chatting with us today!\n[Manage preferences](https://x.example/m/2)",
            "mixed",
            "opt-out link (a list-mail signal",
        ),
        # With promotion the opt-out link adds nothing: the promotion decides.
        (
            "20% off this week. [Unsubscribe](https://x.example/u/3)",
            "commercial",
            "promotional vocabulary",
        ),
        # Not an opt-out link: negated wording, a bare URL.
        ("We will never unsubscribe you without asking.", "transactional", "no commercial signals"),
        (
            "Thanks for reaching out! The guide is at https://x.example/p/8f3a.",
            "transactional",
            "no commercial signals",
        ),
    ],
)
def test_opt_out_link_is_at_most_mixed(body: str, label: str, reason_fragment: str) -> None:
    result = classify_message(DEFAULTS, subject="Hello", body_markdown=body, mailbox_address=AUTO)
    assert result.label == label, result.reasons
    assert any(reason_fragment in r for r in result.reasons), result.reasons


def test_opt_out_link_in_transactional_mailbox_stays_transactional() -> None:
    result = classify_message(
        RULES,
        subject="Your refund",
        body_markdown="Thanks for writing in. [Unsubscribe](https://x.example/u/1)",
        mailbox_address="support@northwind.example",
    )
    assert result.label == "transactional"


def test_plain_support_reply_stays_transactional() -> None:
    result = classify_message(
        DEFAULTS,
        subject="Re: login trouble",
        body_markdown="Hi Sam, I reset the setting on our side; please try again and reply "
        "to this email if it still fails.",
        mailbox_address=AUTO,
    )
    assert result == Classification(
        "transactional", ("mailbox policy: auto", "no commercial signals")
    )
