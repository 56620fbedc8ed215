"""The ``file`` backend: a folder on a local or mounted disk; mlbackup's embedded default.

URLs: ``file:///abs/path``, ``local:///abs/path``, or a plain path given to ``open_target``.
One option: ``durable`` (default true) flushes the data to the disk before each commit, so a
power loss cannot leave a committed version whose data never reached the disk; ``durable=False``
skips the flush (a process crash still loses nothing: the page cache outlives the process),
which makes a first backup of a large tree several times faster on a slow disk.

All file I/O goes through ``self.fs`` (an `OsFileSystem`, shaped like
fsspec's ``LocalFileSystem``), so a test can wrap it in
`mlbackup.testing.faulty_fs.FaultyFS` and inject ``OSError`` with any errno, slow calls
or short writes into the real backend code.

Atomicity and durability: every object is written while it is hashed to a file with no name
(Linux's ``O_TMPFILE``, on the target's filesystem), then linked at ``.mlbackup/objects/<hash>``
(read-only); the link fails if that object exists already, and a process killed before it
leaves nothing behind. Where the filesystem has no unnamed files (FUSE mounts such as Drive's,
other systems) the object is written to a temp file under ``<root>/.mlbackup/tmp/<worker>/``
and renamed into place. A manifest is published with ``os.link``, which fails if the name
exists, so a commit is create-only. Before a manifest is committed, one ``syncfs`` makes all
the data durable at once (a per-file ``fsync`` costs milliseconds per small file). The
browsable tree is hard links to the objects: it costs no room, and its files are read-only
because they *are* the objects (replace a file there, never edit it in place; a restore would
report the damage). Where the filesystem has no hard links (the Drive mount) there is none.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast
from urllib.parse import unquote, urlsplit

from mlbackup.backend import ObjectInfo
from mlbackup.error_table import Facts, Rule, translate
from mlbackup.errors import (
    BackendPermissionError,
    BackendUnavailableError,
    ConfigError,
    SourceChangedError,
    TargetError,
    UnsafePathError,
)
from mlbackup.fsspec_backend import FsspecBackend
from mlbackup.hashing import CHUNK_SIZE, copy_hashing, new_hasher
from mlbackup.layout import objects_prefix, tmp_prefix

from .leftovers import remove_stale_temp_files
from .osfs import UNNAMED_FILES, OsFileSystem

__all__ = ["LocalBackend"]

log = logging.getLogger("mlbackup.local")  # under the one mlbackup logger

#: Temp folders under ``.mlbackup/tmp/``: one per worker thread, reused across runs.
_TMP_SLOTS = 16
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
#: Errors a network or FUSE filesystem reports for a moment's trouble: retried by the policy.
_TRANSIENT = {errno.ETIMEDOUT, errno.EAGAIN, errno.EBUSY, errno.EINTR}


def _errno_names(numbers: set[int]) -> frozenset[str]:
    return frozenset(errno.errorcode[n] for n in numbers)


#: What link() answers on a filesystem without hard links (FUSE mounts, FAT, some NAS).
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS, errno.EMLINK}
#: What open(O_TMPFILE) answers where the filesystem or kernel has no unnamed files.
_NO_UNNAMED = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS}
#: What ``copy_file_range`` answers where the kernel or file system cannot copy (a FUSE
#: mount, two file systems, an old kernel): the bytes then pass through this process.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}
_OBJECTS = objects_prefix() + "/"
#: How many objects made by this process are remembered for a failing backup to withdraw.
_CREATED_KEPT = 1 << 17
#: Objects are read-only: the browsable tree's hard links share their bytes.
_OBJECT_MODE = 0o444


@functools.cache
def _libc_syncfs() -> Any:
    """libc's ``syncfs(2)``, or None off Linux (looked up once; ctypes is imported only here)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)


def _syncfs(fd: int) -> bool:
    """Flush the one filesystem holding ``fd``. False where ``syncfs`` is not available."""
    syncfs = _libc_syncfs()
    return syncfs is not None and syncfs(fd) == 0


