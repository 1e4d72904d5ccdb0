"""The pack shows the run's waiver warnings (expired, or matching no finding) in the findings
section, deterministically, and a pack of chosen messages keeps them."""

from __future__ import annotations

import json
from pathlib import Path

from auditkit.controls import ControlResults
from auditkit.controls.waivers import WaiverWarning
from auditkit.report import write_pack
from auditkit.report.context import build_context
from auditkit.report.messages import MessageTable
from auditkit.report.results import scoped_results, warning_rows
from auditkit.report.scope import Scope
from tests.report.factory import Q3, demo_store, results, settings

EXPIRED = WaiverWarning(
    "OV-001",
    "em-04",
    "expired",
    "waiver for OV-001 em-04 expired on 2026-09-30; the finding is open again",
)
UNMATCHED = WaiverWarning(
    "CS-04",
    "em-<9>",
    "unmatched",
    "waiver for CS-04 em-<9> matches no finding of CS-04; check the target id, "
    "or remove the waiver if the issue is fixed",
)


def _results() -> ControlResults:
    return ControlResults(results(), [EXPIRED, UNMATCHED])


def test_the_findings_section_lists_the_warnings_and_stays_byte_identical(tmp_path: Path) -> None:
    with demo_store() as store:
        for name in ("a", "b"):
            write_pack(
                store, settings(), Q3, tmp_path / name, results=_results(), formats=("html",)
            )
    html = (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    findings = html[html.index('<section class="findings"') :]
    findings = findings[: findings.index("</section>")]
    assert "Waiver warnings (2)" in findings
    assert EXPIRED.message in findings
    # Escaped like every other value from the config.
    assert "em-&lt;9&gt; matches no finding of CS-04" in findings
    assert (tmp_path / "a" / "report.html").read_bytes() == (
        tmp_path / "b" / "report.html"
    ).read_bytes()


def test_a_message_pack_keeps_the_warnings_and_a_plain_list_has_none(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(
            store,
            settings(),
            Q3,
            tmp_path / "m",
            results=_results(),
            message_ids=["em-04"],
            formats=("html",),
        )
        write_pack(store, settings(), Q3, tmp_path / "plain", results=results(), formats=("html",))
    assert EXPIRED.message in (tmp_path / "m" / "report.html").read_text(encoding="utf-8")
    assert "Waiver warnings" not in (tmp_path / "plain" / "report.html").read_text(encoding="utf-8")


def test_context_and_manifest_rows_are_plain_dicts_in_run_order() -> None:
    scoped = scoped_results(_results(), Scope(Q3, message_ids=("em-04",)), {"em-04"})
    assert warning_rows(scoped) == [EXPIRED.to_dict(), UNMATCHED.to_dict()]
    assert warning_rows(results()) == []
    with demo_store() as store, MessageTable(store, Scope(Q3), settings(), []) as view:
        context = build_context(
            store,
            settings(),
            Scope(Q3),
            _results(),
            view,
            sample_size=0,
            seed=1,
            snapshot_digest="d",
            catalogue_version="v",
            parameters={},
        )
    assert context["waiver_warnings"] == [EXPIRED.to_dict(), UNMATCHED.to_dict()]


def test_the_manifest_lists_the_warnings(tmp_path: Path) -> None:
    with demo_store() as store:
        write_pack(store, settings(), Q3, tmp_path / "p", results=_results(), formats=("html",))
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["warnings"] == [EXPIRED.to_dict(), UNMATCHED.to_dict()]
