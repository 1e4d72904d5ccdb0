"""The runner: catalogue contract, error isolation, waivers, config validation, determinism."""

from __future__ import annotations

import dataclasses
import json
from datetime import date

import pytest

from auditkit.config import Settings
from auditkit.controls import Outcome, catalogue, registry, run_controls
from auditkit.controls.waivers import parse_waivers
from auditkit.errors import ConfigError
from auditkit.store import Store
from tests.builders import StoreBuilder, ts
from tests.controls.conftest import NOW, Q3, check

EXPECTED_IDS = [
    "OVS-001",
    "OVS-002",
    "OVS-003",
    "OVS-004",
    "OVS-005",
    "OVS-006",
    "OVS-007",
    "CS-001",
    "CS-002",
    "CS-003",
    "CS-004",
    "CS-005",
    "ID-001",
    "ID-002",
    "ID-003",
    "TR-001",
    "TR-002",
    "AL-001",
    "AL-002",
    "PC-001",
]


def test_catalogue_ids_and_metadata() -> None:
    items = catalogue()
    assert [c.id for c in items] == EXPECTED_IDS
    for c in items:
        assert c.title and c.rationale and c.reference and c.sql.strip()
        assert c.severity in ("low", "medium", "high")
        assert "SELECT" in c.sql.upper()
    assert {c.id: c.severity for c in items}["OVS-007"] == "low"


def test_a_control_that_raises_reports_error_not_pass(
    store: Store, build: StoreBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    build.email("e1")

    def boom(ctx: object) -> Outcome:
        raise ValueError("evidence query broke")

    broken = dataclasses.replace(registry._REGISTRY["OVS-002"], evaluate=boom)
    monkeypatch.setitem(registry._REGISTRY, "OVS-002", broken)
    results = {r.id: r for r in run_controls(store, Settings(), Q3, now=NOW)}
    assert results["OVS-002"].status == "error"
    assert results["OVS-002"].detail == "ValueError: evidence query broke"
    # The others still ran.
    assert results["OVS-001"].status in ("pass", "fail")


def test_missing_table_is_an_error(store: Store, build: StoreBuilder) -> None:
    build.api_key("k", ["send"])
    # The account's view and the table behind it.
    store.con.execute(
        f"DROP VIEW multimail_api_keys; DROP TABLE {store.base('multimail_api_keys')}"
    )
    result = check(store, "OVS-005")
    assert result.status == "error"
    assert "multimail_api_keys" in result.detail


def _waiver(**kw: object) -> dict[str, object]:
    return {
        "control": "OVS-002",
        "target": "late",
        "justification": "clock skew at the provider, ticket OPS-12",
        "approver": "cfo@northwind.example",
        "expires": date(2026, 12, 31),
        **kw,
    }


def test_waiver_marks_finding_waived_until_it_expires(store: Store, build: StoreBuilder) -> None:
    build.email("late", approved_at=ts("2026-08-03 11:00"), approved_by="alice")
    build.email("late2", approved_at=ts("2026-08-03 11:00"), approved_by="alice")
    settings = Settings(waivers=(_waiver(),))
    result = check(store, "OVS-002", settings=settings, today=date(2026, 12, 31))
    states = {f.target_id: f.state for f in result.findings}
    assert states == {"late": "waived", "late2": "open"}
    waived = next(f for f in result.findings if f.target_id == "late")
    assert waived.waiver == {
        "control": "OVS-002",
        "target": "late",
        "justification": _waiver()["justification"],
        "approver": "cfo@northwind.example",
        "expires": "2026-12-31",
    }
    expired = check(store, "OVS-002", settings=settings, today=date(2027, 1, 1))
    assert {f.state for f in expired.findings} == {"open"}
    assert all(f.waiver is None for f in expired.findings)


def test_all_findings_waived_means_pass(store: Store, build: StoreBuilder) -> None:
    build.email("late", approved_at=ts("2026-08-03 11:00"), approved_by="alice")
    result = check(
        store,
        "OVS-002",
        settings=Settings(waivers=(_waiver(expires="2026-12-31"),)),
        today=date(2026, 10, 1),
    )
    assert result.status == "pass"
    assert [f.state for f in result.findings] == ["waived"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_waiver(control="OVS-999"), r"waivers\[1\]\.control: unknown control"),
        (_waiver(target=""), r"waivers\[1\]\.target"),
        (_waiver(justification=None), r"waivers\[1\]\.justification"),
        (_waiver(approver=3), r"waivers\[1\]\.approver"),
        (_waiver(expires="next year"), r"waivers\[1\]\.expires"),
        ({k: v for k, v in _waiver().items() if k != "expires"}, r"waivers\[1\]\.expires"),
        (_waiver(note="x"), r"waivers\[1\]\.note"),
    ],
)
def test_invalid_waivers_name_index_and_key(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_waivers([_waiver(), entry], {"OVS-002"})


@pytest.mark.parametrize(
    ("controls", "key"),
    [
        ({"reviewers": "alice"}, "controls.reviewers"),
        ({"pending_limit_hours": 0}, "controls.pending_limit_hours"),
        ({"pending_limit_hours": True}, "controls.pending_limit_hours"),
        ({"audit_actions": {"approve": "x"}}, "controls.audit_actions.approve"),
        ({"audit_actions": {"approved": ""}}, "controls.audit_actions.approved"),
    ],
)
def test_invalid_controls_config_names_the_key(
    store: Store, controls: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run_controls(store, Settings(controls=controls), Q3, now=NOW)


def test_invalid_mailbox_flag_names_the_key(store: Store) -> None:
    settings = Settings(mailboxes={"a@x.example": {"require_conversation_link": "yes"}})
    with pytest.raises(ConfigError, match=r'mailboxes\."a@x\.example"\.require_conversation_link'):
        run_controls(store, settings, Q3, now=NOW)


def test_unknown_control_id_is_a_config_error(store: Store) -> None:
    with pytest.raises(ConfigError, match="unknown control 'XX-1'"):
        run_controls(store, Settings(), Q3, only=["XX-1"], now=NOW)


def test_results_are_deterministic_and_json_serialisable(store: Store, build: StoreBuilder) -> None:
    build.account()
    build.mailbox()
    for i in range(5):
        build.email(f"e{i}", subject="Re: 20% off", tags={"category": "promotion"})
    first = [r.to_dict() for r in run_controls(store, Settings(), Q3, now=NOW)]
    second = [r.to_dict() for r in run_controls(store, Settings(), Q3, now=NOW)]
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert [r["id"] for r in first] == EXPECTED_IDS


def test_period_scope_uses_created_at(store: Store, build: StoreBuilder) -> None:
    build.mailbox()
    build.email("june", created_at=ts("2026-06-30 23:59"), delivered_at=ts("2026-07-01 00:10"))
    build.email("july", created_at=ts("2026-07-01 00:00"), delivered_at=ts("2026-07-01 00:10"))
    result = check(store, "OVS-001")
    assert {f.target_id for f in result.findings} == {"july"}


def test_read_only_store_is_not_written(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.duckdb"
    with Store(path) as writable:
        StoreBuilder(writable).email("e1")
    before = path.read_bytes()
    with Store(path, read_only=True) as ro:
        results = run_controls(ro, Settings(), Q3, now=NOW)
    assert all(r.status != "error" for r in results), [
        (r.id, r.detail) for r in results if r.status == "error"
    ]
    assert path.read_bytes() == before