class LocalBackend(FsspecBackend):
    """Backups in a local folder (which on Colab may be the mounted Google Drive)."""

    hash_name: ClassVar[str] = "xxh128"
    max_workers: ClassVar[int] = 4
    link_workers: ClassVar[int | None] = 1  # hard links: one thread is fastest
    create_only: ClassVar[bool] = True  # link() of a written temp file fails if the name exists
    touches: ClassVar[bool] = True
    #: Whether objects are written as unnamed files (``O_TMPFILE``) linked at their address.
    unnamed_files: ClassVar[bool] = True
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {"durable": bool}

    def __init__(self, root: Path, fs: Any = None, *, durable: bool = True) -> None:
        fs = OsFileSystem() if fs is None else fs
        super().__init__(fs, str(root), root.as_uri())
        self.durable = durable
        # Folders made by this backend: one makedirs per folder, not one per file.
        self._made_dirs: set[str] = set()
        self._inside: set[str] = set()  # folders seen to be reached without a symlink
        self._created: dict[str, int] = {}  # objects this backend made: key -> mtime (ns)
        self._created_lock = threading.Lock()
        self._tmp_slots = itertools.count()
        self._thread = threading.local()
        self._swept = False  # leftovers of killed runs: looked for once, at the first write
        self._links = True  # until the filesystem says it has no hard links
        # Objects are written unnamed and linked into place, until the filesystem says no.
        self._unnamed = self.unnamed_files and UNNAMED_FILES

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> LocalBackend:
        options = cls.check_options(options)
        parts = urlsplit(url)
        if parts.scheme in ("file", "local"):
            if parts.netloc not in ("", "localhost"):
                raise ConfigError(
                    f"{url!r} names host {parts.netloc!r}; a local target needs an absolute "
                    "path such as file:///content/backups"
                )
            raw = unquote(parts.path)
        else:
            raw = url
        if not raw:
            raise ConfigError(f"{url!r} has no path; give a folder such as file:///tmp/backups")
        return cls(Path(raw).expanduser().absolute(), durable=options.get("durable", True))

    @property
    def local_root(self) -> Path:
        return Path(self.root)

    @property
    def lock_key(self) -> str:
        # The folder itself, however it was spelled (a symlink, "x/../t", drive:// or the
        # mount path): writers on this machine then queue instead of racing.
        return Path(os.path.realpath(self.root)).as_uri()

    def absent_because(self) -> str | None:
        if os.path.isdir(self.root):
            return None
        return f"the folder {self.root} does not exist (mistyped? the first backup creates it)"

    def stored_path(self, key: str) -> Path:
        """The file on disk that holds ``key`` (objects are fanned out into folders)."""
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        # Paths stay str here: a Path per file costs more than some of the syscalls.
        if key.startswith(_OBJECTS) and "/" not in key[len(_OBJECTS) :]:
            # On disk, objects fan out into 16 folders by their first hex digit: in one folder
            # the workers' renames queue on its lock in the kernel, and every folder more is
            # a mkdir of its own on a first backup.
            digest = key[len(_OBJECTS) :]
            path = self.path(f"{_OBJECTS}{digest[:1]}/{digest}")
        else:
            path = self.path(key)
        folder = path.rpartition("/")[0]
        if folder not in self._inside:
            self._check_inside(folder)
        return path

    def _check_inside(self, folder: str) -> None:
        """Refuse a folder reached through a symlink on the target: someone who may write
        there could otherwise point a read or a write anywhere. Checked once per folder; the
        last component of a key is opened without following links (O_NOFOLLOW)."""
        real_root = os.path.realpath(self.root)
        expected = real_root + os.path.normpath(folder)[len(os.path.normpath(self.root)) :]
        if os.path.realpath(folder) != expected:
            raise UnsafePathError(
                f"{folder} is reached through a symlink inside the target {self.root}; "
                "mlbackup never follows links there (was it planted?): remove the link"
            )
        self._inside.add(folder)

    #: What each errno means here, and what the user does about it.
    error_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            BackendUnavailableError,
            "failed for a moment ({code}); retrying; if it persists, check the disk or mount",
            codes=_errno_names(_TRANSIENT),
        ),
        Rule(
            TargetError,
            "the disk is full; free space there or choose another target",
            codes=_errno_names(_FULL),
        ),
        Rule(
            BackendPermissionError,
            "permission denied; make the folder writable or choose another target",
            codes=_errno_names(_DENIED),
        ),
        Rule(
            UnsafePathError,
            "refused: it is a symlink on the target; mlbackup never follows links there (was "
            "it planted?): remove the link",
            codes=_errno_names({errno.ELOOP}),
        ),
        Rule(
            TargetError,
            "an I/O error ({code}); check the storage and retry",
            codes=_errno_names({errno.EIO}),
        ),
    )

    def translate_error(self, exc: Exception, what: str) -> Exception:
        if not isinstance(exc, OSError) or isinstance(exc, FileNotFoundError):
            return exc
        facts = Facts(code=errno.errorcode.get(exc.errno or 0, ""))
        return translate(exc, facts, self.error_rules, what=what, where=self.url)

    def _tmp_dir(self) -> str:
        """This thread's temp folder. Workers creating and renaming files in one shared folder
        contend on its lock in the kernel: a first backup of 5,000 files took about 60% more
        CPU time (kernel time, nearly all of it) than with one folder per worker."""
        slot = getattr(self._thread, "tmp_slot", None)
        if slot is None:
            slot = self._thread.tmp_slot = next(self._tmp_slots) % _TMP_SLOTS
        return self._file(f"{tmp_prefix()}/{slot}")

    def _tmp_file(self) -> str:
        """A new empty file (mode 0600) in a temp folder of the target, on the same filesystem."""
        import tempfile  # here: a run with nothing to send does not need it

        if not self._swept:
            self._swept = True
            remove_stale_temp_files(self._file(tmp_prefix()))
        tmp_dir = self._tmp_dir()
        self._ensure_dir(tmp_dir)
        try:
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        except FileNotFoundError:  # the folder was removed behind our back: make it again
            self._made_dirs.clear()
            self._ensure_dir(tmp_dir)
            fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        os.close(fd)
        return name

    def _ensure_dir(self, folder: str) -> None:
        if folder not in self._made_dirs:
            self.fs.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)

    def _move_into_place(self, tmp: str, dest: str) -> None:
        self._ensure_dir(os.path.dirname(dest))
        try:
            self.fs.mv(tmp, dest)
        except FileNotFoundError:
            if not os.path.exists(tmp):
                raise
            self._made_dirs.clear()  # a folder was removed behind our back
            self._ensure_dir(os.path.dirname(dest))
            self.fs.mv(tmp, dest)

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        with self.translate_errors("write", key):
            return self._write(local_path, lambda _digest: key)

    def put_object(self, local_path: Path, key: str, digest: str) -> ObjectInfo:
        with self.translate_errors("write", key):
            return self._write(local_path, lambda _digest: key, expected=digest)

    def put_object_hashing(
        self, local_path: Path, key_for: Callable[[str], str]
    ) -> ObjectInfo | None:
        with self.translate_errors("write", local_path.name):
            return self._write(local_path, key_for, expected="")

    def put_object_extending(
        self, local_path: Path, key: str, digest: str, base: str, base_size: int
    ) -> ObjectInfo | None:
        """An appended file: its first ``base_size`` bytes are copied from the object
        ``base`` by the kernel (``copy_file_range``, a reflink on file systems that have
        them), and only the rest is written from the file. The whole file is still read and
        hashed, so the object holds exactly the bytes that hash to ``digest``."""
        with self.translate_errors("write", key):
            try:
                head = open(self._file(base), "rb", buffering=0)  # noqa: SIM115 - closed below
            except FileNotFoundError:
                return None  # collected since it was listed: send the whole file
            with head:
                if os.fstat(head.fileno()).st_size != base_size:
                    return None
                return self._write(local_path, lambda _digest: key, digest, (head, base_size))

    def _write(
        self,
        local_path: Path,
        key_for: Callable[[str], str],
        expected: str | None = None,
        head: _Head | None = None,
    ) -> ObjectInfo:
        """Copy the file to the target while hashing it and name it by its key once complete.
        With ``expected`` (an object: "" for any hash) the file is read-only, must hash to
        ``expected`` if one is given, and an existing object of that hash is kept instead.
        With ``head`` (an open object and a size), that many first bytes come from it."""
        if expected is not None and self._unnamed:
            try:
                return self._write_unnamed(local_path, key_for, expected, head)
            except _NoUnnamedFiles:
                self._unnamed = False
                log.debug("%s has no unnamed files: objects are written to temp files", self.root)
        tmp = self._tmp_file()
        try:
            with self.fs.open(tmp, "wb") as out:
                size, digest, stamp = self._copy_hashing(
                    local_path, out, read_only=expected is not None, head=head
                )
            key = key_for(digest)
            if expected is not None:
                _check_digest(local_path, digest, expected)
                if self.info(key) is not None and self._touched(key):
                    # Stored already (same bytes), and touched so that retention, which
                    # collects only objects untouched for its grace period, keeps it.
                    return ObjectInfo(key, size, digest, reused=True)
            existed = expected is not None and self.info(key) is not None
            self._move_into_place(tmp, self._file(key))
        finally:
            _remove(tmp)  # gone already once moved into place
        if expected is not None and not existed:
            self._remember_created(key, stamp)
        return ObjectInfo(key, size, digest, reused=existed)

    def _write_unnamed(
        self, local_path: Path, key_for: Callable[[str], str], expected: str, head: _Head | None
    ) -> ObjectInfo:
        """Write an object as a file with no name, then link it at its content address: no
        temp name, no rename, and a kill leaves nothing behind. The link fails if the name is
        taken, which is how an object stored already is found (no stat first)."""
        folder = self._tmp_dir()
        self._ensure_dir(folder)
        try:
            out = self.fs.open_unnamed(folder, _OBJECT_MODE)
        except OSError as exc:
            if exc.errno in _NO_UNNAMED:
                raise _NoUnnamedFiles from exc
            raise
        with out:
            size, digest, stamp = self._copy_hashing(local_path, out, read_only=False, head=head)
            _check_digest(local_path, digest, expected)
            key = key_for(digest)
            dest = self._file(key)
            self._ensure_dir(os.path.dirname(dest))
            try:
                self._link_unnamed(dest, out)
            except FileExistsError:
                if not self._touched(key):  # not ours to touch: replace it with our copy
                    tmp = f"{folder}/put-{os.urandom(8).hex()}"
                    self._link_unnamed(tmp, out)
                    try:
                        self._move_into_place(tmp, dest)
                    finally:
                        _remove(tmp)
                # Stored already (kept alive for retention, as above): others may list it.
                return ObjectInfo(key, size, digest, reused=True)
        self._remember_created(key, stamp)
        return ObjectInfo(key, size, digest)

    def _link_unnamed(self, dest: str, out: Any) -> None:
        try:
            self.fs.link_unnamed(dest, out)
        except FileNotFoundError:
            if os.path.isdir(os.path.dirname(dest)):
                raise _NoUnnamedFiles from None  # no /proc to link the descriptor from
            self._made_dirs.clear()  # a folder was removed behind our back
            self._ensure_dir(os.path.dirname(dest))
            self.fs.link_unnamed(dest, out)
        except OSError as exc:
            if exc.errno in _NO_LINKS and exc.errno != errno.EMLINK:
                raise _NoUnnamedFiles from exc
            raise

    def _copy_hashing(
        self, local_path: Path, out: Any, *, read_only: bool, head: _Head | None = None
    ) -> tuple[int, str, int]:
        """Copy ``local_path`` into the open ``out``; its size, digest and modification time
        (ns). Raises if fewer bytes reached the disk than were sent (a full disk that lies).
        With ``head``, its bytes are copied in place of the file's first ones, which are read
        for the hash only (the caller found they hash to the head object's name)."""
        hasher = new_hasher(self.hash_name)
        with open(local_path, "rb", buffering=0) as src:
            size = 0
            if head is not None:
                size = copy_hashing(src, None, hasher, limit=head[1])
                out.flush()
                _copy_range(head[0].fileno(), out.fileno(), size)
            size += copy_hashing(src, out, hasher, progress=True)
        out.flush()
        st = os.fstat(out.fileno())
        written = st.st_size  # what the disk holds, not what we sent
        if read_only:
            os.fchmod(out.fileno(), _OBJECT_MODE)  # by descriptor: no path lookup
        if written != size:
            raise TargetError(
                f"short write of {local_path.name!r} in {self.root}: {written} of {size} "
                "bytes reached the disk; check free space and retry"
            )
        return size, hasher.hexdigest(), st.st_mtime_ns

    @property
    def keeps_browsable_tree(self) -> bool:
        return self._links

    def link(self, src: str, dst: str) -> bool:
        if not self._links:
            return False
        with self.translate_errors("link", dst):
            source, dest = self._file(src), self._file(dst)
            self._ensure_dir(os.path.dirname(dest))
            try:
                try:
                    self.fs.link(source, dest)
                except FileExistsError:
                    self._replace_with_link(source, dest)
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                self._links = False
                log.info("%s has no hard links: no browsable tree is kept there", self.root)
                return False
        return True

    def _replace_with_link(self, source: str, dest: str) -> None:
        self._ensure_dir(self._tmp_dir())
        tmp = f"{self._tmp_dir()}/link-{os.urandom(8).hex()}"
        self.fs.link(source, tmp)
        try:
            try:
                self.fs.mv(tmp, dest)
            except IsADirectoryError:
                _remove_empty_tree(dest)  # a folder of the old version stood there
                self.fs.mv(tmp, dest)
        except BaseException:
            _remove(tmp)
            raise

    def unlink(self, key: str) -> None:
        self.delete(key)
        # Folders the old version had and the new one has not: prune them if now empty.
        parent = os.path.dirname(self._file(key))
        root = os.path.realpath(self.root)
        while os.path.realpath(parent) != root and parent.startswith(self.root):
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)

    def adopt(self, src: str, dst: str) -> bool:
        if not self.link(src, dst):
            self.copy(src, dst, mode=_OBJECT_MODE)
        return True

    def copy(self, src: str, dst: str, *, mode: int = 0o644) -> None:
        """Copy a file inside the target, atomically (a temp file renamed into place)."""
        with self.translate_errors("copy", src):
            tmp = self._tmp_file()
            try:
                shutil.copyfile(self._file(src), tmp)
                os.chmod(tmp, mode)
                self._move_into_place(tmp, self._file(dst))
            except BaseException:
                _remove(tmp)
                raise

    def touch(self, key: str) -> None:
        if not self._touched(key):
            raise FileNotFoundError(key)  # cannot be kept alive: the caller sends it again

    def _touched(self, key: str) -> bool:
        """Set the object's time to now; False if it is gone, or where this user may not
        (another user's object on a shared folder): storing our copy keeps it alive then.
        The time is exact to the nanosecond (the kernel's own clock ticks in milliseconds), so
        that a writer withdrawing the object it just made sees that another reuses it."""
        now = time.time_ns()
        with self.translate_errors("touch", key):
            try:
                os.utime(self._file(key), ns=(now, now))
            except (FileNotFoundError, PermissionError):
                return False
        return True

    def _remember_created(self, key: str, stamp: int) -> None:
        # Only a failing run's own objects are ever withdrawn: the newest ones suffice.
        with self._created_lock:
            self._created[key] = stamp
            if len(self._created) > _CREATED_KEPT:
                del self._created[next(iter(self._created))]

    def withdraw(self, key: str) -> None:
        """Remove an object this backend created for a backup that failed (on a full disk,
        left in place, it would fail every later backup too), unless it was touched since:
        another writer found it stored and will list it. It is moved aside first, so that a
        writer touching it from then on fails to and stores its own copy."""
        with self._created_lock:
            stamp = self._created.pop(key, None)
        if stamp is None:
            return
        path = self._file(key)
        # Beside it: that folder exists (and a rename there needs no room on a full disk).
        aside = f"{os.path.dirname(path)}/.withdrawn-{os.urandom(8).hex()}"
        with contextlib.suppress(OSError):
            if os.lstat(path).st_mtime_ns != stamp:
                return  # touched: reused by another writer
            os.rename(path, aside)
            try:
                if os.lstat(aside).st_mtime_ns != stamp:  # touched just before the move
                    with contextlib.suppress(FileExistsError):
                        os.link(aside, path)
            finally:
                os.unlink(aside)

    def modified(self, key: str) -> float | None:
        with self.translate_errors("stat", key):
            try:
                return os.stat(self._file(key)).st_mtime
            except (FileNotFoundError, NotADirectoryError):
                return None

    def open_read(self, key: str) -> BinaryIO:
        with self.translate_errors("read", key):
            return cast(BinaryIO, self.fs.open(self._file(key), "rb"))

    def info(self, key: str) -> ObjectInfo | None:
        with self.translate_errors("stat", key):
            try:
                found = self.fs.info(self._file(key))
            except (FileNotFoundError, NotADirectoryError):
                return None
        if found.get("type") != "file":
            return None
        return ObjectInfo(key, int(found["size"]), None)

    def list_dir(self, prefix: str) -> list[str]:
        if prefix == objects_prefix():
            fanned = self._list(prefix)
            return sorted(name for folder in fanned for name in self._list(f"{prefix}/{folder}"))
        return self._list(prefix)

    def _list(self, prefix: str) -> list[str]:
        with self.translate_errors("list", prefix):
            folder = self.path(prefix)  # a folder, never fanned
            if folder not in self._inside:
                self._check_inside(folder)
            try:
                entries = self.fs.ls(folder, detail=False)
            except (FileNotFoundError, NotADirectoryError):
                return []
        return sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)

    def move(self, src: str, dst: str) -> None:
        with self.translate_errors("move", src):
            self._move_into_place(self._file(src), self._file(dst))

    def delete(self, key: str) -> None:
        with self.translate_errors("delete", key), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._file(key))

    def write_new(self, key: str, data: bytes) -> None:
        dest = self._file(key)
        with self.translate_errors("write", key):
            tmp = self._tmp_file()
            try:
                with self.fs.open(tmp, "wb") as out:
                    out.write(data)
                    out.flush()
                    if self.durable:
                        os.fsync(out.fileno())
                written = int(self.fs.info(tmp)["size"])
                if written != len(data):
                    raise TargetError(
                        f"short write of {key!r} in {self.root}: {written} of {len(data)} bytes "
                        "reached the disk; check free space and retry"
                    )
                self._ensure_dir(os.path.dirname(dest))
                try:
                    # link() fails with EEXIST if the name is taken: an atomic create-only publish.
                    self.fs.link(tmp, dest)
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        raise FileExistsError(key) from exc
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                        raise
                    # No hard links (some FUSE mounts such as Drive's): check, then rename.
                    if self.fs.exists(dest):
                        raise FileExistsError(key) from exc
                    self.fs.mv(tmp, dest)
                if self.durable:
                    _fsync_dir(os.path.dirname(dest))
            finally:
                _remove(tmp)

    def read_bytes(self, key: str) -> bytes:
        with self.translate_errors("read", key):
            return cast(bytes, self.fs.cat_file(self._file(key)))

    def free_bytes(self) -> int | None:
        with self.translate_errors("statvfs", "."):
            folder = Path(self.root)
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent  # not made yet: the room of the disk it will be on
            return shutil.disk_usage(folder).free

    def sync(self) -> None:
        root = Path(self.root)
        if not self.durable or not root.exists():
            return
        fd = os.open(root, os.O_RDONLY)
        try:
            if not _syncfs(fd):
                os.sync()
        finally:
            os.close(fd)


