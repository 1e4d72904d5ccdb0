"""Packaging: the sample quarter ships inside the wheel, and `auditkit demo` runs from an
install that cannot see this checkout.

The sample data has one copy, the top-level `sample_data/`; the package reaches it through
the symlink `auditkit/devtools/sample_data`, and building a wheel copies the files the
symlink points at (setuptools follows it; the slow test below checks every file arrives).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_DATA

PACKAGED = ROOT / "auditkit" / "devtools" / "sample_data"


def run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr}"
    return result


def sample_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_the_package_reaches_the_top_level_sample_data() -> None:
    from auditkit.devtools import bundled_sample_data

    assert SAMPLE_DATA.is_dir() and not SAMPLE_DATA.is_symlink(), "sample_data/ is the copy"
    assert PACKAGED.is_symlink() and os.readlink(PACKAGED) == "../../sample_data"
    assert bundled_sample_data() == SAMPLE_DATA.resolve()


# Allowed to use the fixtures: the `sandbox` and `demo` commands (and the run they share).
MAY_IMPORT_DEVTOOLS = (
    "auditkit.devtools",
    "auditkit.cli",
    "auditkit.pipeline",
    "auditkit.__main__",
)


def test_production_modules_do_not_import_devtools() -> None:
    names = []
    for path in sorted((ROOT / "auditkit").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith(MAY_IMPORT_DEVTOOLS):
            names.append(name)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('auditkit.devtools')))\n"
    )
    result = run([sys.executable, "-c", code], cwd=ROOT)
    assert len(names) > 20 and result.stdout.strip() == "[]", result.stdout


@pytest.mark.slow
@pytest.mark.wheel
def test_the_installed_wheel_runs_the_demo_from_its_own_sample_data(tmp_path: Path) -> None:
    # Build from a copy, so the checkout gets no build/ or *.egg-info. The build backend
    # comes from the package index, as for any `pip install` of the project.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(SAMPLE_DATA, src / "sample_data")
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "auditkit", src / "auditkit", symlinks=True, ignore=skip)
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "-w", dist, "-q"])
    (wheel,) = dist.glob("auditkit-*.whl")
    prefix = "auditkit/devtools/sample_data/"
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n[len(prefix) :] for n in zf.namelist() if n.startswith(prefix)}
    assert shipped == sample_files(SAMPLE_DATA)
    # The demo signs with the bundled TEST-ONLY key: it and its certificates ship too.
    signing = ROOT / "auditkit" / "devtools" / "demo_signing"
    with zipfile.ZipFile(wheel) as zf:
        bundled = {n for n in zf.namelist() if n.startswith("auditkit/devtools/demo_signing/")}
    assert bundled == {f"auditkit/devtools/demo_signing/{p.name}" for p in signing.iterdir()}

    # A fresh venv with the wheel installed, then given this environment's dependencies
    # (its site-packages as plain path entries: no .pth there runs, so an editable install
    # of this checkout stays invisible). Installed first, so pip does not see this
    # environment's auditkit as already installed.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel])
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    deps = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (Path(purelib.stdout.strip()) / "_auditkit_test_deps.pth").write_text("\n".join(deps) + "\n")

    work = tmp_path / "work"  # cwd outside the repository, nothing on PYTHONPATH
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    where = run([python, "-c", "import auditkit; print(auditkit.__file__)"], cwd=work, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

    auditkit = venv / "bin" / "auditkit"
    demo = run([auditkit, "demo", "--out", work / "pack"], cwd=work, env=env)
    for name in (
        "report.pdf",
        "report.html",
        "findings.csv",
        "messages.csv",
        "manifest.json",
        "manifest.json.tsr",
    ):
        assert (work / "pack" / name).stat().st_size > 0, name
    assert "signed:  report.pdf, PAdES-B-T, by O=auditkit TEST ONLY," in demo.stdout
    assert "bundled TEST-ONLY key" in demo.stdout
    # The CA the demo names for --trust is the wheel's copy.
    ca = Path(demo.stdout.split("--trust ", 1)[1].split(" ", 1)[0])
    assert ca.is_relative_to(venv) and ca.name == "TEST-ONLY-ca.pem", ca
    # The archive the demo verified is the wheel's copy, not this checkout's.
    findings = (work / "pack" / "findings.csv").read_text(encoding="utf-8")
    assert f"{venv}/lib/" in findings and "/auditkit/devtools/sample_data/archive/" in findings
    assert str(ROOT / "sample_data") not in findings
    verified = run([auditkit, "verify", work / "pack"], cwd=work, env=env)
    assert "report.pdf: signed by O=auditkit TEST ONLY,CN=auditkit demo signer" in verified.stdout
    assert "manifest.json.tsr: manifest.json timestamped " in verified.stdout
    assert verified.stdout.splitlines()[-1].startswith("TEST ONLY: ")
    trusted = run([auditkit, "verify", work / "pack", "--trust", ca], cwd=work, env=env)
    assert "trusted only because --trust names a test CA" in trusted.stdout
