"""CS-001..CS-005 on hand-built stores, including mixed → review and transactional → n/a."""

from __future__ import annotations

import hashlib
import json
import zlib

import pytest

from auditkit.config import Settings
from auditkit.controls.canspam.address import parse_postal_address
from auditkit.errors import ConfigError
from auditkit.findings import ControlResult
from auditkit.store import Store
from tests.builders import ScratchStore, StoreBuilder, ts
from tests.controls.conftest import check, targets

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


@pytest.mark.parametrize(
    ("account_address", "shown", "outcome"),
    [
        # The state spelled out where the account has the code, and the other way round.
        (None, "1200 Harbor Blvd, Oakland, California 94607", "pass"),
        (None, "1200 HARBOR BOULEVARD\nOAKLAND, CALIFORNIA 94607", "pass"),
        (
            "Northwind, 1200 Harbor Blvd, Oakland, California 94607",
            "1200 Harbor Blvd\nOakland, CA 94607",
            "pass",
        ),
        (
            "Capitol Goods, 10 Main St, Charleston, WV 25301",
            "10 Main Street\nCharleston, West Virginia 25301",
            "pass",
        ),
        (
            "Capitol Goods, 1 Penn Ave, Washington, DC 20001",
            "1 Penn Avenue\nWashington, District of Columbia 20001",
            "pass",
        ),
        # Another state's name next to the right city and ZIP is not the state.
        (None, "1200 Harbor Blvd, Oakland, Nevada 94607", "partial"),
        # The state name elsewhere in the text does not stand for the state component.
        (None, "We ship to California! 1200 Harbor Blvd, Oakland 94607", "partial"),
        # A different address written with a state name: review, not "no address".
        (None, "9 Elm St, Reno, Nevada 89501", "other"),
    ],
)
def test_cs_001_state_names(
    store: Store, build: StoreBuilder, account_address: str | None, shown: str, outcome: str
) -> None:
    if account_address:
        build.account(physical_address=account_address)
    else:
        build.account()
    _commercial(build, "e1", f"20% off! {OPT_OUT}\n\n{shown}")
    result = check(store, "CS-001")
    if outcome == "pass":
        assert result.status == "pass", [f.reason for f in result.findings]
        return
    (finding,) = result.findings
    assert finding.state == "review"
    if outcome == "partial":
        assert finding.evidence["components_missing"] == ["state"]
    else:
        assert "not the account's physical_address" in finding.reason


@pytest.mark.parametrize(
    "signature",
    [
        "Northwind Supply Co.\n1200 Harbor Boulevard\nSuite 400\nOakland, CA\n94607",
        "Northwind Supply Co.  \n1200 Harbor  \nBlvd.  \nOakland  \nCalifornia 94607",
        "Northwind Supply Co.<br>1200 Harbor<br/>Boulevard<br>Oakland,&nbsp;CA&nbsp;94607",
        "<p>Northwind Supply Co.</p>\n<p>1200 Harbor Blvd, Suite 400</p>\n<p>Oakland, CA 94607</p>",
    ],
)
def test_cs_001_multi_line_signature(store: Store, build: StoreBuilder, signature: str) -> None:
    build.account()
    build.mailbox(signature_block=signature)
    _commercial(build, "e1", f"20% off! {OPT_OUT}")
    result = check(store, "CS-001")
    assert result.status == "pass", [f.evidence for f in result.findings]


def test_cs_001_reads_the_archived_as_sent_copy(store: Store, build: StoreBuilder) -> None:
    """An address footer added at send time is in the as-sent copy, not the draft."""
    build.account()
    for email_id in ("footer_added", "sent_as_drafted", "not_archived", "street_only_sent"):
        _commercial(build, email_id, f"20% off! {OPT_OUT}")
    _archive_copy(store, "footer_added", SENT_WITH_ADDRESS)
    _archive_copy(store, "sent_as_drafted", SENT_AS_DRAFTED)
    _archive_copy(store, "street_only_sent", SENT_AS_DRAFTED.replace(b"20%", b"1200 Harbor Blvd"))
    result = check(store, "CS-001")
    assert targets(result, "open") == {"sent_as_drafted"}
    assert targets(result, "review") == {"not_archived", "street_only_sent"}
    unknown = next(f for f in result.findings if f.target_id == "not_archived")
    assert "copies of 1 other message(s) whose drafts lacked it showed it" in unknown.reason
    partial = next(f for f in result.findings if f.target_id == "street_only_sent")
    assert partial.evidence["components_missing"] == ["city", "state", "zip"]
    assert partial.evidence["as_sent_copies_checked"] == 1
    assert "1 message(s) show the address only in their archived as-sent copy" in result.detail


