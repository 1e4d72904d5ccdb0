"""The sample company and its world: Northwind Supply Co., its people, mailboxes' wording,
the quarter's dates and the fixed texts messages are made of."""

from __future__ import annotations

from datetime import UTC, date, datetime

DEFAULT_SEED = 42
DEFAULT_MESSAGES = 3000
MIN_MESSAGES = 50

COMPANY = "Northwind Supply Co."
SLUG = "northwind"
PHYSICAL_ADDRESS = "Northwind Supply Co., 1200 Harbor Blvd, Suite 400, Oakland, CA 94607"
DOMAIN = "northwind.example"
DEALS_DOMAIN = "northwind-deals.example"
INTERCOM_APP_ID = "nw4x8q2c"
# One compliant support follow-up's conversation lives in the company's EU workspace: the
# first approved regular support message from this one on. High enough that the 400-message
# test quarter has none (its harvest configures only the default workspace).
INTERCOM_EU_APP_ID = "nw7e5u1k"
EU_SUPPORT_MESSAGE_FROM = 1000
UNSUBSCRIBE_URL = "https://northwind.example/unsubscribe?u="

PERIOD_START = datetime(2026, 7, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 10, 1, tzinfo=UTC)  # exclusive
FIRST_DAY = date(2026, 6, 27)  # a few days of June and October test period boundaries
LAST_DAY = date(2026, 10, 3)
OUTREACH_MONITORED_AT = datetime(2026, 8, 15, 9, 30, tzinfo=UTC)
# Regular pending mail is younger than this at period end (pending_limit_hours = 72).
PENDING_WINDOW_START = datetime(2026, 9, 28, 6, 0, tzinfo=UTC)
SCHEDULED_WINDOW_START = datetime(2026, 9, 29, tzinfo=UTC)
# Approvals take at most this long, so every event exists before the data "snapshot".
MAX_DECISION_MINUTES = 36 * 60
SNAPSHOT_AT = datetime(2026, 10, 6, 8, 0, tzinfo=UTC)

REVIEWERS = (
    ("Priya Raman", "priya.raman@northwind.example"),
    ("Daniel Okafor", "daniel.okafor@northwind.example"),
    ("Sofia Lindqvist", "sofia.lindqvist@northwind.example"),
    ("Tomás Becker", "tomas.becker@northwind.example"),
)
NOT_A_REVIEWER = "intern@northwind.example"
MODE_CHANGED_BY = "ops@northwind.example"

FIRST_NAMES = (
    "Dana",
    "Luis",
    "Amara",
    "Kenji",
    "Chloé",
    "Ravi",
    "Marta",
    "Owen",
    "Ines",
    "Tariq",
    "Hannah",
    "Mateo",
    "Yuki",
    "Grace",
    "Pavel",
    "Zoe",
    "Emeka",
    "Lena",
    "Samir",
    "Ava",
)
LAST_NAMES = (
    "Ortiz",
    "Nguyen",
    "Schmidt",
    "Adeyemi",
    "Kowalski",
    "Haddad",
    "Silva",
    "Murphy",
    "Tanaka",
    "Rossi",
    "Johansson",
    "Patel",
    "Dubois",
    "Okoro",
    "García",
    "Novak",
)
CUSTOMER_DOMAINS = ("example.com", "example.net", "example.org")

APPROVAL_REASONS = (
    "Order details match the Intercom conversation.",
    "Accurate and on-brand.",
    "Checked the tracking number against the carrier.",
    "Refund amount confirmed with billing.",
    "Fine to send.",
    "Offer terms checked against the campaign brief.",
)
REJECTION_REASONS = (
    "Promises a delivery date we cannot guarantee.",
    "Quotes the wrong refund amount.",
    "Tone is too pushy for this customer.",
    "Mentions another customer's order.",
)
CAMPAIGNS = (
    (
        "autumn-shelving",
        "Autumn catalog: 15% off warehouse shelving",
        "Our autumn catalog is out. Until the end of the month, warehouse shelving is 15% off "
        "with code SHELF15 at checkout.",
    ),
    (
        "packaging-sale",
        "Bulk packaging sale ends Friday",
        "Stock up before peak season: bulk cartons and mailers are discounted through Friday.",
    ),
    (
        "loyalty-2026",
        "An exclusive offer for long-time customers",
        "As a thank-you for ordering with us, here is an exclusive offer: free freight on your "
        "next pallet order.",
    ),
    (
        "safety-gear",
        "New safety gear range, launch prices inside",
        "Our new range of safety gloves and high-visibility vests is live, with launch prices "
        "for the first two weeks.",
    ),
)

SUPPORT_TOPICS = (
    (
        "Tracking number for order #{order}",
        "Your order #{order} shipped this morning. The tracking number is {tracking}; the carrier "
        "shows delivery within two business days.",
    ),
    (
        "Refund confirmation for order #{order}",
        "As requested, here is the confirmation of your refund for order #{order}. The amount of "
        "${amount} was returned to your original payment method and should appear within 5 days.",
    ),
    (
        "Invoice copy for order #{order}",
        "Attached is a copy of the invoice for order #{order}, as you asked in chat.",
    ),
    (
        "Update on your return request #{case}",
        "We received the items from your return request #{case}. Our warehouse has checked them "
        "and the credit note is on its way.",
    ),
    (
        "Delivery window for order #{order}",
        "Your order #{order} is booked for delivery on the morning slot. The driver will call 30 "
        "minutes before arrival.",
    ),
)
ONBOARDING_STEPS = (
    (
        "Welcome to Northwind Supply, {first}",
        "Welcome aboard. Your account is ready and your team can sign in at northwind.example.",
    ),
    (
        "Setting up your Northwind account",
        "To finish setting up your account, add a delivery address and invite your colleagues.",
    ),
    (
        "Your first order checklist",
        "Before your first order: confirm your billing contact and your loading-dock hours so "
        "deliveries arrive smoothly.",
    ),
)
TEAMMATES = (("5123401", "Priya Raman"), ("5123402", "Daniel Okafor"), ("5123403", "Jo Whitaker"))
FIN_BOT_ID = "8123456"
