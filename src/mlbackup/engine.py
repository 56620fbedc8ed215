"""The backup protocol: plan, transfer, commit, then the browsable tree and retention.

1. **Plan.** Scan the source (a stat per file) and compare each file's signature with the
   newest committed manifest. Equal signatures are unchanged without reading a byte. A file
   whose signature differs is hashed; if its hash equals the recorded one it is not sent.
2. **Transfer.** Each new or changed file is stored as the immutable object of its hash
   (`mlbackup.objects`), hashed while it is sent and verified against what the store
   reports; an object that exists already is not sent again. Nothing any version refers to is
   written, moved or deleted.
3. **Commit.** After a durability barrier, the manifest is created as the next free version
   (`mlbackup.commit`): a writer that loses a race to another commits the next number.
4. **Browsable tree** (`mlbackup.browsable`) and **retention** (``keep_last``), after the
   commit and never needed by a reader.

A kill -9 at any point leaves every committed version restorable (see ``tests/test_crash.py``,
which kills the process at each of `mlbackup.crashpoints.POINTS`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from . import layout
from ._version import __version__
from .browsable import refresh_browsable
from .commit import GRACE_SECONDS, apply_retention, commit_version
from .crashpoints import crash_point
from .damage import damaged_versions
from .errors import (
    ConfigError,
    MLBackupError,
    SourceChangedError,
    SourceError,
    SourceMissingError,
    TargetError,
    exception_chain,
)
from .hashing import hash_file_and_prefix
from .manifest import FileEntry, Manifest
from .name_lock import name_lock
from .objects import store_object
from .parallel import map_in_threads
from .progress import ProgressCallback, ProgressCounter
from .results import BackupResult, BackupStatus
from .sources import SourceFile, current_signature, current_state, readable_copy, scan
from .target import BackupTarget, DataLocation

__all__ = ["run_backup"]

log = logging.getLogger("mlbackup")

#: How often a file that changes while it is read is read again before giving up.
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class _Sent:
    entry: FileEntry | None  # None: the file was left out (see ``skipped`` and ``failed``)
    sent: bool
    skipped: str | None = None  # gone since the scan: the next backup's news, not an error
    failed: str | None = None  # could not be read: the backup is partial
    uploaded: int = 0  # bytes that went to the store (an extended file: only its new ones)


class _Transfer:
    """One backup run's shared state: what the previous version holds, progress counters."""

    def __init__(
        self,
        target: BackupTarget,
        name: str,
        previous: Manifest | None,
        totals: tuple[int, int],
        progress: ProgressCallback | None,
        created: list[str],
        *,
        listed: bool = True,
    ) -> None:
        self.target = target
        self.created = created  # appended to by the worker threads (list.append is atomic)
        self.backend = target.backend
        self.name = name
        # The objects the previous version lists, which an appended file may extend (the
        # store's copy or compose fails on one that is gone, and the whole file goes). A
        # format-1 version's bytes are not objects yet (see _adopt).
        self.bases: dict[str, str | None] = (
            {e.hash: e.ref for e in previous.files}
            if previous is not None and previous.format_version >= 2
            else {}
        )
        # The objects reused without a request: the previous version's, once the store's
        # listing (``listed``) showed them there. Without it, a touched file's object is
        # looked up (and sent again if gone, which ``found_missing`` records, as the listing
        # would have); any other reuse is checked by objects.store_object.
        self.listed = listed
        self.live = dict(self.bases) if listed else {}
        self.found_missing: set[str] = set()
        self.progress = ProgressCounter(name, *totals, progress)

    def _still_stored(self, digest: str) -> bool:
        if self.listed or self.backend.info(layout.object_key(digest)) is not None:
            return True
        self.found_missing.add(digest)  # set.add is atomic
        return False

    def send(self, source: SourceFile, old: FileEntry | None) -> _Sent:
        """Send one new or changed file; returns its manifest entry, or why it was left out
        (it vanished since the scan, or cannot be read: one such file never fails the rest)."""
        try:
            return self._send(source, old)
        except (MLBackupError, OSError) as exc:
            left_out = _source_failure(exc, source)
            if left_out is None:
                raise  # not the source's doing
            return left_out

    def _send(self, source: SourceFile, old: FileEntry | None) -> _Sent:
        path = source.abspath
        wal = "|wal:" in source.sig  # the scan saw a WAL beside it (a database in WAL mode)
        for _attempt in range(READ_ATTEMPTS):
            # The entry describes the bytes read now, which may be newer than the scan's.
            st, before = current_state(path, wal=wal)
            with readable_copy(source) as (readable, kind):
                digest: str | None = None
                base: tuple[str, int] | None = None  # what an appended file extends
                if old is not None:
                    _size, digest, head = hash_file_and_prefix(
                        readable, self.target.hash_name, old.size
                    )
                    if digest == old.hash and self._still_stored(digest):  # touched
                        self.progress.add(source.path, old.size)
                        return _Sent(replace(old, sig=before, mtime_ns=st.st_mtime_ns), False)
                    if head == old.hash != digest and old.hash in self.bases:
                        base = (old.hash, old.size)
                with self.progress.chunks(source.path) as in_flight:
                    try:
                        stored = store_object(
                            self.backend, readable, digest, base=base, live=self.live
                        )
                    except SourceChangedError:
                        stored = None
                    if stored is not None and stored.created:
                        self.created.append(stored.info.key)
            if stored is not None and (
                kind != "plain" or current_signature(path, wal=wal) == before
            ):
                crash_point("after-put")
                self.progress.add(source.path, stored.info.size - in_flight[0])
                entry = FileEntry(
                    path=source.path,
                    size=stored.info.size,
                    hash=stored.info.checksum or "",
                    mtime_ns=st.st_mtime_ns,
                    mode=stat.S_IMODE(st.st_mode),
                    sig=before,
                    sqlite=kind == "sqlite",
                    ref=stored.info.ref,
                )
                return _Sent(entry, True, uploaded=stored.sent)
            self.progress.add(source.path, -in_flight[0], files=0)  # sent again from the start
            log.info("%s changed while it was read; reading it again", source.abspath)
        raise SourceChangedError(
            f"{source.abspath} kept changing while it was read ({READ_ATTEMPTS} tries); back it "
            "up when the writer pauses (e.g. from a callback after each step)"
        )