def test_cs_001_account_without_address_fails_every_commercial_message(
    store: Store, build: StoreBuilder
) -> None:
    build.account(physical_address=None)
    _commercial(build, "e1", f"20% off! {ADDRESS}")
    result = check(store, "CS-001")
    assert targets(result, "open") == {"e1"}
    assert "no parseable physical_address" in result.findings[0].reason


@pytest.mark.parametrize("control_id", ["CS-001", "CS-002", "CS-003", "CS-004"])
def test_cs_controls_not_applicable_to_transactional_mail(
    store: Store, build: StoreBuilder, control_id: str
) -> None:
    build.account()
    build.email("t1", subject="Re: your order", body_markdown="Your order #12 shipped.")
    result = check(store, control_id)
    assert result.status == "not_applicable"
    assert "transactional" in result.detail


# --- CS-002 ------------------------------------------------------------------------------
CS_002_CASES: list[tuple[str, bool]] = [
    (f"20% off! {OPT_OUT}", True),
    ("20% off! Manage: https://northwind.example/email-preferences", True),
    ("20% off! Reply STOP to stop these emails.", True),
    ("20% off! Reply with 'unsubscribe' and we will remove you.", True),
    ("20% off! Just reply if you have questions.", False),
    ("20% off! Visit https://northwind.example/deals", False),
    # Labelled URLs whose path does not say what they are.
    ("20% off! Unsubscribe here: https://example.com/p/8f3a", True),
    ("20% off!\n\nManage your email preferences: https://x.example/prefs/abc", True),
    ("20% off! To opt out, visit https://x.example/o/77.", True),
    ("20% off!\nUnsubscribe: <https://x.example/l/1>", True),
    ("20% off! You can opt out at any time by visiting https://x.example/a", True),
    ("20% off! Don't want these emails? https://x.example/a/9", True),
    ("20% off! If you no longer wish to receive our emails, go to https://x.example/b", True),
    # The same facts in wording the rules above were not written from.
    (
        "20% off! You can opt out of these emails at any time by visiting https://x.example/o",
        True,
    ),
    (
        "20% off! If you'd rather not hear from us, update your preferences at https://x.example/p",
        True,
    ),
    ("20% off! Prefer fewer emails? Adjust your email settings: https://x.example/s", True),
    ("20% off! Want to stop hearing from us? https://x.example/bye", True),
    ("20% off! Would you rather not get these emails? https://x.example/r", True),
    # Link text in markdown or HTML, before or after the link.
    ("20% off! [Manage preferences](https://x.example/m/2)", True),
    ("20% off! [Stop receiving these emails](https://x.example/m/3)", True),
    ('20% off! <a href="https://x.example/l/9">unsubscribe</a>', True),
    ('20% off! <a href="https://x.example/l/9">Click here</a> to opt out.', True),
    ("20% off! Click [here](https://x.example/l/9) to unsubscribe.", True),
    # A return email address (§ 7704(a)(3) names it beside web mechanisms).
    ("20% off! [Unsubscribe](mailto:lists@northwind.example?subject=STOP)", True),
    ("20% off! Opt out: mailto:optout@northwind.example", True),
    ("20% off! To unsubscribe, email us at lists@northwind.example.", True),
    # Reply instructions, phrased many ways.
    ("20% off! Reply STOP to opt out.", True),
    (
        "20% off! Don't want these emails? Just reply \"unsubscribe\" and we'll take you "
        "off the list.",
        True,
    ),
    ("20% off! Reply to this email with REMOVE in the subject.", True),
    ("20% off! Respond with STOP to opt out.", True),
    ("20% off! To unsubscribe, simply reply to this message.", True),
    ("20% off! Unsubscribe by replying to this email.", True),
    ("20% off! Reply “remove me” any time.", True),
    # Not opt-outs: negated wording, unlabelled links, other reasons to reply or act.
    ("20% off! We will never unsubscribe you without asking.", False),
    ("20% off! You can't opt out of receipts: https://x.example/help", False),
    ("20% off! Shop now: https://example.com/p/8f3a", False),
    ("20% off! Manage your subscription: https://app.example/billing", False),
    ("20% off! Update your preferences at https://app.example/account", False),
    ("20% off! Please do not reply to this email; to unsubscribe call us.", False),
    ("20% off! Don't reply STOP, it will not work.", False),
    ("20% off! Reply and we'll remove the charge from your card.", False),
    ("20% off! If anything looks wrong, just reply to this email.", False),
    ("20% off! Questions? Email support@northwind.example", False),
    ("REPLY NOW TO STOP MISSING OUT! 20% off.", False),
    ("20% off! Short answer: remove the old app first.", False),
    ("20% off! Quick reply: stop by the store on Friday.", False),
    (
        "20% off! We'd rather not receive returns without a label: https://x.example/returns",
        False,
    ),
    ("20% off! Adjust your settings here: https://app.example/account", False),
]


