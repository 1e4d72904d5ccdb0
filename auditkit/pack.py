"""Evidence pack on disk: staged atomic writes, the hashed manifest, and verification.

A pack is written into a temporary sibling folder (owner-only) and renamed over its final
place only once every file and the manifest exist, so a reader never sees half a pack. The
manifest lists every file with size and SHA-256 and is deterministic (sorted keys, data
times only), so two runs over the same store give identical bytes.
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
from pathlib import Path
from typing import Any

from auditkit.errors import PackVerificationError, ReportError

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "auditkit-evidence-pack/1"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _pack_files(pack_dir: Path) -> list[str]:
    """Every regular file under the pack (relative POSIX paths), the manifest excluded."""
    out = []
    for path in sorted(pack_dir.rglob("*")):
        rel = path.relative_to(pack_dir).as_posix()
        if rel == MANIFEST_NAME:
            continue
        if path.is_file() or path.is_symlink():
            out.append(rel)
    return out


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(pack_dir: Path, meta: Mapping[str, Any]) -> str:
    """Hash every file in `pack_dir`, write manifest.json last; returns the manifest's SHA-256."""
    files = [
        {"path": rel, "size": (pack_dir / rel).stat().st_size, "sha256": file_sha256(pack_dir / rel)}
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


@contextmanager
def staged_pack_dir(out_dir: Path) -> Iterator[Path]:
    """Yield an empty owner-only folder next to `out_dir`; on success it replaces `out_dir`.

    On any exception the staging folder is removed and `out_dir` is left as it was. An
    existing `out_dir` is replaced only if it is empty or looks like a pack (has a
    manifest), so a mistyped --out can never delete unrelated files.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ReportError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
            raise ReportError(
                f"{out_dir} exists and is not an evidence pack (no {MANIFEST_NAME}); "
                "refusing to replace it: choose an empty or new folder"
            )
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove_abandoned_stages(parent, out_dir.name)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=parent))  # created 0o700
    except OSError as exc:
        raise ReportError(f"cannot create a pack folder next to {out_dir}: {exc.strerror}") from exc
    try:
        try:
            yield stage
            for path in stage.rglob("*"):
                os.chmod(path, 0o700 if path.is_dir() else 0o600)
            os.chmod(stage, 0o700)
        except OSError as exc:  # disk full, quota, permissions: the pack fails as a whole
            raise ReportError(f"cannot write the pack next to {out_dir}: {exc.strerror or exc}") from exc
        _swap_into_place(stage, out_dir.resolve())
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
    old = None
    try:
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-{os.getpid()}-", dir=out_dir.parent))
            os.rmdir(old)
            os.rename(out_dir, old)
        os.rename(stage, out_dir)
    except OSError as exc:
        if old is not None and old.exists() and not out_dir.exists():
            os.rename(old, out_dir)  # put the previous pack back
        raise ReportError(f"cannot move the new pack into {out_dir}: {exc.strerror}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class VerifyResult:
    """What `verify_pack` found: files altered, added or removed relative to the manifest."""

    pack_dir: Path
    checked: int = 0
    altered: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # manifest missing or unreadable
    manifest_sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.altered or self.added or self.removed or self.errors)

    def problems(self) -> list[str]:
        return (
            list(self.errors)
            + [f"altered: {p}" for p in self.altered]
            + [f"added: {p}" for p in self.added]
            + [f"removed: {p}" for p in self.removed]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pack": str(self.pack_dir), "ok": self.ok, "checked": self.checked,
            "altered": list(self.altered), "added": list(self.added), "removed": list(self.removed),
            "errors": list(self.errors), "manifest_sha256": self.manifest_sha256,
            "period": self.meta.get("period"), "store_snapshot_digest": self.meta.get("store_snapshot_digest"),
        }

    def raise_for_problems(self) -> None:
        if not self.ok:
            raise PackVerificationError(
                f"pack {self.pack_dir} does not match its manifest: " + "; ".join(self.problems())
            )


def verify_pack(pack_dir: Path | str) -> VerifyResult:
    """Re-hash every file and compare with manifest.json. Never raises for a mismatch: the
    result names every altered, added and removed file (`raise_for_problems()` to raise)."""
    pack_dir = Path(pack_dir)
    manifest_path = pack_dir / MANIFEST_NAME
    if not pack_dir.is_dir():
        return VerifyResult(pack_dir, errors=(f"{pack_dir} is not a folder",))
    try:
        data = manifest_path.read_bytes()
        manifest = json.loads(data)
        entries = {e["path"]: e for e in manifest["files"]}
    except FileNotFoundError:
        return VerifyResult(pack_dir, errors=(f"{MANIFEST_NAME} is missing",), added=tuple(_pack_files(pack_dir)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return VerifyResult(pack_dir, errors=(f"{MANIFEST_NAME} is unreadable: {exc}",))
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
    meta = {k: v for k, v in manifest.items() if k != "files"}
    result = VerifyResult(
        pack_dir, checked=len(entries), altered=tuple(sorted(set(altered))), added=tuple(added),
        removed=tuple(removed), manifest_sha256=hashlib.sha256(data).hexdigest(), meta=meta,
    )
    logger.info("verified %s: %s", pack_dir, "ok" if result.ok else "; ".join(result.problems()))
    return result