def _source_failure(exc: BaseException, source: SourceFile) -> _Sent | None:
    """Why the source file, not the target, made ``exc`` (it vanished, or reading it failed:
    backends wrap what they raise while reading it), else None."""
    if not os.path.lexists(source.abspath):
        return _Sent(None, False, skipped=f"{source.path}: vanished during the backup, left out")
    for link in exception_chain(exc):
        if not isinstance(link, OSError) or link.filename is None:
            continue
        if os.path.abspath(link.filename) == str(source.abspath):
            why = link.strerror or type(link).__name__
            fix = (
                f"make it readable (chmod u+r {shlex.quote(str(source.abspath))})"
                if isinstance(link, PermissionError)
                else "check the file and the disk it is on"
            )
            return _Sent(None, False, failed=f"{source.path}: unreadable ({why}), left out; {fix}")
    return None


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
    with name_lock(target.backend.lock_key, name):
        run = _Run()
        try:
            return _run_backup(
                target,
                source,
                name,
                run,
                keep_last=keep_last,
                progress=progress,
                include_credentials=include_credentials,
            )
        except BaseException as exc:
            run.take_back(target)
            # For whoever reports the interruption: was a version committed before it came?
            exc.mlbackup_committed = run.committed  # type: ignore[attr-defined]
            raise


class _Run:
    """What one backup run created on the target, so that a failure takes it back."""

    def __init__(self) -> None:
        self.created: list[str] = []  # object keys this run's puts created
        self.committing = False  # from here on the objects may be listed by a manifest
        self.committed: int | None = None  # the version, once its manifest is committed

    def take_back(self, target: BackupTarget) -> None:
        """A failed backup leaves nothing behind (a full disk would fail every later one)."""
        if self.committing or not self.created:
            return
        for key in self.created:
            with contextlib.suppress(Exception):  # best effort; retention's sweep is the net
                target.backend.withdraw(key)
        log.debug("took back %d objects of a backup that failed", len(self.created))


