"""CAN-SPAM controls (CS-*): postal address, opt-out, honouring opt-outs, subjects, From domain.

The content and subject rules (CS-001..CS-004) apply to commercial mail only, so they read
the primary-purpose label from `auditkit.classify`: transactional mail is out of scope, and
a failure on `mixed` mail becomes a `review` finding, because 16 CFR 316.3 needs a human
reading. CS-005 (header information, § 7704(a)(1)) applies to every sent message. Bodies
are the author's markdown as stored by MultiMail, plus the mailbox signature block and,
where the mailbox policy says MultiMail appends it, the account address; findings say so.
"""

from __future__ import annotations

# Each module registers its controls on import: `address` CS-001, `opt_out` CS-002 and
# CS-003, `headers` CS-004 and CS-005; `common` holds what they share.
from auditkit.controls.canspam import address, headers, opt_out  # noqa: F401
