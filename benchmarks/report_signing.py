"""The report benchmark's measurement steps for what the evidence costs beyond rendering:
attaching the CSV ledgers to the PDF/A-3, and signing + timestamping it.

`report_bench` calls `measure()` once its unsigned 1M-message pack is written, and prints
`markdown()` under its section. Each step runs in a fresh process, measured from outside
(wall time, and CPU time and peak RSS from `os.wait4`: the largest of the process and the
children it waited for, as `report_bench` measures the pack):

1. attach: the pack's four CSVs deflated and appended as associated files to a freshly
   rendered one-page PDF/A-3 (`deflate_ledger` + `append_ledgers`, what `write_pack` does
   after rendering). What it costs depends on the CSVs, not on the report they go into.
2. sign: a copy of the pack's report.pdf (CSVs inside) given a document timestamp and a
   PAdES-B-T signature, then manifest.json timestamped (`PackSigner.sign_pack` and
   `timestamp_manifest`, as `report --sign-key --sign-cert --tsa-url` does).
3. signed pack: the whole pack written again by `write_pack` with that signer, end to end:
   the figure the < 60 s / < 1.5 GB target is about when a pack is signed.

The time-stamping authority is `auditkit.devtools.tsa.TsaServer` on 127.0.0.1 in this
(parent) process, so its work is not counted in the measured ones, as a remote TSA's would
not be; the key is the bundled TEST-ONLY one (RSA 2048).

    python -m benchmarks.report_signing --child {attach,sign,pack} ...   (internal)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AS_OF = datetime(2026, 10, 1, tzinfo=UTC)
MB = 1e6


@dataclass
class Step:
    """One measured child process."""

    name: str
    wall: float
    cpu: float
    peak_rss_mb: float  # os.wait4: the largest of it and its children, floored (see _self_rss_mb)
    load_before: tuple[float, float, float]
    report: dict[str, Any] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)


def _run(name: str, args: list[str], work: Path) -> Step:
    """Run `python -m benchmarks.report_signing --child ...` and measure it from outside."""
    load = os.getloadavg()
    out, err = work / f"{name}.stdout", work / f"{name}.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.report_signing", "--child", *args],
            stdout=stdout,
            stderr=stderr,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    log = err.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{name} step failed (exit {proc.returncode}):\n{log[-3000:]}")
    return Step(
        name=name,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss * 1024 / MB,  # Linux: KiB
        load_before=load,
        report=json.loads(out.read_text(encoding="utf-8").strip().splitlines()[-1]),
        phases=[
            line.split("auditkit.report: ", 1)[1]
            for line in log.splitlines()
            if "auditkit.report: pack: " in line
        ],
    )


def _self_rss_mb() -> float:
    """This process's own peak RSS since it started (VmHWM). Not ru_maxrss: on Linux a
    child's ru_maxrss starts at its parent's RSS when it was forked (here the benchmark's,
    holding the synthesised store), which would hide a smaller step's real peak."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def attach_child(pack: Path, work: Path) -> dict[str, Any]:
    """Step 1, in the measured process: render a one-page PDF/A-3, then attach the CSVs."""
    from auditkit.report import CSV_DESCRIPTIONS, CSV_FILES
    from auditkit.report.pdf import render_pdf
    from auditkit.report.pdf_attach import append_ledgers, deflate_ledger

    target = work / "attach.pdf"
    html = "<html><head><title>attach</title></head><body><p>benchmark</p></body></html>"
    revision = render_pdf(html, target, as_of=AS_OF)
    rendered_bytes, rss_before, cpu0 = target.stat().st_size, _self_rss_mb(), _cpu()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".ledgers-", dir=work) as scratch:
        ledgers = [
            deflate_ledger(pack / name, Path(scratch), CSV_DESCRIPTIONS[name]) for name in CSV_FILES
        ]
        t1 = time.perf_counter()
        append_ledgers(target, revision, ledgers, when=AS_OF)
    t2 = time.perf_counter()
    return {
        "deflate_s": t1 - t0,
        "append_s": t2 - t1,
        "seconds": t2 - t0,
        "cpu_s": _cpu() - cpu0,
        "rss_before_mb": rss_before,
        "rss_after_mb": _self_rss_mb(),
        "csv_mb": sum((pack / n).stat().st_size for n in CSV_FILES) / MB,
        "attached_mb": (target.stat().st_size - rendered_bytes) / MB,
    }


def _signer(tsa_url: str) -> Any:
    from auditkit.devtools.tsa import demo_pki
    from auditkit.signing.settings import SigningOptions
    from auditkit.signing.sign import PackSigner

    pki = demo_pki()
    return PackSigner.load(
        SigningOptions(key_file=pki.signer_key, cert_file=pki.signer_cert, tsa_url=tsa_url)
    )


def sign_child(pack: Path, work: Path, tsa_url: str) -> dict[str, Any]:
    """Step 2, in the measured process: sign and timestamp a copy of the pack's PDF."""
    folder = work / "signed-copy"
    folder.mkdir()
    for name in ("report.pdf", "manifest.json"):
        shutil.copyfile(pack / name, folder / name)
    signer = _signer(tsa_url)  # pyHanko imported and the key loaded: not part of the cost
    rss_before, cpu0 = _self_rss_mb(), _cpu()
    t0 = time.perf_counter()
    signer.sign_pack(folder)
    t1 = time.perf_counter()
    signer.timestamp_manifest(folder)
    t2 = time.perf_counter()
    return {
        "sign_pdf_s": t1 - t0,
        "manifest_s": t2 - t1,
        "seconds": t2 - t0,
        "cpu_s": _cpu() - cpu0,
        "rss_before_mb": rss_before,
        "rss_after_mb": _self_rss_mb(),
        "pdf_mb": (pack / "report.pdf").stat().st_size / MB,
        "appended_bytes": (folder / "report.pdf").stat().st_size
        - (pack / "report.pdf").stat().st_size,
    }


