"""What to back up, and consistent copies of it.

`scan()` lists a file or folder without reading any data: a stat per entry, from which the
cheap change signature (``sig``) is made. `readable_copy()` yields a path whose bytes are a
consistent state of one source file:

- a SQLite database (recognised by its header, not its name) is snapshotted in one step with
  the online backup API into a temp file on the source's own disk and checked with
  ``PRAGMA quick_check``: a raw copy of a live database is corrupt most of the time;
- any other file is read in place; the caller re-stats it afterwards and reads it again if it
  changed meanwhile.

Left out of folders, and reported: symlinks (never followed, so nothing outside the tree is
read), sockets, FIFOs and devices (opening a FIFO would block), our own snapshot temp files,
the ``-wal``/``-shm``/``-journal`` siblings of a database (the snapshot already holds their data)
and, unless asked for, credential files (see `mlbackup.credential_files`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shlex
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .credential_files import credential_reason
from .errors import SourceError, SourceMissingError

__all__ = [
    "ScannedSource",
    "SourceFile",
    "current_signature",
    "current_state",
    "is_sqlite",
    "readable_copy",
    "scan",
    "signature",
]

log = logging.getLogger("mlbackup")

SNAPSHOT_PREFIX = ".mlbackup-snap-"
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
#: Append-only logs (Optuna's JournalFileBackend writes JSON lines): copied up to the last
#: complete line, so a half-written record is never backed up.
APPEND_LOG_SUFFIXES = (".log", ".jsonl", ".journal")
#: SQLite's and Python's default busy timeout is 5 s: warn when a snapshot holds its read lock
#: for half of that, since a writer waiting that long is close to "database is locked".
SNAPSHOT_WARN_SECONDS = 2.5
#: Databases up to this size are snapshotted through memory (see `snapshot_sqlite()`).
MEMORY_SNAPSHOT_BYTES = 64 << 20


SnapshotKind = Literal["plain", "sqlite", "log"]


@dataclass(frozen=True)
class SourceFile:
    """One regular file to back up."""

    path: str  # relative POSIX path inside the item; "" for a single-file backup
    location: str  # its absolute path (a str: a Path per file costs more than the stat)
    size: int
    mtime_ns: int
    mode: int
    sig: str

    @property
    def abspath(self) -> Path:
        return Path(self.location)


@dataclass(frozen=True)
class ScannedSource:
    kind: Literal["file", "dir"]
    files: list[SourceFile]
    empty_dirs: list[str]
    skipped: list[str]  # left out by rule (symlinks, special files, credentials)
    failed: list[str] = field(default_factory=list)  # left out for an error: a partial backup


def signature(st: os.stat_result, wal: os.stat_result | None) -> str:
    """The change signature: size and mtime of the file, and of its WAL if it has one."""
    sig = f"{st.st_size}:{st.st_mtime_ns}"
    if wal is not None:
        sig += f"|wal:{wal.st_size}:{wal.st_mtime_ns}"
    return sig


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        # A sidecar of a 255-byte name would be longer than any name can be: it cannot exist.
        if exc.errno == errno.ENAMETOOLONG:
            return None
        raise


def _wal_stat(path: Path) -> os.stat_result | None:
    return _stat_or_none(path.with_name(path.name + "-wal"))


def current_signature(path: Path, *, wal: bool = True) -> str:
    """The signature of the file at ``path`` now (see `signature()`); ``wal=False`` skips
    the look for a WAL (for a file the scan found without one)."""
    return current_state(path, wal=wal)[1]


def current_state(path: Path, *, wal: bool = True) -> tuple[os.stat_result, str]:
    """The file's stat now and its signature (see `current_signature()`)."""
    st = path.stat()
    return st, signature(st, _wal_stat(path) if wal else None)


def _source_file(rel: str, location: str, st: os.stat_result, has_wal: bool = True) -> SourceFile:
    # In a folder walk the listing tells whether a WAL exists, saving a stat per file.
    sig = signature(st, _wal_stat(Path(location)) if has_wal else None)
    return SourceFile(rel, location, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), sig)