@pytest.fixture(scope="module")
def cs_002_over_every_case() -> ControlResult:
    """CS-002 checked once over a store holding each of CS_002_CASES as its own commercial
    message (`opt_NN`, NN its index). A message's opt-out is read from its own text alone,
    so each case is asserted on its own message's findings: one check instead of 48."""
    with ScratchStore() as store:
        build = StoreBuilder(store)
        for i, (body, _) in enumerate(CS_002_CASES):
            _commercial(build, f"opt_{i:02d}", body)
        return check(store, "CS-002")


@pytest.mark.parametrize(("body", "has_opt_out"), CS_002_CASES)
def test_cs_002_opt_out(
    cs_002_over_every_case: ControlResult, body: str, has_opt_out: bool
) -> None:
    message = f"opt_{CS_002_CASES.index((body, has_opt_out)):02d}"
    states = [f.state for f in cs_002_over_every_case.findings if f.target_id == message]
    assert states == ([] if has_opt_out else ["open"]), body


def test_cs_002_cases_are_one_message_each() -> None:
    """The shared check above relies on each case being its own message: no case twice."""
    assert len(set(CS_002_CASES)) == len(CS_002_CASES)


@pytest.mark.parametrize(
    ("body", "wording", "carrier"),
    [
        (
            "20% off! Don't want these emails anymore? Let us know by replying to this message.",
            "Don't want these emails",
            "replying",
        ),
        (
            "20% off! Unsubscribe options are in your account. Sign in at https://x.example/in",
            "Unsubscribe",
            "https://x.example/in",
        ),
        (
            "20% off! To opt out, tell our team. Questions? lists@northwind.example",
            "opt out",
            "lists@northwind.example",
        ),
    ],
)
def test_cs_002_opt_out_wording_it_cannot_read_is_for_a_human(
    store: Store, build: StoreBuilder, body: str, wording: str, carrier: str
) -> None:
    """An opt-out label and something that could carry it, not recognised as one
    instruction: a review finding that quotes both, never an open accusation."""
    _commercial(build, "e1", body)
    result = check(store, "CS-002")
    assert result.status == "fail" and targets(result, "review") == {"e1"}
    (finding,) = result.findings
    assert finding.evidence["opt_out_wording"] == wording
    assert finding.evidence["possible_mechanism"] == carrier
    assert "a human must read the message" in finding.reason
    assert "1 opt-out wording not recognised as a mechanism (review)" in result.detail


def test_cs_002_wording_without_a_carrier_or_negated_is_still_open(
    store: Store, build: StoreBuilder
) -> None:
    build.mailbox(signature_block="Northwind Supply Co.\nReply to this email any time.")
    build.mailbox(id="mbx_2", address="deals@northwind.example", signature_block="Deals team")
    # The label in the body, the reply verb in the signature block: one message, review.
    _commercial(build, "apart", "20% off! Don't want these emails? Let us know.")
    _commercial(
        build, "phone", "20% off! Please do not reply; to unsubscribe call us.", mailbox_id="mbx_2"
    )
    _commercial(
        build,
        "negated",
        "20% off! We will never unsubscribe you without asking. https://x.example/deals",
        mailbox_id="mbx_2",
    )
    _commercial(
        build,
        "no_label",
        "20% off! Shop at https://x.example/deals or reply with questions.",
        mailbox_id="mbx_2",
    )
    result = check(store, "CS-002")
    assert targets(result, "review") == {"apart"}
    assert targets(result, "open") == {"phone", "negated", "no_label"}