def signed_pack_child(db: Path, out: Path, findings: int, tsa_url: str) -> dict[str, Any]:
    """Step 3, in the measured process: the whole pack, signed and timestamped."""
    from auditkit.findings import parse_period
    from auditkit.report import write_pack
    from auditkit.store import Store
    from benchmarks.report_bench import SETTINGS, synthetic_results

    signer = _signer(tsa_url)
    with Store(db, read_only=True) as store:
        results = synthetic_results(store, findings)
        t0 = time.perf_counter()
        write_pack(store, SETTINGS, parse_period("2026Q3"), out, results=results, signer=signer)
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "report_pdf_mb": (out / "report.pdf").stat().st_size / MB,
        "rss_after_mb": _self_rss_mb(),
    }


def measure(db: Path, pack: Path, work: Path, findings: int) -> list[Step]:
    """The three steps, against the unsigned pack `report_bench` wrote into `pack`."""
    from auditkit.devtools.tsa import TsaServer, demo_pki

    pki = demo_pki()
    steps = [_run("attach", ["attach", str(pack), str(work)], work)]
    with TsaServer(pki.tsa_cert, pki.tsa_key) as tsa:
        steps.append(_run("sign", ["sign", str(pack), str(work), tsa.url], work))
        steps.append(
            _run(
                "pack",
                ["pack", str(db), str(work / "signed-pack"), tsa.url, "--findings", str(findings)],
                work,
            )
        )
    return steps


def _load(step: Step) -> str:
    return "/".join(f"{x:.1f}" for x in step.load_before)


def markdown(steps: list[Step]) -> str:
    """The subsection `report_bench` prints under its own."""
    by = {s.name: s for s in steps}
    attach, sign, pack = by["attach"], by["sign"], by["pack"]
    a, g, p = attach.report, sign.report, pack.report
    # "pack: <phase> after 12.3s (CPU 4.5s)": the elapsed seconds, with or without the CPU.
    phase = {
        m.group(1): float(m.group(2))
        for line in pack.phases
        if (m := re.match(r"(?:pack: )?(.+?) after ([\d.]+)s", line))
    }
    signing_in_pack = phase.get("signed", 0.0) - phase.get("CSVs attached", 0.0)
    rows = [
        "### PDF/A-3 attaching and signing",
        "",
        "Each step is a fresh process: wall and CPU time of the step itself, the process's "
        "own peak RSS (VmHWM) and the load average (1, 5, 15 min) when it started. The TSA is "
        "a local `TsaServer` in the benchmark's own process; the key is the bundled TEST-ONLY "
        "one.",
        "",
        "| step | wall | CPU | peak RSS | load | target |",
        "|---|---|---|---|---|---|",
        f"| attach: deflate {a['csv_mb']:,.0f} MB of CSV into {a['attached_mb']:,.0f} MB of "
        f"associated files and append them (deflate {a['deflate_s']:.1f} s + append "
        f"{a['append_s']:.1f} s) | {a['seconds']:.1f} s | {a['cpu_s']:.1f} s | "
        f"{a['rss_after_mb']:,.0f} MB (before attaching: {a['rss_before_mb']:,.0f} MB) | "
        f"{_load(attach)} | |",
        f"| sign: document timestamp + PAdES-B-T signature of the {g['pdf_mb']:,.0f} MB "
        f"report.pdf ({g['sign_pdf_s']:.1f} s) + manifest.json timestamp "
        f"({g['manifest_s']:.2f} s) | {g['seconds']:.1f} s | {g['cpu_s']:.1f} s | "
        f"{g['rss_after_mb']:,.0f} MB (before signing: {g['rss_before_mb']:,.0f} MB) | "
        f"{_load(sign)} | |",
        f"| whole signed pack, `write_pack` with a signer (signing inside it: "
        f"{signing_in_pack:.1f} s) | {p['seconds']:.1f} s | {pack.cpu:.1f} s (process and "
        f"PDF renderer) | {p['rss_after_mb']:,.0f} MB (largest process incl. the PDF renderer: "
        f"{pack.peak_rss_mb:,.0f} MB) | {_load(pack)} | < 60 s, < 1,500 MB |",
        "",
        "Phases of the signed pack (elapsed inside `write_pack`): "
        + "; ".join(line.removeprefix("pack: ") for line in pack.phases)
        + ".",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--child", nargs="+", required=True)
    parser.add_argument("--findings", type=int, default=3_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    kind, *rest = args.child
    if kind == "attach":
        report = attach_child(Path(rest[0]), Path(rest[1]))
    elif kind == "sign":
        report = sign_child(Path(rest[0]), Path(rest[1]), rest[2])
    elif kind == "pack":
        report = signed_pack_child(Path(rest[0]), Path(rest[1]), args.findings, rest[2])
    else:
        raise SystemExit(f"unknown step {kind}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
