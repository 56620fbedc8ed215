"""The restore protocol: fetch, verify, then place.

Every file is downloaded to a temp file beside its final path and hash-checked; only when all
of them pass is any moved into place (``os.replace``), so a damaged backup changes nothing and
raises an `IntegrityError` listing every bad file. Paths come from the manifest
and are checked (no ``..``, no absolute paths); folders are created one component at a time and
a symlink or file in the way is refused, so nothing is ever written outside the destination.
Stale SQLite ``-wal``/``-shm``/``-journal`` siblings are removed before a database is placed:
replayed onto a restored database they silently change or corrupt it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .crashpoints import crash_point
from .errors import (
    BackupNotFoundError,
    DestinationError,
    DestinationNotEmptyError,
    IntegrityError,
    MLBackupError,
    UnsafePathError,
)
from .manifest import Manifest
from .parallel import map_in_threads
from .progress import ProgressCallback, ProgressCounter
from .results import RestoreResult, RestoreStatus
from .sources import SQLITE_SIDECARS
from .target import MISSING, BackupTarget, DataLocation

__all__ = ["run_restore"]

log = logging.getLogger("mlbackup")


class _DamagedVersion(IntegrityError):
    """A version some of whose files read back missing or damaged."""

    def __init__(self, message: str, staged: list[_Staged]) -> None:
        super().__init__(message, [s.problem for s in staged if s.problem])
        #: The hashes not found, and those whose stored bytes read back wrong.
        self.missing = {s.location.entry.hash for s in staged if s.missing}
        self.damaged = {s.location.entry.hash for s in staged if not s.missing}


@dataclass
class _Staged:
    location: DataLocation
    final: Path
    temp: Path | None = None
    problem: str | None = None
    missing: bool = False  # the store had no object to read


def _check_destination(dest: Path, manifest: Manifest, overwrite: bool) -> None:
    if not os.path.lexists(dest):
        return
    is_dir = dest.is_dir()  # a symlink the user named as destination is followed, once
    if manifest.kind == "file" and is_dir:
        raise DestinationNotEmptyError(
            f"{dest} is a folder but {manifest.name!r} is a file; give a file path as destination"
        )
    if manifest.kind == "dir" and not is_dir:
        raise DestinationNotEmptyError(
            f"{dest} is a file but {manifest.name!r} is a folder; give a folder path as destination"
        )
    if overwrite:
        return
    if not is_dir or _has_entries(dest):
        raise DestinationNotEmptyError(
            f"{dest} already exists and is not empty; restore elsewhere or pass overwrite=True "
            "(--overwrite) to replace what the backup holds"
        )


def _safe_dir(root: Path, rel: str, created: list[Path]) -> Path:
    """Create ``root/rel`` one component at a time, refusing symlinks and files in the way."""
    current = root
    for part in rel.split("/") if rel else []:
        current = current / part
        try:
            st = current.lstat()
        except FileNotFoundError:
            current.mkdir()
            created.append(current)
            continue
        if not stat.S_ISDIR(st.st_mode):
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "a file"
            raise UnsafePathError(
                f"cannot restore into {current}: it is {what}, and a restore never writes "
                "through one; restore into an empty folder instead"
            )
    return current


def run_restore(
    target: BackupTarget,
    name: str,
    dest: Path,
    *,
    version: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> RestoreResult:
    """Restore ``name`` (newest or ``version``) so that it is *at* ``dest``.

    Without ``version``, a newest version that no longer restores whole (objects deleted
    behind mlbackup's back, a damaged manifest) is skipped for the newest one that does,
    which ``RestoreResult.skipped_versions`` and a warning name.
    """
    started = time.perf_counter()
    dest = Path(os.path.abspath(dest))
    if version is not None:
        return _restore_version(target, target.manifest(name, version), dest, overwrite, progress)
    versions = target.versions(name)
    problems: tuple[str, ...] = ()  # the newest version's, for the error if none restores
    skipped: list[int] = []
    retried: set[int] = set()
    damaged: set[str] = set()  # hashes whose stored bytes read back wrong
    try:
        manifest: Manifest | None = target.manifest(name)
    except IntegrityError as exc:  # the newest manifest itself is damaged
        problems, manifest = (str(exc).splitlines()[0],), None
    while True:
        if manifest is not None:
            try:
                result = _restore_version(target, manifest, dest, overwrite, progress)
            except _DamagedVersion as exc:
                problems = problems or exc.problems
                damaged |= exc.damaged
            else:
                if skipped:
                    log.warning(
                        "%s: restored version %d; skipped %s, not whole any more: %s",
                        name, manifest.version, _versions(skipped), "; ".join(problems[:5]),
                    )  # fmt: skip
                return dataclasses.replace(
                    result, skipped_versions=tuple(skipped), seconds=time.perf_counter() - started
                )
        failed = manifest.version if manifest is not None else versions[-1]
        # One listing says which bytes are really gone: a read that found nothing where the
        # listing shows the object was a store's spurious 404, and that version is read again.
        whole = target.stored_objects() - damaged
        candidates = [v for v in versions if v < failed or (v == failed and v not in retried)]
        retried.add(failed)
        manifest, passed = _newest_whole(target, name, candidates, whole)
        if manifest is None or manifest.version != failed:
            skipped.append(failed)
        skipped += [v for v in passed if v != failed]
        if manifest is None:
            raise IntegrityError(
                f"no version of backup {name!r} on {target.url} restores whole (checked "
                f"{_versions(skipped)}); nothing was restored. `mlbackup doctor` names what "
                "each lacks; back the data up again",
                problems,
            )


def _versions(versions: list[int]) -> str:
    return ("version " if len(versions) == 1 else "versions ") + ", ".join(map(str, versions))


def _newest_whole(
    target: BackupTarget, name: str, older: list[int], stored: set[str]
) -> tuple[Manifest | None, list[int]]:
    """The newest of ``older`` whose manifest reads and whose objects ``stored`` holds, and
    the newer ones passed over."""
    passed = []
    for version in reversed(older):
        try:
            manifest = target.read_manifest(name, version)
        except BackupNotFoundError:
            continue  # dropped by retention since the listing
        except IntegrityError:
            passed.append(version)
            continue
        if manifest.format_version == 1 or all(e.hash in stored for e in manifest.files):
            return manifest, passed  # format 1 keeps its bytes elsewhere: only a read tells
        passed.append(version)
    return None, passed


def _restore_version(
    target: BackupTarget,
    manifest: Manifest,
    dest: Path,
    overwrite: bool,
    progress: ProgressCallback | None,
) -> RestoreResult:
    started = time.perf_counter()
    name = manifest.name
    _check_destination(dest, manifest, overwrite)
    locations = target.locate(manifest)

    created: list[Path] = []
    staged: list[_Staged] = []
    placed = 0
    staging: Path | None = None
    try:
        if manifest.kind == "file":
            parent = dest.parent
            parent.mkdir(parents=True, exist_ok=True)
            staged = [_Staged(locations[0], dest)]
        else:
            build = dest
            if not os.path.lexists(dest):
                # A new folder is built beside its place and renamed there whole at the end: a
                # restore killed half-way leaves no folder at all, so the next
                # restore_if_missing() restores again instead of resuming on half a tree.
                dest.parent.mkdir(parents=True, exist_ok=True)
                staging = build = dest.parent / f".mlbackup-restore-{os.urandom(6).hex()}"
                build.mkdir()
            root = build.resolve()
            for rel in manifest.dirs:
                _safe_dir(root, rel, created)
            for loc in locations:
                folder, _, base = loc.entry.path.rpartition("/")
                staged.append(_Staged(loc, _safe_dir(root, folder, created) / base))
            for item in staged:
                if item.final.is_symlink() or item.final.is_dir():
                    raise UnsafePathError(
                        f"cannot restore {item.final}: a symlink or folder is in the way; "
                        "restore into an empty folder instead"
                    )
        # In a folder of our own that no one sees until it is renamed into place, each file
        # is written at its name: a temp file and a rename per file would protect no reader.
        _fetch_all(target, manifest, staged, progress, in_place=staging is not None)
        damaged = [s for s in staged if s.problem]
        if damaged:
            raise _DamagedVersion(
                f"backup {name!r} version {manifest.version} on {target.url} is damaged; nothing "
                "was restored. Restore another version (--version) or back the data up again",
                damaged,
            )
        for item in staged:
            _place(item)
            placed += 1
            crash_point("restore-after-place")
        if staging is not None:
            os.rename(staging, dest)
            staging = None
    except BaseException as exc:
        for item in staged:
            if item.temp is not None:
                item.temp.unlink(missing_ok=True)
        for made in reversed(created):
            with contextlib.suppress(OSError):
                made.rmdir()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            placed = 0  # those placed were in the staging folder, now gone
        if isinstance(exc, OSError) and not isinstance(exc, MLBackupError):
            raise _destination_error(dest, exc, placed) from exc
        raise
    return RestoreResult(
        RestoreStatus.RESTORED,
        name=name,
        dest=dest,
        version=manifest.version,
        files_restored=len(staged),
        bytes_restored=manifest.total_bytes,
        target=target.url,
        seconds=time.perf_counter() - started,
    )


def _fetch_all(
    target: BackupTarget,
    manifest: Manifest,
    staged: list[_Staged],
    progress: ProgressCallback | None,
    *,
    in_place: bool,
) -> None:
    import tempfile  # here: backups, the common run, never need it

    counter = ProgressCounter(manifest.name, len(staged), manifest.total_bytes, progress)

    def fetch(item: _Staged) -> None:
        if in_place:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(item.final, flags, 0o600)
            item.temp = item.final
        else:
            fd, temp = tempfile.mkstemp(dir=item.final.parent, prefix=".mlbackup-restore-")
            item.temp = Path(temp)
        path = item.location.entry.path
        with os.fdopen(fd, "wb") as out, counter.chunks(path) as in_flight:
            item.problem = target.copy_verified(item.location, out, manifest.hash_name)
            item.missing = item.problem is not None and item.problem.endswith(MISSING)
        counter.add(path, item.location.entry.size - in_flight[0])
        crash_point("restore-after-fetch")

    map_in_threads(
        fetch, staged, target.backend.max_workers, "mlbackup-restore",
        size_of=lambda item: item.location.entry.size,
    )  # fmt: skip


def _place(item: _Staged) -> None:
    assert item.temp is not None
    entry = item.location.entry
    # Never setuid or setgid: Colab runs as root, and a planted manifest could make any file
    # it restores run with its owner's rights.
    os.chmod(item.temp, entry.mode & ~(stat.S_ISUID | stat.S_ISGID))
    os.utime(item.temp, ns=(entry.mtime_ns, entry.mtime_ns))
    if item.temp != item.final:  # else written in place, in a folder no one sees yet
        if entry.sqlite:
            for suffix in SQLITE_SIDECARS:
                item.final.with_name(item.final.name + suffix).unlink(missing_ok=True)
        os.replace(item.temp, item.final)
    item.temp = None


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _destination_error(dest: Path, exc: OSError, placed: int) -> DestinationError:
    if exc.errno in _FULL:
        fix = (
            "the disk is full (or the file is larger than allowed); free space or restore elsewhere"
        )
    else:
        fix = "make it writable or restore elsewhere"
    done = "nothing was placed" if not placed else f"{placed} file(s) were already placed"
    return DestinationError(f"restoring into {dest} failed: {exc.strerror or exc}; {fix} ({done})")


def _has_entries(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(True for _ in entries)
