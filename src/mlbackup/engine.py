"""The backup protocol: plan, transfer, commit, retention.

1. **Plan.** Scan the source (a stat per file) and compare each file's signature with the
   newest committed manifest. Equal signatures are unchanged without reading a byte. A file
   whose signature differs is hashed; if its hash equals the recorded one it is not sent.
2. **Transfer.** Before a plain file that the newest version lists is replaced or deleted, its
   bytes are moved to ``objects/<hash>`` unless that already exists, so every kept version stays
   readable at every instant. Each new or changed file is then stored atomically at its plain
   key, hashed while it is sent and verified against what the store reports.
3. **Commit.** After a durability barrier (``Backend.sync``), the manifest is written
   create-only. Until then readers see the previous version, byte for byte.
4. **Retention.** With ``keep_last=N``, manifests beyond the newest N are deleted, then the
   displaced objects no kept manifest lists.

A kill -9 at any point leaves the previous committed version restorable (see
``tests/test_crash.py``, which kills the process at each of :data:`mlbackup.crashpoints.POINTS`).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__, layout
from .crashpoints import crash_point
from .errors import (
    CommitConflictError,
    ConfigError,
    SourceChangedError,
    SourceError,
    SourceMissingError,
)
from .hashing import hash_file_and_prefix
from .manifest import FileEntry, Manifest
from .name_lock import name_lock
from .progress import ProgressCallback, ProgressCounter
from .results import BackupResult, BackupStatus
from .sources import SourceFile, current_signature, current_state, readable_copy, scan
from .target import BackupTarget

__all__ = ["run_backup"]

log = logging.getLogger("mlbackup")

#: How often a file that changes while it is read is read again before giving up.
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class _Sent:
    entry: FileEntry | None  # None: the file was left out (see ``skipped``)
    sent: bool
    skipped: str | None = None
    uploaded: int = 0  # bytes that went to the store (an extended file: only its new ones)


class _Transfer:
    """One backup run's shared state: what was displaced, progress counters."""

    def __init__(
        self,
        target: BackupTarget,
        name: str,
        displaced: Iterable[str],
        totals: tuple[int, int],
        progress: ProgressCallback | None,
    ) -> None:
        self.target = target
        self.backend = target.backend
        self.name = name
        self.displaced = set(displaced)
        self.lock = threading.Lock()
        self.progress = ProgressCounter(name, *totals, progress)

    def displace(self, old: FileEntry) -> None:
        """Keep ``old``'s bytes for the versions that list it, then free its plain key."""
        plain = layout.plain_key(self.name, old.path)
        with self.lock:
            keep = old.hash not in self.displaced
            self.displaced.add(old.hash)
        if keep:
            try:
                self.backend.move(plain, layout.object_key(self.name, old.hash))
            except FileNotFoundError:
                log.warning("%s/%s was already gone from the target", self.target.url, plain)
            crash_point("after-displace")
        else:
            self.backend.delete(plain)

    def send(self, source: SourceFile, old: FileEntry | None) -> _Sent:
        """Send one new or changed file; returns its manifest entry, or why it was left out
        (it vanished or became unreadable since the scan: one such file never fails the rest)."""
        try:
            return self._send(source, old)
        except (FileNotFoundError, PermissionError, SourceError):
            if source.abspath.exists() and os.access(source.abspath, os.R_OK):
                raise  # not the source's doing
            why = "vanished" if not os.path.lexists(source.abspath) else "became unreadable"
            return _Sent(None, False, f"{source.path}: {why} during the backup, left out")

    def _send(self, source: SourceFile, old: FileEntry | None) -> _Sent:
        key = layout.plain_key(self.name, source.path)
        path = source.abspath
        wal = "|wal:" in source.sig  # the scan saw a WAL beside it (a database in WAL mode)
        for _attempt in range(READ_ATTEMPTS):
            # The entry describes the bytes read now, which may be newer than the scan's.
            st, before = current_state(path, wal=wal)
            with readable_copy(source) as (readable, kind):
                base: tuple[str, int] | None = None  # what an appended file extends
                if old is not None:
                    _size, digest, head = hash_file_and_prefix(
                        readable, self.target.hash_name, old.size
                    )
                    if digest == old.hash:  # touched, not changed
                        self.progress.add(source.path, old.size)
                        return _Sent(replace(old, sig=before, mtime_ns=st.st_mtime_ns), False)
                    if head == old.hash:
                        base = (layout.object_key(self.name, old.hash), old.size)
                    self.displace(old)
                    old = None  # displaced once; a re-read must not displace again
                with self.progress.chunks(source.path) as in_flight:
                    stored = None
                    if base is not None:  # the old bytes are displaced to base: reuse them
                        stored = self.backend.put_file_extending(readable, key, *base)
                    reused = base[1] if stored is not None and base is not None else 0
                    if stored is None:
                        stored = self.backend.put_file(readable, key)
            if kind != "plain" or current_signature(path, wal=wal) == before:
                crash_point("after-put")
                self.progress.add(source.path, stored.size - in_flight[0])
                entry = FileEntry(
                    path=source.path,
                    size=stored.size,
                    hash=stored.checksum or "",
                    mtime_ns=st.st_mtime_ns,
                    mode=stat.S_IMODE(st.st_mode),
                    sig=before,
                    sqlite=kind == "sqlite",
                )
                return _Sent(entry, True, uploaded=stored.size - reused)
            self.progress.add(source.path, -in_flight[0], files=0)  # sent again from the start
            log.info("%s changed while it was read; reading it again", source.abspath)
        raise SourceChangedError(
            f"{source.abspath} kept changing while it was read ({READ_ATTEMPTS} tries); back it "
            "up when the writer pauses (e.g. from a callback after each step)"
        )