def is_sqlite(path: Path) -> bool:
    """True if the file starts with the SQLite 3 header."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # no file object: asked of every file
    except OSError:
        return False
    try:
        return os.read(fd, len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:  # a folder (EISDIR), an I/O error
        return False
    finally:
        os.close(fd)


def scan(path: Path, *, include_credentials: bool = False) -> ScannedSource:
    """List the file or folder at ``path`` (stat only, no data read but small JSON files'
    heads, sniffed for keys).

    ``include_credentials`` keeps credential files inside a folder; otherwise they are skipped
    and reported in ``skipped``.

    Raises:
        SourceMissingError: nothing exists at ``path``.
        SourceError: ``path`` is neither a regular file nor a folder.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise SourceMissingError(
            f"{path} does not exist; check the path, or use immediate_backup_if_needed() to "
            "skip missing outputs"
        ) from None
    if stat.S_ISLNK(st.st_mode):
        # An explicitly named link is followed once: the user asked for this path.
        st = path.stat()
    if stat.S_ISREG(st.st_mode):
        return ScannedSource("file", [_source_file("", str(path), st)], [], [])
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path} is not a regular file or folder; back up a file or folder")
    files: list[SourceFile] = []
    empty_dirs: list[str] = []
    skipped: list[str] = []
    failed: list[str] = []
    _walk(path, "", files, empty_dirs, (skipped, failed), include_credentials)
    return ScannedSource("dir", files, empty_dirs, skipped, failed)


def _walk(
    folder: Path,
    prefix: str,
    files: list[SourceFile],
    empty: list[str],
    left_out: tuple[list[str], list[str]],
    include_credentials: bool,
) -> None:
    skipped, failed = left_out
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        failed.append(
            f"{prefix or '.'}: unreadable folder ({exc.strerror}), left out; make it readable "
            f"(chmod u+rx {shlex.quote(str(folder))}) or move it out of the folder"
        )
        return
    names = {e.name for e in entries}
    kept = 0
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        if entry.name.startswith(SNAPSHOT_PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            failed.append(f"{rel}: cannot stat ({exc.strerror}), left out; check the file")
            continue
        if stat.S_ISLNK(st.st_mode):
            skipped.append(f"{rel}: symlink (not followed)")
        elif stat.S_ISDIR(st.st_mode):
            kept += 1
            _walk(Path(entry.path), f"{rel}/", files, empty, left_out, include_credentials)
        elif stat.S_ISREG(st.st_mode):
            if _is_sidecar(entry.name, names, folder):
                continue
            why = None if include_credentials else credential_reason(rel, entry.path, st.st_size)
            if why is not None:
                skipped.append(
                    f"{rel}: looks like a credential ({why}), left out; set "
                    "include_credential_files = true to back it up"
                )
                continue
            kept += 1
            has_wal = f"{entry.name}-wal" in names
            files.append(_source_file(rel, entry.path, st, has_wal))
        else:
            skipped.append(f"{rel}: special file (socket, FIFO or device)")
    if kept == 0 and prefix:
        empty.append(prefix.rstrip("/"))


def _is_sidecar(name: str, names: set[str], folder: Path) -> bool:
    if not name.endswith(SQLITE_SIDECARS):  # nearly every file: one test, not one per suffix
        return False
    for suffix in SQLITE_SIDECARS:
        if name.endswith(suffix):
            db = name[: -len(suffix)]
            return db in names and is_sqlite(folder / db)
    return False


@contextlib.contextmanager
def readable_copy(source: SourceFile) -> Iterator[tuple[Path, SnapshotKind]]:
    """Yield ``(path to read, kind)`` for a consistent state of ``source``.

    ``kind`` is ``"sqlite"`` or ``"log"`` for a snapshot, consistent by construction, and
    ``"plain"`` for the file itself: then the caller must check that it did not change while
    it was read (compare `signature()` before and after).
    """
    kind: SnapshotKind
    path = source.abspath  # once: a Path costs more than the header's read
    if path.suffix in APPEND_LOG_SUFFIXES:
        snapshot, kind = snapshot_complete_lines(path), "log"
    elif is_sqlite(path):
        snapshot, kind = snapshot_sqlite(path), "sqlite"
    else:
        yield path, "plain"
        return
    try:
        yield snapshot, kind
    finally:
        snapshot.unlink(missing_ok=True)


def _temp_beside(path: Path, suffix: str) -> Path:
    import tempfile  # here: only snapshots need it

    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=SNAPSHOT_PREFIX, suffix=suffix)
    except OSError:
        fd, name = tempfile.mkstemp(prefix=SNAPSHOT_PREFIX, suffix=suffix)
    os.close(fd)
    return Path(name)


