"""The harvester: fetch MultiMail (and linked Intercom) records, normalise them, store them.

Every batch lands together with its cursor in one store transaction
(`Store.commit_batch`), so killing the process at any point and running again converges on
the same store as one clean run: a mailbox is listed in full until one listing of it
completes with every detail stored (after that, from the lookback window on, plus its
stored mail not final yet), the audit log's new entries are committed in one transaction,
and bad records go to quarantine instead of stopping the run. Stored audit entries are
evidence: a changed or vanished entry at the source becomes an integrity event, never an
overwrite. Compliance decisions belong to `auditkit.controls`, not here.

One module per stage, each given the store and the run's books (`RunRecorder`):

    run.py          harvest(): the stages in order, the run recorded in harvest_runs
    recorder.py     the run's books: counts, quarantine buffer, integrity events, failures
    account.py      account, API keys, domains, webhooks, suppressions, mailboxes, pending
    listing.py      what each mailbox listing asks for; the list-paging producer thread
    mailboxes.py    the mail: detail-read pool, batches of 2,000 rows with their cursor
    audit_log.py    the audit-log walk (its own thread) and the hash chain
    enrichment.py   Intercom conversations linked from the mail, per workspace
    file_import.py  `auditkit import`: saved read_email records from files
"""

from __future__ import annotations

from auditkit.harvest.file_import import import_emails, read_records_file
from auditkit.harvest.mailboxes import COMMIT_ROWS
from auditkit.harvest.recorder import HarvestResult, Progress, RunRecorder, new_run_id
from auditkit.harvest.run import harvest, require_api_key
from auditkit.store.digests import content_digest  # a store query; kept here for callers

__all__ = [
    "COMMIT_ROWS",
    "HarvestResult",
    "Progress",
    "RunRecorder",
    "content_digest",
    "harvest",
    "import_emails",
    "new_run_id",
    "read_records_file",
    "require_api_key",
]
