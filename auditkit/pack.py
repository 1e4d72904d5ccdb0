"""Evidence pack on disk: staged atomic writes, the hashed manifest, and verification.

A pack is written into a temporary sibling folder (owner-only) and renamed over its final
place only once every file and the manifest exist, so a reader never sees half a pack. The
manifest lists every file with size and SHA-256 and is deterministic (sorted keys, data
times only), so two runs over the same store give identical bytes.

Replacing a folder never costs the user a file auditkit did not write: an existing folder
is replaced only when it is empty, or when its manifest.json is an auditkit manifest and
the folder holds exactly the files that manifest lists (`check_replaceable`). Anything else
(an auditor's notes.txt in a pack, an unrelated folder that happens to have a
manifest.json) is refused with a ReportError naming the files, before the pack is built
and again right before the rename.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from auditkit.errors import ConfigError, PackVerificationError, ReportError
from auditkit.signing.settings import MANIFEST_TSR, PDF_NAME, Trust

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "auditkit-evidence-pack/1"
# MANIFEST_TSR (manifest.json.tsr), the RFC 3161 token over manifest.json in a signed pack,
# is the manifest's companion: never listed in it, never an "added" file.
_CHUNK = 1 << 20
# How many unexpected names a refusal quotes; the rest are counted, so the error stays one line.
_NAMES_SHOWN = 10


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _pack_files(pack_dir: Path) -> list[str]:
    """Every regular file under the pack (relative POSIX paths), the manifest and its
    timestamp excluded."""
    out = []
    for path in sorted(pack_dir.rglob("*")):
        rel = path.relative_to(pack_dir).as_posix()
        if rel in (MANIFEST_NAME, MANIFEST_TSR):
            continue
        if path.is_file() or path.is_symlink():
            out.append(rel)
    return out


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(
        "utf-8"
    )


def write_manifest(pack_dir: Path, meta: Mapping[str, Any]) -> str:
    """Hash every file in `pack_dir`, write manifest.json last; returns the manifest's SHA-256."""
    files = [
        {
            "path": rel,
            "size": (pack_dir / rel).stat().st_size,
            "sha256": file_sha256(pack_dir / rel),
        }
        for rel in _pack_files(pack_dir)
    ]
    manifest = {"format": MANIFEST_FORMAT, **meta, "files": files}
    data = manifest_bytes(manifest)
    _write_owner_only(pack_dir / MANIFEST_NAME, data)
    return hashlib.sha256(data).hexdigest()