def _archive_copy(store: Store, email_id: str, raw: bytes) -> None:
    """An as-sent copy of `email_id`, as harvest-archive stores it."""
    sha = hashlib.sha256(raw).hexdigest()
    store.upsert(
        "archive_messages",
        [
            {
                "sha256": sha,
                "source_path": f"eml/{email_id}.eml",
                "email_id": email_id,
                "match_method": "header",
                "match_candidates": [email_id],
                "size_bytes": len(raw),
                "raw_compressed": zlib.compress(raw),
                "run_id": "archive-1",
                "harvested_at": ts("2026-10-02 00:00"),
            }
        ],
        pk="sha256",
    )


SENT_WITH_FOOTER = (
    b"From: deals@northwind.example\r\nTo: customer@example.com\r\nSubject: Summer sale\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n20% off!\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b'<p>20% off!</p><p style=3D"font-size:11px"><a href=3D"https://api.multimail.dev'
    b'/v1/unsubscribe/tok123">Unsubscribe</a></p>\r\n--b1--\r\n'
)
SENT_WITH_ADDRESS = (
    b"From: deals@northwind.example\r\nTo: customer@example.com\r\nSubject: Summer sale\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>20% off!</p>"
    b"<p>Northwind Supply Co.<br>1200 Harbor Blvd., Suite 400<br>Oakland, CA&nbsp;94607</p>\r\n"
)
SENT_AS_DRAFTED = (
    b"From: deals@northwind.example\r\nTo: customer@example.com\r\nSubject: Summer sale\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n20% off!\r\n"
)


def test_cs_002_reads_the_archived_as_sent_copy(store: Store, build: StoreBuilder) -> None:
    """The stored body is the author's draft. A footer added at send time shows in the
    as-sent copy: that message has an opt-out. Once the archive shows footers being added,
    a draft without one and without an archived copy is for a human, not an accusation."""
    _commercial(build, "footer_added", "20% off!")
    _commercial(build, "sent_as_drafted", "20% off!")
    _commercial(build, "not_archived", "20% off!")
    _archive_copy(store, "footer_added", SENT_WITH_FOOTER)
    _archive_copy(store, "sent_as_drafted", SENT_AS_DRAFTED)
    result = check(store, "CS-002")
    assert targets(result, "open") == {"sent_as_drafted"}
    assert targets(result, "review") == {"not_archived"}
    drafted = next(f for f in result.findings if f.target_id == "sent_as_drafted")
    assert drafted.evidence["as_sent_copies_checked"] == 1
    assert "archived as-sent copies" in drafted.evidence["checked"]
    unknown = next(f for f in result.findings if f.target_id == "not_archived")
    assert "1 other message(s) whose drafts had none showed one" in unknown.reason
    assert "1 opt-out only in the archived as-sent copy (added at send time)" in result.detail


def test_cs_002_without_archived_footers_a_draft_without_opt_out_is_open(
    store: Store, build: StoreBuilder
) -> None:
    _commercial(build, "sent_as_drafted", "20% off!")
    _commercial(build, "not_archived", "20% off!")
    _archive_copy(store, "sent_as_drafted", SENT_AS_DRAFTED)
    assert targets(check(store, "CS-002"), "open") == {"sent_as_drafted", "not_archived"}


