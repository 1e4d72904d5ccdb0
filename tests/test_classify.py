"""Primary-purpose classification: mailbox policy, tag rules, content rules, mixed content."""

from __future__ import annotations

import pytest

from auditkit.classify import ClassificationRules, classify_message
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
        # Mixed content where the promotion leads: 316.3(a)(2)(ii) reason recorded.
        (
            "agent@northwind.example",
            "20% off today",
            "Big savings! " + "x" * 320 + " Your order #55 shipped.",
            None,
            "mixed",
            "not at the beginning of the body",
        ),
        (
            "agent@northwind.example",
            "20% off today",
            "Your order #55 shipped. Also 20% off today.",
            None,
            "mixed",
            "commercial content in the subject line",
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
