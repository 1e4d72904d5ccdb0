"""Customers and the account's fixed objects: the account, API keys, mailboxes, domains
and webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from auditkit.devtools.sample.base import GeneratorBase, Mailbox, epoch_ms, iso
from auditkit.devtools.sample.world import (
    COMPANY,
    CUSTOMER_DOMAINS,
    DEALS_DOMAIN,
    DOMAIN,
    FIRST_NAMES,
    LAST_NAMES,
    PHYSICAL_ADDRESS,
    SLUG,
)


class People(GeneratorBase):
    """Customers (a pool picked at random, and reserved ones no random mail goes to) and the
    account objects the API serves as they are."""

    # -- customers ---------------------------------------------------------------------
    def _customer(self, index: int) -> tuple[str, str]:
        """(first name, address) of customer `index`; the index keeps addresses unique."""
        first = FIRST_NAMES[index % len(FIRST_NAMES)]
        last = LAST_NAMES[(index // len(FIRST_NAMES)) % len(LAST_NAMES)]
        domain = CUSTOMER_DOMAINS[index % len(CUSTOMER_DOMAINS)]
        local = f"{first}.{last}{index}".lower()
        for plain, accented in (("e", "é"), ("a", "á"), ("c", "ç")):
            local = local.replace(accented, plain)
        return first, f"{local}@{domain}"

    def _random_customer(self) -> tuple[str, str]:
        return self._customer(self.rng.randrange(self.pool_size))

    def _reserved_customer(self) -> tuple[str, str]:
        """A customer no random message ever goes to (suppressed, bounced or planted)."""
        self.reserved_seq += 1
        return self._customer(self.reserved_seq)

    # -- fixed account objects -----------------------------------------------------------
    def _build_account_objects(self) -> None:
        rng, ids = self.rng, self.ids
        self.account = {
            "id": ids.new(datetime(2026, 2, 3, 17, 4, tzinfo=UTC)),
            "name": COMPANY,
            "slug": SLUG,
            "plan": "pro",
            "oversight_email": f"oversight@{DOMAIN}",
            "physical_address": PHYSICAL_ADDRESS,
            "monthly_email_quota": 50000,
            "emails_sent_this_month": 0,
            "max_mailboxes": 25,
            "storage_used_bytes": 0,
            "max_storage_bytes": 5 * 1024**3,
            "is_active": True,
            "sending_disabled": False,
            "sending_disabled_reason": None,
        }
        key_specs = [
            (
                "fin",
                "Intercom Fin follow-ups",
                ["read", "send"],
                datetime(2026, 3, 2, 10, 15, tzinfo=UTC),
            ),
            (
                "onboarding",
                "Onboarding bot",
                ["read", "send"],
                datetime(2026, 3, 2, 10, 21, tzinfo=UTC),
            ),
            ("outreach", "Outreach bot", ["read", "send"], datetime(2026, 4, 14, 9, 2, tzinfo=UTC)),
            (
                "oversight",
                "Reviewers' oversight console",
                ["read", "oversight"],
                datetime(2026, 3, 2, 11, 40, tzinfo=UTC),
            ),
            (
                "harvester",
                "auditkit harvester",
                ["read", "admin"],
                datetime(2026, 6, 20, 8, 0, tzinfo=UTC),
            ),
            (
                "legacy",
                "Legacy ops key",
                ["read", "send", "oversight"],
                datetime(2026, 2, 10, 16, 45, tzinfo=UTC),
            ),
        ]
        self.keys: dict[str, dict[str, Any]] = {}
        for short, name, scopes, created in key_specs:
            self.keys[short] = {
                "id": ids.new(created),
                "name": name,
                "prefix": f"mm_live_{rng.getrandbits(16):04x}",
                "scopes": scopes,
                "created_at": iso(created),
                "last_used_at": None,
                "is_active": True,
            }
        mailbox_specs = [
            (
                "support",
                f"support@{DOMAIN}",
                "Northwind Support (Fin)",
                "fin",
                "support_followup",
                "fin",
                datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
            ),
            (
                "onboarding",
                f"onboarding@{DOMAIN}",
                "Northwind Onboarding",
                "onboarding-bot",
                "onboarding",
                "onboarding",
                datetime(2026, 3, 2, 10, 35, tzinfo=UTC),
            ),
            (
                "outreach",
                f"outreach@{DOMAIN}",
                "Northwind Supply",
                "outreach-bot",
                "promotion",
                "outreach",
                datetime(2026, 4, 14, 9, 10, tzinfo=UTC),
            ),
            (
                "deals",
                f"deals@{DEALS_DOMAIN}",
                "Northwind Deals",
                "outreach-bot",
                "promotion",
                "outreach",
                datetime(2026, 5, 6, 13, 0, tzinfo=UTC),
            ),
        ]
        self.mailboxes: dict[str, Mailbox] = {}
        self.mailbox_records: list[dict[str, Any]] = []
        modes = {
            "support": "gated_send",
            "onboarding": "gated_send",
            "outreach": "monitored",
            "deals": "autonomous",
        }
        for short, address, display, agent, category, key, created in mailbox_specs:
            mailbox_id = ids.new(created)
            self.mailboxes[short] = Mailbox(
                short, mailbox_id, address, display, agent, category, self.keys[key]["id"]
            )
            self.mailbox_records.append(
                {
                    "id": mailbox_id,
                    "tenant_id": self.account["id"],
                    "address": address,
                    "display_name": display,
                    "oversight_mode": modes[short],
                    "auto_cc": None,
                    "auto_bcc": f"oversight@{DOMAIN}" if modes[short] == "monitored" else None,
                    "forward_inbound": 0,
                    "webhook_url": None,
                    "oversight_webhook_url": None,
                    # No postal address here: CAN-SPAM checks read body + signature, and
                    # the planted CS-001 message must lack the address in both.
                    "signature_block": f"— {display}" if short != "deals" else None,
                    "default_gate_timing": "gate_first",
                    "created_at": epoch_ms(created),
                    "is_active": 1,
                }
            )
        self.domains = [
            {
                "id": ids.new(datetime(2026, 2, 4, 9, 0, tzinfo=UTC)),
                "domain": DOMAIN,
                "status": "active",
                "dkim_verified": True,
                "spf_verified": True,
                "mx_verified": True,
                "return_path_verified": True,
                "dns_records": {"dkim": {"type": "TXT", "name": f"mm1._domainkey.{DOMAIN}"}},
                "created_at": iso(datetime(2026, 2, 4, 9, 0, tzinfo=UTC)),
                "verified_at": iso(datetime(2026, 2, 4, 9, 41, tzinfo=UTC)),
            },
            {
                "id": ids.new(datetime(2026, 5, 6, 12, 40, tzinfo=UTC)),
                "domain": DEALS_DOMAIN,
                "status": "pending",
                "dkim_verified": False,
                "spf_verified": False,
                "mx_verified": False,
                "return_path_verified": False,
                "dns_records": {"dkim": {"type": "TXT", "name": f"mm1._domainkey.{DEALS_DOMAIN}"}},
                "created_at": iso(datetime(2026, 5, 6, 12, 40, tzinfo=UTC)),
                "verified_at": None,
            },
        ]
        self.webhooks = [
            {
                "id": ids.new(datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
                "url": "https://hooks.northwind.example/multimail/events",
                "events": [
                    "message.sent",
                    "message.delivered",
                    "message.bounced",
                    "message.complained",
                ],
                "mailbox_id": None,
                "created_at": iso(datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),
            },
            {
                "id": ids.new(datetime(2026, 3, 3, 8, 5, tzinfo=UTC)),
                "url": "https://hooks.northwind.example/multimail/oversight",
                "events": ["oversight.pending", "oversight.approved", "oversight.rejected"],
                "mailbox_id": self.mailboxes["support"].id,
                "created_at": iso(datetime(2026, 3, 3, 8, 5, tzinfo=UTC)),
            },
        ]