def _run_backup(
    target: BackupTarget,
    source: Path,
    name: str,
    run: _Run,
    *,
    keep_last: int | None,
    progress: ProgressCallback | None,
    include_credentials: bool,
    first_pass: _FirstPass | None = None,
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
    # A run that keeps none of the files of the version this process committed last (a
    # study.db after a trial) starts from that version while the versions are listed, and
    # its files are sent meanwhile; it commits only once the listing shows that version still
    # the newest, else it starts again from the newest (see _NewestCheck).
    optimistic = target.committed_here(name) if first_pass is None else None
    if optimistic is not None and (
        target.backend.max_workers < 2 or _keeps_a_file(optimistic, scanned.files, source)
    ):
        optimistic = None
    newest_check = _NewestCheck(target, name, optimistic) if optimistic is not None else None
    if optimistic is not None:
        previous: Manifest | None = optimistic
    else:
        # Planning again, the listing would be of our version, which is not the base.
        listing = (
            _early_object_listing(target, name) if first_pass is None else contextlib.nullcontext()
        )
        with listing as early:
            previous = target.latest_manifest(name)
    if previous is None:
        _check_no_overlap(target, name)
    old_entries = previous.by_path() if previous else {}
    # Signatures (size and mtime) compare only with a version this source wrote: another
    # writer's files of the same size can carry the same mtime (the kernel's clock ticks in
    # milliseconds), so after another writer every file is hashed (and sent only if changed).
    same_writer = previous is not None and previous.meta.get("writer") == _writer_id(source)

    # Bytes the previous version lists that are gone from the store (deleted behind our
    # back): its files that still hold them are sent again, as if new. A run that keeps none
    # of them sends before the listing is in: see _Transfer.listed for what it reuses.
    stored: set[str] | None = None
    if optimistic is None:
        stored = early.result(previous) if early is not None else _stored_objects(target, previous)
    missing = set()
    if previous is not None and stored is not None:
        missing = {e.hash for e in previous.files} - stored
    unchanged: list[FileEntry] = []
    todo: list[tuple[SourceFile, FileEntry | None]] = []
    for sf in scanned.files:
        old = old_entries.get(sf.path)
        if old is not None and old.hash in missing:
            todo.append((sf, None))
        elif same_writer and old is not None and old.sig == sf.sig and old.size == sf.size:
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
    transfer = _Transfer(
        target, name, previous, totals, progress if first_pass is None else None, run.created,
        listed=optimistic is None,
    )  # fmt: skip
    if first_pass is not None:
        transfer.live.update(first_pass.stored)
    for digest in missing:
        transfer.live.pop(digest, None)
    for entry in unchanged:
        transfer.progress.add(entry.path, entry.size)
    sent = _send_all(transfer, todo)
    if newest_check is not None and not newest_check.result():
        # Another writer's version came after ours (or ours was dropped): plan again from the
        # newest, reusing what was sent (its progress already shown).
        log.debug("%s: version %s is no longer the newest; planning again", name, previous)
        return _run_backup(
            target, source, name, run, keep_last=keep_last, progress=progress,
            include_credentials=include_credentials, first_pass=_FirstPass.of(sent, started),
        )  # fmt: skip
    missing |= transfer.found_missing
    if first_pass is not None:
        started = first_pass.started
    left_out = [s.skipped for s in sent if s.skipped is not None]
    failed = scanned.failed + [s.failed for s in sent if s.failed is not None]
    if failed and scanned.kind == "file":
        raise SourceError(f"{source} {failed[0].split(': ', 1)[1]}; nothing was committed")
    if left_out and scanned.kind == "file":
        raise SourceMissingError(f"{source} {left_out[0].split(': ', 1)[1]}; nothing was committed")
    if left_out and not source.is_dir():
        # The whole folder went (a trainer rotating its checkpoints away): an empty or partial
        # version would only hide the previous one.
        raise SourceMissingError(f"{source} was removed during the backup; nothing was committed")
    for why in left_out:
        log.warning("%s: skipped %s", name, why)
    for why in failed:
        log.error("%s: PARTIAL backup: %s", name, why)

    entries = unchanged + [s.entry for s in sent if s.entry is not None]
    files_sent = sum(1 for s in sent if s.sent)
    bytes_sent = sum(s.uploaded for s in sent) + (first_pass.uploaded if first_pass else 0)
    healed = _healed(previous, missing, sent)
    lost = tuple(sorted({e.path for e in old_entries.values() if e.hash in missing} - {*healed}))
    if optimistic is not None:
        lost = ()  # known once the objects are listed, after the commit (_objects_after)
    healed_paths = {*healed}
    # A file backup's one entry has no path: shown by the name.
    healed_shown, lost_shown = (tuple(p or name for p in ps) for ps in (healed, lost))
    # Putting bytes back changes no version: only other sends make a new one.
    changes_sent = sum(
        1 for s in sent if s.sent and s.entry is not None and s.entry.path not in healed_paths
    )
    if healed:
        log.warning(
            "%s: the stored bytes of %d files were gone from %s (deleted behind mlbackup's "
            "back); put back from the source: %s",
            name, len(healed), target.url, ", ".join(healed_shown[:5]),
        )  # fmt: skip
    if lost:
        _log_lost(target, name, previous, lost_shown)
    common = {
        "name": name,
        "target": target.url,
        "source": source,
        "skipped_entries": tuple(scanned.skipped + left_out),
        "failed_entries": tuple(failed),
        "partial": bool(failed),
        "files_total": len(entries),
        "bytes_total": sum(e.size for e in entries),
        "staged": target.backend.staged_writes,
        "healed": healed_shown,
        "lost": lost_shown,
    }
    if (
        previous is not None
        and not gone
        and not failed  # a file the version had could not be read: not "unchanged"
        and changes_sent == 0
        and (sorted(scanned.empty_dirs) == sorted(previous.dirs) and scanned.kind == previous.kind)
    ):
        if optimistic is not None:
            stored, common["lost"] = _objects_after(target, name, previous, healed)
        if keep_last is not None:  # finish a retention an earlier run was killed in
            apply_retention(target, name, keep_last)
        return BackupResult(
            BackupStatus.UNCHANGED,
            version=previous.version,
            files_sent=files_sent,  # bytes put back, if any
            bytes_sent=bytes_sent,
            seconds=time.perf_counter() - started,
            damaged_versions=_older_damage(target, name, stored, sent, previous.version),
            **common,  # type: ignore[arg-type]
        )

    # Entries whose bytes are already stored: unchanged, or touched without a change.
    kept = unchanged + [s.entry for s in sent if s.entry is not None and not s.sent]
    if previous is not None and previous.format_version == 1:
        kept = _adopt(target, previous, kept)
    entries = kept + [s.entry for s in sent if s.entry is not None and s.sent]
    if time.perf_counter() - started > GRACE_SECONDS / 2:
        _check_still_there(target, entries)
    run.committing = True
    manifest = commit_version(
        target,
        Manifest(
            name=name,
            version=previous.version + 1 if previous else 1,
            kind=scanned.kind,
            hash_name=target.hash_name,
            files=tuple(sorted(entries, key=lambda e: e.path)),
            dirs=tuple(sorted(scanned.empty_dirs)),
            meta={"mlbackup": __version__, "source": str(source), "writer": _writer_id(source)},
        ),
    )
    run.committed = manifest.version
    refresh_browsable(target, manifest, previous)
    if optimistic is not None:
        stored, common["lost"] = _objects_after(target, name, previous, healed)
    if keep_last is not None:
        apply_retention(target, name, keep_last)
    log.info(
        "backed up %s to %s as %r version %d: %d files, %d bytes sent",
        source, target.url, name, manifest.version, files_sent, bytes_sent,
    )  # fmt: skip
    return BackupResult(
        BackupStatus.COPIED,
        version=manifest.version,
        files_sent=files_sent,
        bytes_sent=bytes_sent,
        seconds=time.perf_counter() - started,
        damaged_versions=_older_damage(target, name, stored, sent, manifest.version),
        **common,  # type: ignore[arg-type]
    )


@functools.cache
def _writer_id(source: Path) -> str:
    """This source folder on this machine, as an opaque ID (no host name in manifests).

    The folder is named by its real path: named relative to another working directory or
    through a symlink it is the same writer, whose unchanged files are not read again."""
    import hashlib

    machine = os.uname().nodename
    with contextlib.suppress(OSError):
        machine += Path("/etc/machine-id").read_text().strip()
    folder = os.path.realpath(source)
    return hashlib.sha256(f"{machine}\0{folder}".encode()).hexdigest()[:16]


def _adopt(target: BackupTarget, previous: Manifest, kept: list[FileEntry]) -> list[FileEntry]:
    """Upgrade a name from format 1: the bytes of every file of its newest version become
    objects (linked or copied inside the store where it can, else read back and sent) before
    the browsable tree, where format 1 kept them, changes; older format-1 versions' other
    bytes stay where that release put them. Returns ``kept`` as entries of objects."""
    backend = target.backend
    refs: dict[str, str | None] = {}
    for location in target.locate(previous):
        entry = location.entry
        key = layout.object_key(entry.hash)
        if entry.hash in refs:
            continue
        existing = backend.info(key)
        if existing is None or existing.size != entry.size:
            where = next(
                (k for k in (location.key, *location.fallbacks) if k != key and backend.info(k)),
                None,
            )
            if where is None or not backend.adopt(where, key):
                _send_back(target, location, key)
            existing = backend.info(key)
        refs[entry.hash] = existing.ref if existing else None
    log.info("%r on %s moved to storage format 2", previous.name, target.url)
    return [replace(e, ref=refs.get(e.hash)) for e in kept]


def _send_back(target: BackupTarget, location: DataLocation, key: str) -> None:
    """Read a format-1 file's bytes back (checked) and store them as an object."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlbackup-adopt-") as folder:
        local = Path(folder) / "object"
        with local.open("wb") as out:
            problem = target.copy_verified(location, out, target.hash_name)
        if problem:
            raise TargetError(f"cannot move {target.url} to storage format 2: {problem}")
        target.backend.put_object(local, key, location.entry.hash)


class _EarlyListing:
    """The object listing, started while the versions are listed (one round trip for both)
    when this process committed the name's previous version itself."""

    def __init__(self, target: BackupTarget, ours: Manifest) -> None:
        self._target, self._ours = target, ours
        self._listed: set[str] | None = None
        self._failed = False
        self._thread = threading.Thread(target=self._list, name="mlbackup-list", daemon=True)
        self._thread.start()

    def _list(self) -> None:
        try:
            self._listed = self._target.stored_objects()
        except BaseException:  # noqa: BLE001 - listed again on the caller's thread, to raise
            self._failed = True

    def join(self) -> None:
        self._thread.join()

    def result(self, previous: Manifest | None) -> set[str] | None:
        # Only against our own version: all its objects were stored before our commit, so
        # before this listing began; against another writer's newer version, a listing that
        # began before its commit could miss its objects (and report them lost).
        if previous is not self._ours or self._failed or self._listed is None:
            return _stored_objects(self._target, previous)
        return self._listed


@contextlib.contextmanager
def _early_object_listing(target: BackupTarget, name: str) -> Iterator[_EarlyListing | None]:
    ours = target.committed_here(name)
    if ours is None or not _stored_objects_needed(ours) or target.backend.max_workers < 2:
        yield None
        return
    early = _EarlyListing(target, ours)
    try:
        yield early
    finally:
        early.join()


def _log_lost(
    target: BackupTarget, name: str, previous: Manifest | None, lost_shown: tuple[str, ...]
) -> None:
    log.error(
        "%s: version %d lists %d files whose stored bytes are gone from %s and which the "
        "source no longer holds as they were, so it does not restore them: %s",
        name, previous.version if previous else 0, len(lost_shown), target.url,
        ", ".join(lost_shown[:5]),
    )  # fmt: skip


def _objects_after(
    target: BackupTarget, name: str, previous: Manifest | None, healed: tuple[str, ...]
) -> tuple[set[str] | None, tuple[str, ...]]:
    """For a run that listed no objects before its commit: the objects, listed now (for the
    check of the older versions), and the files of ``previous`` whose bytes are gone, which
    the source no longer holds as they were (logged as a run that listed first does)."""
    try:
        stored = _stored_objects(target, previous)
    except (MLBackupError, OSError) as exc:  # the version is committed: this is a report
        log.warning("%s: could not list the objects of %s to check the older versions: %s",
                    name, target.url, exc)  # fmt: skip
        return None, ()
    if stored is None or previous is None:
        return stored, ()
    lost = tuple(sorted({e.path for e in previous.files if e.hash not in stored} - {*healed}))
    shown = tuple(p or name for p in lost)
    if shown:
        _log_lost(target, name, previous, shown)
    return stored, shown


def _keeps_a_file(previous: Manifest, files: list[SourceFile], source: Path) -> bool:
    """Whether a file of ``source`` has the size and signature ``previous`` lists for it (a
    run would keep its entry, and its object, without reading it)."""
    if previous.meta.get("writer") != _writer_id(source):
        return False
    old = previous.by_path()
    return any(
        (e := old.get(sf.path)) is not None and (e.sig, e.size) == (sf.sig, sf.size) for sf in files
    )


class _NewestCheck:
    """Whether ``ours`` is still the newest version of ``name``: the versions listed on a
    thread of its own while the run sends its files. A run that commits on it has the same
    view as one that listed first: its base existed and was the newest when it looked (so
    retention's grace period covers what it reuses), and its number is the next one."""

    def __init__(self, target: BackupTarget, name: str, ours: Manifest) -> None:
        self._target, self._name, self._ours = target, name, ours
        self._newest: bool = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._check, name="mlbackup-newest", daemon=True)
        self._thread.start()

    def _check(self) -> None:
        try:
            self._newest = self._target.latest_manifest(self._name) is self._ours
        except BaseException as exc:  # noqa: BLE001 - raised on the run's thread, below
            self._error = exc

    def result(self) -> bool:
        """Raises what the listing raised: the run fails as one that listed first would."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._newest


@dataclass(frozen=True)
class _FirstPass:
    """What a run that planned again had sent already: its objects (reused without a
    request, so not touched: a failed run still takes them back) and its bytes."""

    stored: dict[str, str | None]
    uploaded: int
    started: float

    @classmethod
    def of(cls, sent: list[_Sent], started: float) -> _FirstPass:
        # Only what it stored or touched: an object it merely found is no younger than the
        # version that listed it, which may be one retention dropped (and a sweep collects).
        stored = {s.entry.hash: s.entry.ref for s in sent if s.entry is not None and s.sent}
        return cls(stored, sum(s.uploaded for s in sent), started)


def _stored_objects_needed(previous: Manifest | None) -> bool:
    return not (previous is None or previous.format_version == 1 or not previous.files)


def _stored_objects(target: BackupTarget, previous: Manifest | None) -> set[str] | None:
    """Every object on the store: one listing a run (on S3 or GCS a request per 1,000
    objects), not a request per file; None when there is nothing to compare it with."""
    if not _stored_objects_needed(previous):
        return None  # format 1 kept its bytes at other keys
    return target.stored_objects()


def _older_damage(
    target: BackupTarget, name: str, stored: set[str] | None, sent: list[_Sent], newest: int
) -> tuple[int, ...]:
    """The kept versions before ``newest`` that do not restore whole, logged as an error."""
    if stored is None:
        return ()
    stored = stored | {s.entry.hash for s in sent if s.entry is not None}
    older = [v for v in target.listed_versions(name) if v < newest]
    try:
        damage = damaged_versions(target, name, stored, versions=older)
        if damage:  # retention (this run's or another writer's) may have dropped some since
            kept = set(target.versions(name))
            damage = [d for d in damage if d.version in kept]
    except MLBackupError as exc:  # the version is committed: a report must not fail it
        log.warning("%s: could not check the older versions' stored bytes: %s", name, exc)
        return ()
    if damage:
        log.error(
            "%s: %d older versions no longer restore whole (their stored bytes were deleted "
            "behind mlbackup's back and the source no longer holds them): %s",
            name, len(damage), "; ".join(d.describe() for d in damage[:5]),
        )  # fmt: skip
    return tuple(d.version for d in damage)


def _healed(previous: Manifest | None, missing: set[str], sent: list[_Sent]) -> tuple[str, ...]:
    """The files whose missing bytes this run put back (the same hash as before)."""
    if not missing or previous is None:
        return ()
    before = previous.by_path()
    return tuple(
        sorted(
            s.entry.path
            for s in sent
            if s.entry is not None
            and s.entry.hash in missing
            and (old := before.get(s.entry.path)) is not None
            and old.hash == s.entry.hash
        )
    )


def _check_still_there(target: BackupTarget, entries: list[FileEntry]) -> None:
    """A run longer than half the retention grace period checks that every object it reuses
    is still there before it commits a version that lists them."""
    for entry in entries:
        if target.backend.info(layout.object_key(entry.hash)) is None:
            raise TargetError(
                f"{entry.path or 'the file'}: its stored bytes were collected by retention "
                "while this long backup ran; nothing was committed, run the backup again"
            )


def _send_all(transfer: _Transfer, todo: list[tuple[SourceFile, FileEntry | None]]) -> list[_Sent]:
    return map_in_threads(
        lambda job: transfer.send(*job), todo, transfer.backend.max_workers, "mlbackup-send",
        size_of=lambda job: job[0].size,
    )  # fmt: skip