def _check_no_overlap(target: BackupTarget, name: str) -> None:
    """A new name must not nest in (or contain) another: their plain files would collide."""
    for other in target.names():
        if other == name:
            continue
        if name.startswith(other + "/") or other.startswith(name + "/"):
            raise ConfigError(
                f"backup name {name!r} overlaps the existing backup {other!r} on {target.url}: "
                "their files would share a folder; pass another name=... (--name)"
            )


def run_backup(
    target: BackupTarget,
    source: Path,
    name: str,
    *,
    keep_last: int | None = None,
    progress: ProgressCallback | None = None,
    include_credentials: bool = False,
) -> BackupResult:
    """Back ``source`` up as ``name``; see the module docstring for the protocol."""
    layout.check_name(name)
    with name_lock(target.url, name):
        return _run_backup(
            target,
            source,
            name,
            keep_last=keep_last,
            progress=progress,
            include_credentials=include_credentials,
        )


def _run_backup(
    target: BackupTarget,
    source: Path,
    name: str,
    *,
    keep_last: int | None,
    progress: ProgressCallback | None,
    include_credentials: bool,
) -> BackupResult:
    started = time.perf_counter()
    if keep_last is not None and keep_last < 1:
        raise ConfigError(f"keep_last must be at least 1, got {keep_last}")
    scanned = scan(source, include_credentials=include_credentials)
    for reason in scanned.skipped:
        log.warning("%s: skipped %s", name, reason)
    limit = target.backend.many_files_warning
    if limit is not None and len(scanned.files) > limit:
        log.warning(
            "%s holds %d files; %s is slow with many small files: consider archiving them "
            "(one .tar or .zip) or a bucket target",
            source, len(scanned.files), target.url,
        )  # fmt: skip
    previous = target.latest_manifest(name)
    if previous is None:
        _check_no_overlap(target, name)
    old_entries = previous.by_path() if previous else {}

    unchanged: list[FileEntry] = []
    todo: list[tuple[SourceFile, FileEntry | None]] = []
    for sf in scanned.files:
        old = old_entries.get(sf.path)
        if old is not None and old.sig == sf.sig and old.size == sf.size:
            unchanged.append(old)
        else:
            todo.append((sf, old))
    present = {sf.path for sf in scanned.files}
    gone = [e for p, e in old_entries.items() if p not in present]
    log.debug(
        "%s: %d files scanned, %d to send, %d gone since version %s",
        name, len(scanned.files), len(todo), len(gone), previous.version if previous else None,
    )  # fmt: skip

    totals = (len(scanned.files), sum(sf.size for sf in scanned.files))
    # Listed only when something changed: a no-change run on a bucket is then two requests.
    displaced = (
        target.backend.list_dir(layout.objects_prefix(name)) if previous and (todo or gone) else []
    )
    transfer = _Transfer(target, name, displaced, totals, progress)
    for entry in unchanged:
        transfer.progress.add(entry.path, entry.size)
    # Deletions first: a file that becomes a folder (or back) frees its plain key before reuse.
    for entry in gone:
        transfer.displace(entry)
    sent = _send_all(transfer, todo)
    left_out = [s.skipped for s in sent if s.skipped is not None]
    if left_out and scanned.kind == "file":
        raise SourceMissingError(f"{source} {left_out[0].split(': ', 1)[1]}; nothing was committed")
    if left_out and not source.is_dir():
        # The whole folder went (a trainer rotating its checkpoints away): an empty or partial
        # version would only hide the previous one.
        raise SourceMissingError(f"{source} was removed during the backup; nothing was committed")
    for why in left_out:
        log.warning("%s: skipped %s", name, why)

    entries = unchanged + [s.entry for s in sent if s.entry is not None]
    files_sent = sum(1 for s in sent if s.sent)
    bytes_sent = sum(s.uploaded for s in sent)
    common = {
        "name": name,
        "target": target.url,
        "source": source,
        "skipped_entries": tuple(scanned.skipped + left_out),
        "files_total": len(entries),
        "bytes_total": sum(e.size for e in entries),
        "staged": target.backend.staged_writes,
    }
    if (
        previous is not None
        and not gone
        and files_sent == 0
        and (sorted(scanned.empty_dirs) == sorted(previous.dirs) and scanned.kind == previous.kind)
    ):
        if keep_last is not None:  # finish a retention an earlier run was killed in
            apply_retention(target, name, keep_last)
        return BackupResult(
            BackupStatus.UNCHANGED,
            version=previous.version,
            seconds=time.perf_counter() - started,
            **common,  # type: ignore[arg-type]
        )

    version = previous.version + 1 if previous else 1
    manifest = Manifest(
        name=name,
        version=version,
        kind=scanned.kind,
        hash_name=target.hash_name,
        files=tuple(sorted(entries, key=lambda e: e.path)),
        dirs=tuple(sorted(scanned.empty_dirs)),
        meta={"mlbackup": __version__, "source": str(source)},
    )
    _commit(target, manifest)
    if keep_last is not None:
        apply_retention(target, name, keep_last)
    log.info(
        "backed up %s to %s as %r version %d: %d files, %d bytes sent",
        source, target.url, name, version, files_sent, bytes_sent,
    )  # fmt: skip
    return BackupResult(
        BackupStatus.COPIED,
        version=version,
        files_sent=files_sent,
        bytes_sent=bytes_sent,
        seconds=time.perf_counter() - started,
        **common,  # type: ignore[arg-type]
    )


