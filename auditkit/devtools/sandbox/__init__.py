"""A local double of the MultiMail and Intercom APIs on 127.0.0.1, serving a sample dataset.

`SandboxServer(data_dir)` serves the files `auditkit.sample` writes: MultiMail under `/v1`
and Intercom's `/me` and `/conversations/{id}` on the same host (a second, EU workspace under
`/eu/me` and `/eu/conversations/{id}` with its own token), with bearer-token checks,
the real paging quirks (timestamp cursors whose boundary items repeat, an opaque audit-log
cursor), scripted faults (`faults.add(...)`), random failures (`fail_rate`), per-request
latency and a request log for assertions. The harvester never needs it; tests, the demo
and benchmarks do.

Large JSONL files are indexed once at start (offsets and a few sort fields) and records
are read back with `os.pread`, so a 1M-message set does not sit in memory as objects.

Modules: `server` (SandboxServer: lifecycle, mutations, dispatch), `base` (the dataset as
loaded), `index` (JSONL offsets and sort fields), `multimail` and `intercom` (the routes of
each API), `faults` (scripted failures), `request_log`, `handler` (HTTP).
"""

from auditkit.devtools.sandbox.faults import FAULT_KINDS, Fault, FaultPlan
from auditkit.devtools.sandbox.request_log import LoggedRequest, RequestLog
from auditkit.devtools.sandbox.server import SandboxServer

__all__ = ["FAULT_KINDS", "Fault", "FaultPlan", "LoggedRequest", "RequestLog", "SandboxServer"]