def test_cs_002_mixed_is_review(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    build.email("mixed", body_markdown="Your refund is done. Also 20% off Pro.")
    result = check(store, "CS-002", settings=SETTINGS)
    assert targets(result, "review") == {"mixed"}
    assert result.status == "fail"


def test_cs_002_signature_block_and_detail(store: Store, build: StoreBuilder) -> None:
    build.mailbox(signature_block="Northwind Supply Co.\nReply STOP to opt out of these emails.")
    build.mailbox(id="mbx_2", address="deals@northwind.example", signature_block="Deals team")
    _commercial(build, "in_signature", "20% off!")
    _commercial(build, "in_body", f"20% off! {OPT_OUT}", mailbox_id="mbx_2")
    _commercial(build, "none", "20% off!", mailbox_id="mbx_2")
    result = check(store, "CS-002")
    assert targets(result, "open") == {"none"}
    assert "1 opt-out link in the body" in result.detail
    assert "1 reply instruction in the signature block" in result.detail
    assert "List-Unsubscribe" in result.findings[0].evidence["checked"]


def _set_raw_headers(store: Store, email_id: str, headers: object) -> None:
    # The row builder derives `raw` from the typed columns; a record carrying headers
    # (import, future API) has them at the top level of the stored JSON.
    store.con.execute(
        f"UPDATE {store.base('multimail_emails')} SET raw = json_merge_patch(raw, ?::JSON) "
        "WHERE id = ?",
        [json.dumps({"headers": headers}), email_id],
    )


def test_cs_002_list_unsubscribe_header(store: Store, build: StoreBuilder) -> None:
    one_click = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    _commercial(
        build,
        "metadata_header",
        "20% off!",
        metadata=json.dumps({"headers": {"List-Unsubscribe": "<https://x.example/u/1>"}}),
    )
    _commercial(build, "raw_header_lower", "20% off!")
    _set_raw_headers(store, "raw_header_lower", {"list-unsubscribe": ["<mailto:u@x.example>"]})
    _commercial(build, "raw_header_pairs", "20% off!")
    _set_raw_headers(
        store,
        "raw_header_pairs",
        [{"name": "LIST-UNSUBSCRIBE", "value": "<https://x.example/u/2>"}],
    )
    _commercial(
        build,
        "tags_header_line",
        "20% off!",
        tags={**PROMO, "headers": ["List-Unsubscribe: <https://x.example/u/3>"]},
    )
    # Only the RFC 8058 companion header, an empty value, or no URI: no mechanism.
    _commercial(build, "post_only", "20% off!", metadata=json.dumps({"headers": one_click}))
    _commercial(build, "empty", "20% off!")
    _set_raw_headers(store, "empty", {"List-Unsubscribe": ""})
    _commercial(build, "no_uri", "20% off!")
    _set_raw_headers(store, "no_uri", {"List-Unsubscribe": "please write to us"})
    # Header and a notice in the body: the body notice is what counts; no finding.
    _commercial(build, "both", f"20% off! {OPT_OUT}")
    _set_raw_headers(store, "both", {"List-Unsubscribe": "<https://x.example/u/4>"})
    result = check(store, "CS-002")
    assert targets(result, "review") == {
        "metadata_header",
        "raw_header_lower",
        "raw_header_pairs",
        "tags_header_line",
    }
    assert targets(result, "open") == {"post_only", "empty", "no_uri"}
    header_only = next(f for f in result.findings if f.target_id == "metadata_header")
    assert header_only.evidence["list_unsubscribe"] == "<https://x.example/u/1>"
    assert header_only.evidence["mechanism"] == "list_unsubscribe_header"
    assert "List-Unsubscribe header" in header_only.reason
    assert "1 opt-out link in the body" in result.detail
    assert "4 List-Unsubscribe header only" in result.detail


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
    assert targets(result, "open") == {"to_complainer", "to_back_late"}
    # No reason recorded: not guessed to be an opt-out, so not an accusation either.
    assert targets(result, "review") == {"to_unknown_reason"}
    unknown = next(f for f in result.findings if f.target_id == "to_unknown_reason")
    assert "reason (none given) names neither an opt-out nor a delivery failure" in unknown.reason
    assert unknown.evidence["suppression_read_as"] == "unknown"
    late = next(f for f in result.findings if f.target_id == "to_back_late")
    assert late.evidence["suppression_id"] == "u2"
    assert "1 send(s) to addresses suppressed only for a delivery failure" in result.detail
    assert "1 spam_complaint (opt-out)" in result.detail
    assert "1 hard_bounce (delivery failure)" in result.detail
    assert "1 (none) (unknown: review)" in result.detail

    # The reasons that mean a delivery failure are a setting.
    strict = Settings(controls={"delivery_failure_reasons": []})
    assert "to_bounced" in targets(check(store, "CS-003", settings=strict))
    with pytest.raises(ConfigError, match="delivery_failure_reasons"):
        check(store, "CS-003", settings=Settings(controls={"delivery_failure_reasons": "bounce"}))


def test_cs_003_reasons_it_does_not_know_are_for_a_human(store: Store, build: StoreBuilder) -> None:
    """Reasons are an undocumented dialect: one that names neither an opt-out nor a
    delivery failure makes a late send a review finding, until the config says what it is.
    A known opt-out for the same address, late too, makes it an open one."""
    build.suppression("k1", "cleaned@example.com", ts("2026-07-01 09:00"), reason="list_cleanup")
    build.suppression("k2", "both@example.com", ts("2026-07-01 09:00"), reason="list_cleanup")
    build.suppression("k3", "both@example.com", ts("2026-07-06 09:00"), reason="USER_OPTED_OUT")
    build.suppression("k4", "early@example.com", ts("2026-07-01 09:00"), reason="list_cleanup")
    build.suppression("k5", "early@example.com", ts("2026-08-20 09:00"), reason="Unsubscribed")
    for email_id, to in [
        ("to_cleaned", "cleaned@example.com"),
        ("to_both", "both@example.com"),
        ("to_early", "early@example.com"),
    ]:
        _commercial(build, email_id, OPT_OUT, to_addresses=[to], created_at=ts("2026-07-29 08:00"))
    result = check(store, "CS-003")
    assert targets(result, "open") == {"to_both"}
    # Late for the unknown reason only: the unsubscribe came after this send.
    assert targets(result, "review") == {"to_cleaned", "to_early"}
    both = next(f for f in result.findings if f.target_id == "to_both")
    assert both.evidence["suppression_id"] == "k3"
    assert "3 list_cleanup (unknown: review)" in result.detail
    assert "1 USER_OPTED_OUT (opt-out)" in result.detail
    told = Settings(controls={"opt_out_reasons": ["cleanup", "opted"]})
    assert targets(check(store, "CS-003", settings=told), "open") == {
        "to_cleaned",
        "to_both",
        "to_early",
    }
    with pytest.raises(ConfigError, match="opt_out_reasons must be a list"):
        check(store, "CS-003", settings=Settings(controls={"opt_out_reasons": [""]}))


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
        from_address="someone@example.com",
    )
    _commercial(
        build,
        "real_reply",
        OPT_OUT,
        subject="Re: Question",
        thread_id="thr_real",
        to_addresses=["new@example.com"],
    )
    _commercial(
        build,
        "fake_reply",
        OPT_OUT,
        subject="RE: your account",
        thread_id="thr_new",
        to_addresses=["prospect@example.com"],
    )
    _commercial(
        build,
        "fake_fwd",
        OPT_OUT,
        subject="Fwd: invoice",
        thread_id=None,
        to_addresses=["prospect@example.com"],
    )
    _commercial(build, "plain", OPT_OUT, subject="Summer sale")
    result = check(store, "CS-004")
    assert result.status == "fail"
    assert targets(result, "open") == {"fake_reply", "fake_fwd"}
    fake = next(f for f in result.findings if f.target_id == "fake_reply")
    assert fake.evidence["recipients"] == ["prospect@example.com"]
    assert "prospect@example.com" in fake.reason


