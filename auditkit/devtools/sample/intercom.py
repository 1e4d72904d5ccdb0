"""Intercom: the conversations support and onboarding mail links, and each workspace's
`GET /me` body."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from auditkit.devtools.sample.audit import AuditTrail
from auditkit.devtools.sample.base import dumps
from auditkit.devtools.sample.world import (
    COMPANY,
    DOMAIN,
    FIN_BOT_ID,
    INTERCOM_APP_ID,
    INTERCOM_EU_APP_ID,
    TEAMMATES,
)


class Conversations(AuditTrail):
    """Intercom conversations, written as each linked message is made."""

    def _conversation_id(self) -> str:
        self.conversation_seq += 1
        return str(215470000000000 + self.conversation_seq * 1000 + self.rng.randrange(1000))

    def _conversation(
        self,
        conversation_id: str,
        email_id: str,
        first: str,
        address: str,
        opened: datetime,
        topic: str,
        *,
        resolved_by_fin: bool,
        delivered_as: str,
        eu: bool = False,
    ) -> None:
        rng = self.rng
        app_id = INTERCOM_EU_APP_ID if eu else INTERCOM_APP_ID
        created = int(opened.timestamp())
        answered = created + rng.randint(20, 300)
        closed = answered + rng.randint(60, 1800)
        contact_id = f"65f1{rng.getrandbits(80):020x}"
        fin = {
            "type": "bot",
            "id": FIN_BOT_ID,
            "name": "Fin",
            "email": f"operator+{app_id}@intercom.io",
        }
        if resolved_by_fin:
            answer_author = {**fin, "from_ai_agent": True, "is_ai_answer": True}
            closer = {**fin, "from_ai_agent": False, "is_ai_answer": False}
            assignee, teammates = 0, []
            ai_agent = {
                "source_type": "workflow",
                "source_title": "Fin – Orders and returns",
                "last_answer_type": "ai_answer",
                "resolution_state": rng.choice(("confirmed_resolution", "assumed_resolution")),
                "rating": rng.choice((4, 5, 5, None)),
            }
        else:
            teammate_id, teammate_name = rng.choice(TEAMMATES)
            answer_author = {
                "type": "admin",
                "id": teammate_id,
                "name": teammate_name,
                "email": f"{teammate_name.split()[0].lower()}@{DOMAIN}",
                "from_ai_agent": False,
                "is_ai_answer": False,
            }
            closer = answer_author
            assignee, teammates = int(teammate_id), [{"type": "admin", "id": teammate_id}]
            ai_agent = {
                "source_type": "workflow",
                "source_title": "Fin – Orders and returns",
                "last_answer_type": "ai_answer",
                "resolution_state": "escalated",
                "rating": None,
            }
        parts = [
            {
                "type": "conversation_part",
                "id": str(45763000000 + self.conversation_seq * 10 + 1),
                "part_type": "comment",
                "body": f"<p>{topic}</p>",
                "created_at": answered,
                "author": answer_author,
            },
            {
                "type": "conversation_part",
                "id": str(45763000000 + self.conversation_seq * 10 + 2),
                "part_type": "close",
                "body": None,
                "created_at": closed,
                "author": {"type": closer["type"], "id": closer["id"], "name": closer["name"]},
            },
        ]
        record = {
            "type": "conversation",
            "id": conversation_id,
            "created_at": created,
            "updated_at": closed,
            "open": False,
            "state": "closed",
            "admin_assignee_id": assignee,
            "team_assignee_id": 0,
            "source": {
                "type": "conversation",
                "id": str(403900000 + self.conversation_seq),
                "delivered_as": delivered_as,
                "subject": "",
                "body": f"<p>Hi, question about {topic[:60].lower()}</p>",
                "author": {"type": "user", "id": contact_id, "name": first, "email": address},
            },
            "contacts": {
                "type": "contact.list",
                "contacts": [
                    {
                        "type": "contact",
                        "id": contact_id,
                        "external_id": f"cust_{self.conversation_seq:05d}",
                    }
                ],
            },
            "teammates": {"type": "admin.list", "teammates": teammates},
            "tags": {
                "type": "tag.list",
                "tags": [{"type": "tag", "id": "9012345", "name": "email-follow-up"}],
            },
            "custom_attributes": {"multimail_email_id": email_id},
            "statistics": {
                "type": "conversation_statistics",
                "last_close_at": closed,
                "last_closed_by_id": closer["id"],
                "count_conversation_parts": len(parts),
            },
            "conversation_parts": {
                "type": "conversation_part.list",
                "total_count": len(parts),
                "conversation_parts": parts,
            },
            "ai_agent_participated": True,
            "ai_agent": ai_agent,
        }
        (self.eu_conversations_fh if eu else self.conversations_fh).write(dumps(record) + "\n")
        self.counters.conversations += 1


def intercom_me(app_id: str, region: str) -> dict[str, Any]:
    """The `GET /me` body of the harvester's admin in one workspace."""
    return {
        "type": "admin",
        "id": "5123499",
        "name": "Audit Harvester",
        "email": f"audit@{DOMAIN}",
        "email_verified": True,
        "app": {
            "type": "app",
            "id_code": app_id,
            "name": COMPANY,
            "created_at": 1770138000,
            "secure": True,
            "identity_verification": False,
            "timezone": "America/Los_Angeles" if region == "US" else "Europe/Dublin",
            "region": region,
        },
        "avatar": {"type": "avatar", "image_url": None},
        "has_inbox_seat": False,
    }
