"""The one error tree of auditkit. Library code raises these; only the CLI maps them to exit codes.

    AuditkitError                 exit 1   anything handled that has no better class
    ├── ConfigError               exit 3   missing or invalid setting, secret or input file
    │   └── UsageError            exit 2   a command-line argument is wrong (period, id, range)
    ├── SourceError               exit 4   upstream API: auth, retries exhausted, unusable payload
    │   ├── SourceAuthError       exit 4   401/403 (wrong key, missing scope, WAF block)
    │   └── RetriesExhaustedError exit 4   429/5xx/connection errors outlasted the retry budget
    ├── StoreError                exit 5   DuckDB file locked, corrupt, or a migration failed
    │   └── StoreInUseError       exit 5   another auditkit process holds the store
    ├── ReportError               exit 6   template, PDF or CSV rendering, or writing the pack
    │   └── ExportError           exit 6   `export`: the Iceberg catalog or its files failed
    ├── PackVerificationError     exit 7   `verify` found a pack file altered, added or removed
    ├── RunLockedError            exit 8   another scheduled run holds the run lock
    └── NothingToDoError          exit 9   the command ran but found nothing to work on

Exit 130 means interrupted (Ctrl-C): the store is consistent and a rerun continues.

Exit codes 10 and 11 are not errors: `check` and `run` return 10 ("controls failed") when
the tool worked and the evidence shows failing controls, and 11 ("inconclusive") when none
failed but a control at or above --fail-on could not reach a verdict, so compliance is not
established (`findings.verdict_exit_code` decides).
"""

from __future__ import annotations

EXIT_CONTROLS_FAILED = 10
EXIT_INCONCLUSIVE = 11
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
# An error line quotes what it is about (a path, a parser's complaint about a file's bytes);
# it stays one readable line however hostile the input.
MAX_MESSAGE_CHARS = 500


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` with control and other unprintable characters escaped, cut to `limit`."""
    flat = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class AuditkitError(Exception):
    """Base class: a failure auditkit understands and can explain in one line."""

    exit_code = 1


class ConfigError(AuditkitError):
    """A setting, secret or option value is missing or invalid."""

    exit_code = 3


class UsageError(ConfigError):
    """A command-line argument is wrong: a bad period or date range, an unknown control or
    message id, options that exclude each other. Exit 2, like click's own usage errors."""

    exit_code = 2


class SourceError(AuditkitError):
    """An upstream API (MultiMail, Intercom) failed in a way retries cannot fix."""

    exit_code = 4
    # The HTTP status that said so, when an answer did (a caller may tell 403 from 404).
    http_status: int | None = None


class SourceAuthError(SourceError):
    """The API refused the credentials (401) or the scope (403)."""


class RetriesExhaustedError(SourceError):
    """Retryable failures (429, 5xx, connection errors) outlasted the retry budget."""


class StoreError(AuditkitError):
    """The DuckDB store could not be opened, migrated or written."""

    exit_code = 5


class StoreInUseError(StoreError):
    """Another process has the store open for writing."""


class ReportError(AuditkitError):
    """An evidence pack could not be rendered or written."""

    exit_code = 6


class PackVerificationError(AuditkitError):
    """A pack on disk does not match its manifest."""

    exit_code = 7


class RunLockedError(AuditkitError):
    """Another scheduled run is in progress for this store."""

    exit_code = 8


class NothingToDoError(AuditkitError):
    """The command worked but found nothing to work on (an import with no usable record, an
    archive with no message, a period with no outbound mail): never a silent success."""

    exit_code = 9


class ExportError(ReportError):
    """An export to an Iceberg catalog failed: the catalog cannot be reached, refuses the
    commit, or a table's files cannot be written. Tables committed before it stay
    committed; a rerun finishes the rest."""