def test_cs_004_earlier_inbound_from_the_recipient(store: Store, build: StoreBuilder) -> None:
    build.mailbox(id="mbx_sales", address="sales@northwind.example")

    def inbound(id: str, sender: str, at: str) -> None:
        # Another mailbox of the account, another thread: still an exchange with the sender.
        build.email(
            id,
            direction="inbound",
            mailbox_id="mbx_sales",
            thread_id=f"thr_{id}",
            created_at=ts(at),
            subject="Hello",
            from_address=sender,
            to_addresses=["sales@northwind.example"],
        )

    def reply(id: str, to: list[str], **kw: object) -> None:
        _commercial(build, id, OPT_OUT, subject="Re: your question", to_addresses=to, **kw)

    inbound("in_sam", "Sam Lee <Sam@Example.com>", "2026-07-20 09:00")
    inbound("in_late", "late@example.com", "2026-08-04 09:00")
    inbound("in_other", "someone.else@example.com", "2026-07-20 09:00")
    reply("to_sam", ["sam@example.com"])
    reply("to_sam_named", ["Sam <SAM@example.com>"])
    # A reply that adds a colleague is still a reply.
    reply("to_sam_and_colleague", ["colleague@example.com", "sam@example.com"])
    # The recipient wrote only after the message.
    reply("to_late", ["late@example.com"])
    reply("to_prospect", ["prospect@example.com"])
    # A Cc'd correspondent does not make the message a reply to its To recipient.
    reply("cc_only", ["prospect2@example.com"], cc_addresses=["sam@example.com"])
    # Mail only ever went one way: earlier outbound mail is no exchange.
    _commercial(
        build,
        "cold_first",
        OPT_OUT,
        subject="Summer sale",
        to_addresses=["cold@example.com"],
        created_at=ts("2026-07-10 10:00"),
    )
    reply("to_cold", ["cold@example.com"])
    result = check(store, "CS-004")
    assert targets(result, "open") == {"to_late", "to_prospect", "cc_only", "to_cold"}


