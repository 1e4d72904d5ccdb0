"""report.html in a real browser (headless Chromium): it opens, nothing is cut off, links
resolve, and its Content-Security-Policy stops scripts.

Needs Debian's `chromium` (installed by .ci/run). Skipped locally without it; under CI a
missing browser is a failure, so the check cannot silently disappear.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DemoRun

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed"
    ),
]

# Collects layout facts after load and writes them into the DOM for --dump-dom to read.
PROBE = """
window.addEventListener('load', () => {
  const ids = new Set([...document.querySelectorAll('[id]')].map(e => e.id));
  const anchors = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  const vw = document.documentElement.clientWidth;
  const out = {
    viewport: vw,
    internal_broken: anchors.filter(
      h => h.startsWith('#') && !ids.has(decodeURIComponent(h.slice(1)))),
    external: anchors.filter(h => /^[a-z]+:/i.test(h)),
    overflowing: [...document.querySelectorAll('body *')]
      .filter(e => e.getBoundingClientRect().right > vw + 1)
      .map(e => e.tagName.toLowerCase() + '.' + e.className).slice(0, 20),
    message_pages: document.querySelectorAll('.message').length,
  };
  const pre = document.createElement('pre');
  pre.id = 'auditkit-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""
PROBE_OUTPUT = re.compile(r'<pre id="auditkit-probe">([^<]*)</pre>')
INBOX_LINK = re.compile(
    r"^https://app(\.eu|\.au)?\.intercom\.com/a/inbox/[a-z0-9]+/inbox/conversation/\d+$"
)


def chromium(args: list[str], tmp_path: Path) -> str:
    assert CHROMIUM is not None, "chromium is required under CI (.ci/run installs it)"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def demo_pack(demo_run: DemoRun) -> Path:
    """The run's shared demo pack (tests/conftest.py `demo_run`); read only."""
    return demo_run.out


def probed(html: str) -> str:
    """The page with the probe added; the CSP is removed so the probe itself may run."""
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    return html.replace("</head>", f"<script>{PROBE}</script></head>", 1)


@pytest.mark.parametrize("width", [1280, 800])
def test_report_opens_with_nothing_cut_off_and_links_resolving(
    demo_pack: Path, tmp_path: Path, width: int
) -> None:
    page = tmp_path / "probe.html"
    page.write_text(
        probed((demo_pack / "report.html").read_text(encoding="utf-8")), encoding="utf-8"
    )
    dom = chromium(
        [f"--window-size={width},900", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        tmp_path,
    )
    match = PROBE_OUTPUT.search(dom)
    assert match, "the page did not finish loading in Chromium"
    facts = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert facts["overflowing"] == [], f"cut off at {width}px: {facts['overflowing']}"
    assert facts["internal_broken"] == []
    assert facts["message_pages"] > 0
    assert facts["external"], "the demo links conversations to the Intercom inbox"
    for href in facts["external"]:
        assert INBOX_LINK.match(href), f"unexpected link {href!r}"


def test_content_security_policy_blocks_scripts(demo_pack: Path, tmp_path: Path) -> None:
    html = (demo_pack / "report.html").read_text(encoding="utf-8")
    assert "default-src 'none'" in html
    page = tmp_path / "with-csp.html"
    page.write_text(
        html.replace("</head>", f"<script>{PROBE}</script></head>", 1), encoding="utf-8"
    )
    dom = chromium(["--virtual-time-budget=3000", "--dump-dom", page.as_uri()], tmp_path)
    assert "<h1" in dom  # the document itself rendered
    assert not PROBE_OUTPUT.search(dom), "an inline script ran despite the report's CSP"


def test_screenshot_renders(demo_pack: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(
        ["--window-size=1280,2000", f"--screenshot={shot}", (demo_pack / "report.html").as_uri()],
        tmp_path,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a blank page compresses to a few KB