def snapshot_complete_lines(log_path: Path) -> Path:
    """Copy an append-only log up to its last complete line into a temp file beside it."""
    snapshot = _temp_beside(log_path, log_path.suffix)
    try:
        with open(log_path, "rb") as src:
            data = src.read()
        end = data.rfind(b"\n") + 1  # 0 when no line is complete yet
        snapshot.write_bytes(data[:end])
        return snapshot
    except BaseException:
        snapshot.unlink(missing_ok=True)
        raise


def snapshot_sqlite(db: Path) -> Path:
    """Copy a live SQLite database consistently into a temp file beside it.

    Uses the online backup API in one step (``pages=-1``): the step-wise form restarts on every
    write and may never finish under a busy writer. A database up to
    `MEMORY_SNAPSHOT_BYTES` is copied into memory, checked there and written out in one
    write (several times faster than SQLite writing the copy page by page, and the read lock is
    held for less); a larger one is copied straight into the temp file, unjournaled. The temp
    file sits on the source's own disk (falling back to the system temp folder if that is
    read-only), never on the target.

    Raises:
        SourceError: the database cannot be read, the snapshot fails its check, or the temp
            file cannot be written (e.g. the disk is full).
    """
    import sqlite3  # here: most runs have no database to snapshot

    snapshot = _temp_beside(db, ".db")
    try:
        serialize = hasattr(sqlite3.Connection, "serialize")  # Python 3.11+
        in_memory = serialize and db.stat().st_size <= MEMORY_SNAPSHOT_BYTES
        data = None
        # Read from a plain connection: it honours the WAL and a hot journal as any reader does.
        src = sqlite3.connect(str(db), timeout=30)
        try:
            dst = sqlite3.connect(":memory:" if in_memory else str(snapshot))
            try:
                if not in_memory:  # a temp copy needs no rollback journal and no fsyncs
                    dst.execute("PRAGMA journal_mode=OFF")
                    dst.execute("PRAGMA synchronous=OFF")
                started = time.perf_counter()
                src.backup(dst)
                held = time.perf_counter() - started
                row = dst.execute("PRAGMA quick_check").fetchone()
                if in_memory:
                    data = dst.serialize()  # type: ignore[attr-defined,unused-ignore]
            finally:
                dst.close()
        finally:
            src.close()
        if data is not None:
            snapshot.write_bytes(data)
        if row is None or row[0] != "ok":
            raise SourceError(f"snapshot of {db} failed its integrity check: {row}")
        if held >= SNAPSHOT_WARN_SECONDS:
            log.warning(
                "snapshot of %s held a read lock for %.1f s; writers with a short busy timeout "
                "may fail with 'database is locked': use WAL mode (PRAGMA journal_mode=WAL) or "
                "back up less often",
                db,
                held,
            )
        else:
            log.debug("snapshot of %s took %.3f s (read lock held)", db, held)
        return snapshot
    except (sqlite3.Error, OSError) as exc:  # OSError: the temp file could not be written
        snapshot.unlink(missing_ok=True)
        raise SourceError(
            f"could not snapshot the SQLite database {db}: {exc}; check it opens with sqlite3 "
            f"and that {snapshot.parent} has room for a copy"
        ) from exc
    except BaseException:
        snapshot.unlink(missing_ok=True)
        raise
