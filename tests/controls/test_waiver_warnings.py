"""Waivers that stopped working are warnings the run carries (`run_controls(...).warnings`),
and unknown [controls] / mailbox keys are errors, not log lines."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from auditkit.config import Settings
from auditkit.controls import ControlResults, Outcome, registry, run_controls
from auditkit.errors import ConfigError
from auditkit.store import Store
from tests.builders import StoreBuilder, ts
from tests.controls.conftest import NOW, Q3


def _waiver(**kw: object) -> dict[str, object]:
    return {
        "control": "OVS-002",
        "target": "late",
        "justification": "clock skew at the provider, ticket OPS-12",
        "approver": "cfo@northwind.example",
        "expires": date(2026, 9, 30),
        **kw,
    }


@pytest.fixture
def late(build: StoreBuilder) -> None:
    """One OVS-002 finding (approved after it was sent) on email `late`."""
    build.email("late", approved_at=ts("2026-08-03 11:00"), approved_by="alice")


def _messages(results: ControlResults) -> list[str]:
    return [w.message for w in results.warnings]


def test_run_controls_still_returns_a_list_of_results(store: Store, late: None) -> None:
    results = run_controls(store, Settings(), Q3, only=["OVS-002"], now=NOW)
    assert isinstance(results, list) and [r.id for r in results] == ["OVS-002"]
    assert results.warnings == ()


def test_an_expired_waiver_is_a_warning_and_its_finding_is_open_again(
    store: Store, late: None
) -> None:
    settings = Settings(waivers=(_waiver(),))
    current = run_controls(store, settings, Q3, only=["OVS-002"], now=NOW, today=date(2026, 9, 30))
    assert [f.state for f in current[0].findings] == ["waived"] and current.warnings == ()
    expired = run_controls(store, settings, Q3, only=["OVS-002"], now=NOW, today=date(2026, 10, 1))
    assert [f.state for f in expired[0].findings] == ["open"]
    assert _messages(expired) == [
        "waiver for OVS-002 late expired on 2026-09-30; the finding is open again"
    ]
    (warning,) = expired.warnings
    assert warning.to_dict() == {
        "control": "OVS-002",
        "target": "late",
        "problem": "expired",
        "message": warning.message,
    }


def test_an_expired_waiver_replaced_by_a_current_one_is_still_named(
    store: Store, late: None
) -> None:
    settings = Settings(waivers=(_waiver(), _waiver(expires=date(2026, 12, 31))))
    results = run_controls(store, settings, Q3, only=["OVS-002"], now=NOW)
    assert [f.state for f in results[0].findings] == ["waived"]
    assert _messages(results) == [
        "waiver for OVS-002 late expired on 2026-09-30; another waiver covers the finding; "
        "remove this one"
    ]


def test_a_waiver_matching_no_finding_of_its_control_is_a_warning(store: Store, late: None) -> None:
    settings = Settings(
        waivers=(
            _waiver(target="lat", expires=date(2026, 12, 31)),  # a typo in the id
            _waiver(expires=date(2026, 12, 31)),
            _waiver(control="OVS-001", target="gone", expires=date(2026, 12, 31)),
            _waiver(target="old", expires=date(2026, 1, 31)),
        )
    )
    results = run_controls(store, settings, Q3, only=["OVS-001", "OVS-002"], now=NOW)
    assert _messages(results) == [
        "waiver for OVS-002 lat matches no finding of OVS-002; check the target id, "
        "or remove the waiver if the issue is fixed",
        "waiver for OVS-001 gone matches no finding of OVS-001; check the target id, "
        "or remove the waiver if the issue is fixed",
        "waiver for OVS-002 old expired on 2026-01-31; it matches no finding either; remove it",
    ]
    assert [w.problem for w in results.warnings] == ["unmatched", "unmatched", "expired"]


def test_waivers_of_controls_not_run_or_not_concluded_say_nothing_of_matching(
    store: Store, late: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        waivers=(_waiver(control="OVS-003", target="x", expires=date(2026, 12, 31)),)
    )
    assert run_controls(store, settings, Q3, only=["OVS-002"], now=NOW).warnings == ()

    def boom(ctx: object) -> Outcome:
        raise ValueError("evidence query broke")

    broken = dataclasses.replace(registry._REGISTRY["OVS-003"], evaluate=boom)
    monkeypatch.setitem(registry._REGISTRY, "OVS-003", broken)
    # An error found nothing, so "matches no finding" would be a guess; expiry still shows.
    assert run_controls(store, settings, Q3, only=["OVS-003"], now=NOW).warnings == ()
    expired = Settings(waivers=(_waiver(control="OVS-003", target="x"),))
    assert _messages(run_controls(store, expired, Q3, only=["OVS-003"], now=NOW)) == [
        "waiver for OVS-003 x expired on 2026-09-30; renew or remove it"
    ]


def test_a_message_scoped_run_warns_only_about_its_messages(
    store: Store, build: StoreBuilder, late: None
) -> None:
    build.email("other", approved_at=ts("2026-08-03 11:00"), approved_by="alice")
    settings = Settings(
        waivers=(_waiver(target="other"), _waiver(target="nowhere", expires=date(2026, 12, 31)))
    )
    scoped = run_controls(store, settings, Q3, only=["OVS-002"], message_ids=["late"], now=NOW)
    assert scoped.warnings == ()
    whole = run_controls(store, settings, Q3, only=["OVS-002"], now=NOW)
    assert [w.target for w in whole.warnings] == ["other", "nowhere"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            Settings(controls={"reviewer": ["a@x.example"]}),
            r"controls\.reviewer is not a setting; did you mean controls\.reviewers\?",
        ),
        (
            Settings(mailboxes={"a@x.example": {"require_conversaton_link": True}}),
            r'mailboxes\."a@x\.example"\.require_conversaton_link is not a mailbox setting',
        ),
        (Settings(classification={"default": "auto"}), r"classification\.default is not a setting"),
    ],
)
def test_unknown_keys_are_errors_not_warnings(
    store: Store, settings: Settings, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_controls(store, settings, Q3, now=NOW)