class _NoUnnamedFiles(Exception):
    """This filesystem cannot make or name unnamed files: temp files and renames it is."""


def _check_digest(local_path: Path, digest: str, expected: str) -> None:
    if expected and digest != expected:
        raise SourceChangedError(f"{local_path} changed while it was read")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _remove_empty_tree(path: str) -> None:
    """Remove a folder that holds only (empty) folders; anything else raises ``OSError``."""
    for folder, _subdirs, _files in os.walk(path, topdown=False):
        os.rmdir(folder)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: An open object and how many of its first bytes to copy (`LocalBackend.put_object_extending`).
_Head = tuple[BinaryIO, int]


def _copy_range(src: int, dst: int, count: int) -> None:
    """Copy ``count`` bytes from ``src``'s start to ``dst``'s position inside the kernel
    (``copy_file_range``), or through this process where the file system cannot."""
    done = 0
    try:
        while done < count:
            copied = os.copy_file_range(src, dst, count - done, done)
            if copied == 0:
                break  # the head object is shorter than it said: the size check below fails
            done += copied
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
        while done < count:
            chunk = memoryview(os.pread(src, min(CHUNK_SIZE, count - done), done))
            if not chunk:
                break
            while chunk:  # a write may take only part of the chunk
                written = os.write(dst, chunk)
                chunk = chunk[written:]
                done += written