def _write_owner_only(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class _NotAPack(Exception):
    """The folder has no manifest.json that auditkit wrote; the message says why, as a phrase."""


def _read_auditkit_manifest(pack_dir: Path) -> tuple[dict[str, Any], bytes]:
    """The folder's manifest (parsed, and its bytes) if auditkit wrote it, else `_NotAPack`.

    "Auditkit wrote it" means: a JSON object whose `format` is MANIFEST_FORMAT. Any file
    may be called manifest.json, so the name alone proves nothing.
    """
    path = pack_dir / MANIFEST_NAME
    if not path.is_file():  # also keeps a FIFO called manifest.json from blocking the read
        raise _NotAPack(
            f"its {MANIFEST_NAME} is not a file" if path.exists() else f"it has no {MANIFEST_NAME}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _NotAPack(f"its {MANIFEST_NAME} cannot be read ({exc.strerror})") from exc
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or absurdly nested
        raise _NotAPack(f"its {MANIFEST_NAME} is not an auditkit manifest (not JSON)") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise _NotAPack(
            f"its {MANIFEST_NAME} is not an auditkit manifest (no format {MANIFEST_FORMAT!r})"
        )
    return manifest, data


def _manifest_entries(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """path → entry of the manifest's file list; ValueError when the list is malformed."""
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("path"), str) for entry in files
    ):
        raise ValueError(f"{MANIFEST_NAME} has no readable list of files")
    return {entry["path"]: entry for entry in files}


def _unexpected_entries(folder: Path, expected: set[str]) -> list[str]:
    """Everything under `folder` that is not in `expected` (relative POSIX paths), sorted.

    Folders on the way to an expected file are walked; any other folder is one unexpected
    entry, named with a trailing "/" (all it holds goes with it). Symlinks are never
    followed, and special files count like any other: nothing is ignored.
    """
    wanted_dirs = {str(parent) for rel in expected for parent in PurePosixPath(rel).parents} - {"."}
    unexpected: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if rel in wanted_dirs:
                        walk(Path(entry.path), rel + "/")
                    else:
                        unexpected.append(rel + "/")
                elif rel not in expected:
                    unexpected.append(rel)

    walk(folder, "")
    return sorted(unexpected)


def check_replaceable(out_dir: Path | str) -> None:
    """Raise ReportError unless a new pack may replace `out_dir`.

    It may when `out_dir` does not exist, is an empty folder, or is an auditkit pack
    holding exactly the files its manifest lists (missing ones are fine: nothing of the
    user's is lost). Anything else holds something auditkit did not write, and deleting it
    would cost the user; the error names it, so they can move it or pick another folder.
    Cheap (one directory walk, one small JSON file), so callers run it before a long build.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ReportError(f"{out_dir} exists and is not a folder; choose another --out")
    reason = ""
    try:
        try:
            manifest, _ = _read_auditkit_manifest(out_dir)
            expected = {MANIFEST_NAME, MANIFEST_TSR, *_manifest_entries(manifest)}
        except (_NotAPack, ValueError) as exc:
            # Without a manifest auditkit wrote, every file in the folder is someone else's.
            expected = set()
            if (out_dir / MANIFEST_NAME).exists():  # say why this manifest.json does not count
                reason = str(exc)
        unexpected = _unexpected_entries(out_dir, expected)
    except OSError as exc:
        raise ReportError(
            f"cannot look inside {out_dir} ({exc.strerror}); refusing to replace it"
        ) from exc
    if not unexpected:
        return
    names = ", ".join(unexpected[:_NAMES_SHOWN])
    if len(unexpected) > _NAMES_SHOWN:
        names += f" and {len(unexpected) - _NAMES_SHOWN} more"
    raise ReportError(
        f"{out_dir} holds files auditkit did not write ({names})"
        + (f" and {reason}" if reason else "")
        + "; move them or choose another --out"
    )


@contextmanager
def staged_pack_dir(out_dir: Path) -> Iterator[Path]:
    """Yield an empty owner-only folder next to `out_dir`; on success it replaces `out_dir`.

    On any exception the staging folder is removed and `out_dir` is left as it was. An
    existing `out_dir` is replaced only if `check_replaceable` allows it, checked on entry
    (nothing is created when it refuses) and again right before the rename, since files
    may have been added while the pack was built.
    """
    out_dir = Path(out_dir)
    check_replaceable(out_dir)
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove_abandoned_stages(parent, out_dir.name)
        stage = Path(
            tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=parent)
        )  # created 0o700
    except OSError as exc:
        raise ReportError(f"cannot create a pack folder next to {out_dir}: {exc.strerror}") from exc
    try:
        try:
            yield stage
            for path in stage.rglob("*"):
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
            os.chmod(stage, 0o700)
        except OSError as exc:  # disk full, quota, permissions: the pack fails as a whole
            raise ReportError(
                f"cannot write the pack next to {out_dir}: {exc.strerror or exc}"
            ) from exc
        _swap_into_place(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _remove_abandoned_stages(parent: Path, name: str) -> None:
    """Delete staging folders that a killed earlier run left behind (they hold harvested mail).

    Staging folders carry the writer's pid; one whose process no longer exists is abandoned.
    """
    for pattern in (f".{name}.partial-*", f".{name}.old-*"):
        for leftover in parent.glob(pattern):
            pid_text = leftover.name.rsplit("-", 2)[-2] if leftover.name.count("-") >= 2 else ""
            if leftover.is_dir() and pid_text.isdigit() and not _process_exists(int(pid_text)):
                logger.warning("removing %s, left by an interrupted earlier run", leftover)
                shutil.rmtree(leftover, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _swap_into_place(stage: Path, out_dir: Path) -> None:
    # Again, right before replacing: an auditor may have added a file during a long build.
    check_replaceable(out_dir)
    target = out_dir.resolve()
    old = None
    try:
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent)
            )
            os.rmdir(old)
            os.rename(target, old)
        os.rename(stage, target)
    except OSError as exc:
        if old is not None and old.exists() and not target.exists():
            os.rename(old, target)  # put the previous pack back
        raise ReportError(f"cannot move the new pack into {out_dir}: {exc.strerror}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class VerifyResult:
    """What `verify_pack` found: files altered, added or removed relative to the manifest,
    and, for a signed pack, every signature and timestamp with what is wrong with them."""

    pack_dir: Path
    checked: int = 0
    altered: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # an auditkit manifest whose list of files is damaged
    manifest_sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    invalid: tuple[str, ...] = ()  # "<file>: what is wrong with its signature or timestamp"
    signatures: tuple[dict[str, Any], ...] = ()  # each signature and token found (signing.verify)
    signature_lines: tuple[str, ...] = ()  # the same, one human line each

    @property
    def ok(self) -> bool:
        return not (self.altered or self.added or self.removed or self.errors or self.invalid)

    def problems(self) -> list[str]:
        return (
            list(self.errors)
            + [f"altered: {p}" for p in self.altered]
            + [f"added: {p}" for p in self.added]
            + [f"removed: {p}" for p in self.removed]
            + [f"invalid: {p}" for p in self.invalid]
        )

    def summary(self) -> str:
        """For a pack that does not match: one line of counts. `verify` lists the files
        themselves, once, on stdout; its error line must not repeat them."""
        counts = [
            f"{len(paths)} {what}"
            for what, paths in (
                ("altered", self.altered),
                ("added", self.added),
                ("removed", self.removed),
                ("signature or timestamp problem(s)", self.invalid),
            )
            if paths
        ]
        if self.errors:
            counts.insert(0, f"{MANIFEST_NAME} damaged")
        return f"pack {self.pack_dir} does not match its manifest: " + ", ".join(counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pack": str(self.pack_dir),
            "ok": self.ok,
            "checked": self.checked,
            "altered": list(self.altered),
            "added": list(self.added),
            "removed": list(self.removed),
            "errors": list(self.errors),
            "invalid": list(self.invalid),
            "signatures": list(self.signatures),
            "manifest_sha256": self.manifest_sha256,
            "period": self.meta.get("period"),
            "store_snapshot_digest": self.meta.get("store_snapshot_digest"),
        }

    def raise_for_problems(self, *, name_files: bool = True) -> None:
        """PackVerificationError (exit 7) unless the pack matches. `name_files=False` gives
        only the counts, for a caller that has already shown the list."""
        if self.ok:
            return
        if not name_files:
            raise PackVerificationError(self.summary())
        raise PackVerificationError(
            f"pack {self.pack_dir} does not match its manifest: " + "; ".join(self.problems())
        )


def _is_signed(pack_dir: Path, meta: Mapping[str, Any]) -> bool:
    """Whether there is a signature or timestamp to check (cheap: no PDF parsing)."""
    if meta.get("signing") or (pack_dir / MANIFEST_TSR).exists():
        return True
    pdf = pack_dir / PDF_NAME
    if not pdf.is_file():
        return False
    with pdf.open("rb") as fh:  # a signature dictionary's /ByteRange, in the last revisions
        fh.seek(max(0, pdf.stat().st_size - (1 << 20)))
        return b"/ByteRange" in fh.read()


def verify_pack(pack_dir: Path | str, *, trust: Trust | None = None) -> VerifyResult:
    """Re-hash every file and compare with manifest.json; for a signed pack also check
    report.pdf's signatures and timestamps and manifest.json.tsr (`signing.verify`), against
    `trust` when given. Never raises for a mismatch: the result names every altered, added,
    removed and invalid file (`raise_for_problems()` to raise).

    A path that is not a pack at all (missing, not a folder, no manifest.json, or a
    manifest.json auditkit did not write) raises ConfigError: that is a wrong argument,
    not evidence of tampering (exit 3, not 7). A manifest.json that no longer reads as
    auditkit's but that manifest.json.tsr shows was changed is tampering (exit 7).
    """
    pack_dir = Path(pack_dir)
    if not pack_dir.is_dir():
        what = "does not exist" if not pack_dir.exists() else "is not a folder"
        raise ConfigError(f"{pack_dir} {what}; give the folder of an evidence pack")
    try:
        manifest, data = _read_auditkit_manifest(pack_dir)
    except _NotAPack as exc:
        if (changed := _timestamped_manifest_changed(pack_dir)) is not None:
            return VerifyResult(pack_dir, errors=(changed,))
        raise ConfigError(f"{pack_dir} is not an evidence pack: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    meta = {k: v for k, v in manifest.items() if k != "files"}
    try:
        entries = _manifest_entries(manifest)
    except ValueError as exc:  # auditkit's format, but the list of files is gone or mangled
        return VerifyResult(pack_dir, errors=(str(exc),), manifest_sha256=digest, meta=meta)
    altered, removed = [], []
    for rel, entry in sorted(entries.items()):
        path = pack_dir / rel
        # A manifest path escaping the folder is itself tampering.
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            altered.append(MANIFEST_NAME)
            continue
        if not path.is_file():
            removed.append(rel)
        elif path.stat().st_size != entry.get("size") or file_sha256(path) != entry.get("sha256"):
            altered.append(rel)
    added = [rel for rel in _pack_files(pack_dir) if rel not in entries]
    signing: dict[str, Any] = {}
    if _is_signed(pack_dir, meta) or (trust is not None and trust.given):
        from auditkit.signing.verify import verify_signing  # imports pyHanko (~1 s)

        report = verify_signing(pack_dir, meta, data, trust or Trust())
        signing = {
            "invalid": tuple(report.problems),
            "signatures": tuple(report.checks),
            "signature_lines": tuple(report.lines()),
        }
    result = VerifyResult(
        pack_dir,
        checked=len(entries),
        altered=tuple(sorted(set(altered))),
        added=tuple(added),
        removed=tuple(removed),
        manifest_sha256=digest,
        meta=meta,
        **signing,
    )
    # Counts only: the caller shows the differences (logging them too would repeat them at -v).
    logger.info(
        "verified %s: %s",
        pack_dir,
        "ok" if result.ok else f"{len(result.problems())} difference(s)",
    )
    return result


def _timestamped_manifest_changed(pack_dir: Path) -> str | None:
    """For a manifest.json that no longer reads as auditkit's: the problem, when
    manifest.json.tsr holds a valid token over other bytes (so the manifest was changed)."""
    if not (pack_dir / MANIFEST_TSR).is_file() or not (pack_dir / MANIFEST_NAME).is_file():
        return None
    from auditkit.signing.verify import manifest_token_problem

    try:
        data = (pack_dir / MANIFEST_NAME).read_bytes()
    except OSError:
        return None
    return manifest_token_problem(pack_dir, data)
