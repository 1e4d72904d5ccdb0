"""Development fixtures: the sample quarter, its generators and the local API double.

Nothing in the production path (harvest, store, controls, report, pack, config, sources,
archive, dkim) imports this package; only the `sandbox` and `demo` commands, tests and
benchmarks do.

| module | job |
|---|---|
| `sample_data` | symlink to the repository's `sample_data/`: package data, so a wheel has it |
| `sample/` | seeded generator of the sample quarter and of large benchmark sets |
| `archive_sample.py` | DKIM-signed sent-mail archive of the sample, with planted cases |
| `dialects/` | the sample rendered in other MultiMail dialects (same facts, other words) |
| `sandbox/` | local MultiMail + Intercom API double on 127.0.0.1, with fault injection |
| `tsa.py` | local RFC 3161 time-stamping authority with throwaway certificates (tests, demo) |
| `demo_signing/` | a TEST-ONLY signing key and certificates for the demo: never for real evidence |
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Parallel read_email calls in `auditkit demo`. Its sandbox runs in the demo's own process,
# so the server's threads and the harvest's readers share one GIL, and with no network
# latency to overlap more readers only contend for it. Measured on the sample quarter on 2
# cores: at the default 16 the whole demo took 25.8 s wall and 26.8 s CPU, at 2 it took
# 22.3 s and 23.3 s, with the same findings. Real APIs keep harvest.concurrency (16).
DEMO_CONCURRENCY = 2


def bundled_sample_data() -> Path:
    """The sample dataset shipped with this package, as `auditkit/devtools/sample_data`.

    Found through importlib.resources. In a git checkout or an editable install that is a
    symlink to the repository's top-level `sample_data/`, resolved here so paths (and the
    file names the demo's findings cite) are the top-level ones; in an installed wheel it
    is a real folder, since building the wheel copies the files the symlink points at.
    Either way it is a real directory the sandbox can read with `os.pread`; from a zipped
    import it would not exist, and callers report the sample data missing.
    """
    return Path(str(resources.files(__name__).joinpath("sample_data"))).resolve()
