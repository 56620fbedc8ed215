"""The ``file`` backend: a folder on a local or mounted disk; mlbackup's embedded default.

URLs: ``file:///abs/path``, ``local:///abs/path``, or a plain path given to ``open_target``.
No options.

Atomicity and durability: every object is written to a temporary file under
``<root>/.mlbackup/tmp/`` (same filesystem, so the rename is atomic) while it is hashed, then
moved into place with ``os.replace``; a manifest is published with ``os.link``, which fails if
the name exists, so a commit is create-only. Before a manifest is committed, one ``syncfs``
makes all the data durable at once (a per-file ``fsync`` costs milliseconds per small file).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar
from urllib.parse import unquote, urlsplit

from fsspec.implementations.local import LocalFileSystem

from mlbackup.backend import ObjectInfo
from mlbackup.errors import BackendPermissionError, ConfigError, TargetError
from mlbackup.fsspec_backend import FsspecBackend
from mlbackup.hashing import CHUNK_SIZE, new_hasher
from mlbackup.layout import tmp_prefix

__all__ = ["LocalBackend"]

_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _syncfs(fd: int) -> bool:
    """``syncfs(2)`` on Linux: flush one filesystem. False where it is not available."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    syncfs = getattr(libc, "syncfs", None)
    return syncfs is not None and syncfs(fd) == 0


class LocalBackend(FsspecBackend):
    """Backups in a local folder (which on Colab may be the mounted Google Drive)."""

    hash_name: ClassVar[str] = "xxh128"
    max_workers: ClassVar[int] = 4

    def __init__(self, root: Path) -> None:
        super().__init__(LocalFileSystem(skip_instance_cache=True), str(root), root.as_uri())

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> LocalBackend:
        cls.check_options(options)
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
        return cls(Path(raw).expanduser().absolute())

    @property
    def local_root(self) -> Path:
        return Path(self.root)

    def _file(self, key: str) -> Path:
        return Path(self.path(key))

    @contextmanager
    def translate_errors(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, FileExistsError):
            raise
        except OSError as exc:
            where = f"{operation} {key!r} in {self.root}"
            if exc.errno in _FULL:
                raise TargetError(
                    f"{where} failed: the disk is full; free space there or choose another target"
                ) from exc
            if exc.errno in _DENIED:
                raise BackendPermissionError(
                    f"{where} failed: permission denied; make the folder writable or choose "
                    "another target"
                ) from exc
            if exc.errno == errno.EIO:
                raise TargetError(
                    f"{where} failed with an I/O error (on a Google Drive mount this usually "
                    "means the Drive quota is full); check the storage and retry"
                ) from exc
            raise TargetError(f"{where} failed: {exc}") from exc

    def _tmp_file(self) -> tuple[int, Path]:
        tmp_dir = self._file(tmp_prefix())
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-")
        return fd, Path(name)

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        dest = self._file(key)
        with self.translate_errors("write", key):
            fd, tmp = self._tmp_file()
            try:
                hasher = new_hasher(self.hash_name)
                size = 0
                with open(local_path, "rb") as src, os.fdopen(fd, "wb") as out:
                    while chunk := src.read(CHUNK_SIZE):
                        hasher.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                    out.flush()
                    written = os.fstat(out.fileno()).st_size
                if written != size:
                    raise TargetError(f"short write of {key!r}: {written} of {size} bytes")
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return ObjectInfo(key, size, hasher.hexdigest())

    def open_read(self, key: str) -> BinaryIO:
        with self.translate_errors("read", key):
            return open(self._file(key), "rb")

    def info(self, key: str) -> ObjectInfo | None:
        with self.translate_errors("stat", key):
            try:
                st = self._file(key).stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(key, st.st_size, None)

    def list_dir(self, prefix: str) -> list[str]:
        with self.translate_errors("list", prefix):
            try:
                return sorted(os.listdir(self._file(prefix)))
            except (FileNotFoundError, NotADirectoryError):
                return []

    def move(self, src: str, dst: str) -> None:
        with self.translate_errors("move", src):
            target = self._file(dst)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._file(src), target)

    def delete(self, key: str) -> None:
        with self.translate_errors("delete", key):
            self._file(key).unlink(missing_ok=True)

    def write_new(self, key: str, data: bytes) -> None:
        dest = self._file(key)
        with self.translate_errors("write", key):
            fd, tmp = self._tmp_file()
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    # link() fails with EEXIST if the name is taken: an atomic create-only publish.
                    os.link(tmp, dest)
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        raise FileExistsError(key) from exc
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                        raise
                    # No hard links (some FUSE mounts such as Drive's): check, then rename.
                    if dest.exists():
                        raise FileExistsError(key) from exc
                    os.replace(tmp, dest)
                _fsync_dir(dest.parent)
            finally:
                tmp.unlink(missing_ok=True)

    def read_bytes(self, key: str) -> bytes:
        with self.translate_errors("read", key):
            return self._file(key).read_bytes()

    def sync(self) -> None:
        root = Path(self.root)
        if not root.exists():
            return
        fd = os.open(root, os.O_RDONLY)
        try:
            if not _syncfs(fd):
                os.sync()
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