def _send_all(transfer: _Transfer, todo: list[tuple[SourceFile, FileEntry | None]]) -> list[_Sent]:
    workers = min(transfer.backend.max_workers, len(todo))
    if workers <= 1:
        return [transfer.send(sf, old) for sf, old in todo]
    with ThreadPoolExecutor(workers, thread_name_prefix="mlbackup-send") as pool:
        futures = [pool.submit(transfer.send, sf, old) for sf, old in todo]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _commit(target: BackupTarget, manifest: Manifest) -> None:
    crash_point("before-commit")
    target.backend.sync()
    key = layout.manifest_key(manifest.name, manifest.version)
    try:
        target.backend.write_new(key, manifest.to_bytes())
    except FileExistsError:
        raise CommitConflictError(
            f"another process committed {manifest.name!r} version {manifest.version} on "
            f"{target.url} first; back up one name from one process at a time, then retry"
        ) from None
    crash_point("after-commit")


def apply_retention(target: BackupTarget, name: str, keep_last: int) -> list[int]:
    """Delete all but the newest ``keep_last`` versions of ``name``; return those deleted.

    Manifests go first (oldest first), so a crash part-way leaves only unreferenced objects,
    which the next retention that drops a version collects.
    """
    versions = target.versions(name)
    dropped = versions[:-keep_last]
    if not dropped:
        return []
    for version in dropped:
        target.backend.delete(layout.manifest_key(name, version))
        crash_point("during-retention")
    kept = versions[-keep_last:]
    needed = {e.hash for v in kept for e in target.read_manifest(name, v).files}
    for digest in target.backend.list_dir(layout.objects_prefix(name)):
        if digest not in needed:
            target.backend.delete(layout.object_key(name, digest))
    return dropped