def test_cs_004_linked_intercom_conversation(store: Store, build: StoreBuilder) -> None:
    build.conversation("c_ok", contact_email="Pat@Example.com", created_at=ts("2026-07-01 08:00"))
    build.conversation("c_other", contact_email="someone@example.com")
    build.conversation(
        "c_later", contact_email="pat@example.com", created_at=ts("2026-09-01 08:00")
    )
    build.conversation("c_404", found=False)
    build.conversation("c_no_contact", contact_email=None)
    # Started by a teammate (no contact_email), but the customer wrote in a part.
    build.conversation("c_parts", contact_email=None)
    store.con.execute(
        f"UPDATE {store.base('intercom_conversations')} "
        "SET raw = json_merge_patch(raw, ?::JSON) WHERE id = ?",
        [
            json.dumps(
                {
                    "conversation_parts": {
                        "conversation_parts": [
                            {"author": {"type": "admin", "email": "agent@northwind.example"}},
                            {"author": {"type": "user", "email": "PAT@example.com"}},
                        ]
                    }
                }
            ),
            "c_parts",
        ],
    )
    for email_id, conversation in [
        ("via_contact", "c_ok"),
        ("via_parts", "c_parts"),
        ("other_contact", "c_other"),
        ("began_later", "c_later"),
        ("not_harvested", "c_missing"),
        ("answered_404", "c_404"),
        ("no_contact", "c_no_contact"),
    ]:
        _commercial(
            build,
            email_id,
            OPT_OUT,
            subject="Re: your question",
            to_addresses=["pat@example.com"],
            conversation_id=conversation,
        )
    result = check(store, "CS-004")
    assert targets(result, "open") == {"other_contact", "began_later"}
    # A link that cannot be checked is no prior exchange, but no accusation either.
    assert targets(result, "review") == {"not_harvested", "answered_404", "no_contact"}
    by_id = {f.target_id: f for f in result.findings}
    assert "is with someone else" in by_id["other_contact"].reason
    assert by_id["other_contact"].evidence["conversation_contacts"] == ["someone@example.com"]
    assert "began after the message" in by_id["began_later"].reason
    assert "was not harvested" in by_id["not_harvested"].reason
    assert by_id["answered_404"].evidence["conversation_check"] == "not_found"


def test_cs_004_commercial_and_mixed_mail_only(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    # Transactional Re: mail is out of scope (§ 7704(a)(2) covers commercial mail).
    build.email(
        "support_fake_reply",
        subject="Re: your order #4411",
        body_markdown="Your return was received.",
        to_addresses=["prospect@example.com"],
    )
    build.email(
        "mixed_fake_reply",
        subject="Re: your refund",
        body_markdown="Your refund is done. Also 20% off Pro with code SAVE20.",
        to_addresses=["prospect@example.com"],
    )
    result = check(store, "CS-004", settings=SETTINGS)
    assert targets(result) == {"mixed_fake_reply"}
    assert targets(result, "review") == {"mixed_fake_reply"}
    assert result.checked == 1
    assert "Mixed" in result.findings[0].reason


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
