"""A backend over any fsspec filesystem: the base class most backends extend.

It implements every `Backend` operation with plain fsspec calls. What
it cannot promise on an arbitrary store (atomic create-only writes, a checksum the store
computes) is marked below; a backend for a real store overrides those methods with the store's
own mechanism (``O_EXCL`` and ``os.replace`` locally, ``If-None-Match`` on S3, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

from .backend import Backend, ObjectInfo
from .error_table import translating
from .errors import TargetError
from .hashing import hash_bytes, hash_file

__all__ = ["FsspecBackend"]

#: Files up to this size are read into memory once, hashed and sent from the same buffer.
SMALL_FILE = 16 << 20


class FsspecBackend(Backend):
    """A backend storing objects under ``root`` on an fsspec filesystem ``fs``.

    Args:
        fs: the filesystem, built with ``skip_instance_cache=True`` so that no other code
            shares (or keeps alive) its credentials.
        root: the root path in ``fs``'s own notation (no protocol).
        url: the display URL (no credentials).
    """

    #: fsspec has no create-only write in general (see `write_new()`).
    create_only: ClassVar[bool] = False

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def path(self, key: str) -> str:
        """The filesystem path of ``key``."""
        return f"{self.root}/{key}" if key else self.root

    def translate_errors(self, operation: str, key: str) -> AbstractContextManager[None]:
        """Turn the store's exceptions in the block into mlbackup errors (`translate_error`).

        ``FileNotFoundError`` and ``FileExistsError`` pass through unchanged: the protocol
        relies on them.
        """
        what = f"{operation} {key!r}" if key else operation
        return translating(lambda exc: self.translate_error(exc, what))

    def translate_error(self, exc: Exception, what: str) -> Exception:
        """The mlbackup error for the store's ``exc`` raised while doing ``what``; ``exc``
        itself to let it through (``FileNotFoundError`` for a missing object). Stores map
        their codes with `mlbackup.error_table`; by default any other ``OSError`` is a
        `TargetError`."""
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            return TargetError(f"{what} on {self.url} failed: {exc}")
        return exc

    def confirm_absent(self, exc: FileNotFoundError, what: str) -> None:
        """Raise unless ``exc`` really means "no such key or folder". Filesystems also say
        "not found" for a missing bucket: an empty listing then would read as "no backups",
        and a resume would start from scratch. Object stores override this."""

    def stored_checksum(self, info: Mapping[str, Any]) -> str | None:
        """The checksum (in ``hash_name``) the store reports in ``fs.info()``, if any."""
        return None

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        path = self.path(key)
        with self.translate_errors("upload", key):
            size = local_path.stat().st_size
            if size <= SMALL_FILE:
                data = local_path.read_bytes()
                size, digest = len(data), hash_bytes(data, self.hash_name)
                self.fs.pipe_file(path, data)
            else:
                # Hash first, then upload: the page cache serves the second read. Stores with
                # a streaming upload API override this to hash while sending.
                size, digest = hash_file(local_path, self.hash_name)
                self.fs.put_file(str(local_path), path)
            stored = self.info(key)
        self._check_stored(key, stored, size, digest)
        return ObjectInfo(key, size, digest)

    def _check_stored(self, key: str, stored: ObjectInfo | None, size: int, digest: str) -> None:
        if stored is None or stored.size != size:
            got = "nothing" if stored is None else f"{stored.size} bytes"
            raise TargetError(
                f"upload of {key!r} to {self.url} could not be verified: sent {size} bytes, "
                f"the store holds {got}; retry the backup"
            )
        if stored.checksum is not None and stored.checksum != digest:
            raise TargetError(
                f"upload of {key!r} to {self.url} could not be verified: the store's "
                f"{self.hash_name} differs from the bytes sent; retry the backup"
            )

    def open_read(self, key: str) -> BinaryIO:
        with self.translate_errors("read", key):
            return cast(BinaryIO, self.fs.open(self.path(key), "rb"))

    def info(self, key: str) -> ObjectInfo | None:
        # fsspec's exists() answers False on *any* error; only a real "not found" means absent.
        with self.translate_errors("stat", key):
            try:
                info = self.fs.info(self.path(key))
            except FileNotFoundError:
                return None
        if info.get("type") == "directory":
            return None
        return ObjectInfo(key, int(info["size"]), self.stored_checksum(info))

    def list_dir(self, prefix: str) -> list[str]:
        with self.translate_errors("list", prefix):
            try:
                entries = self.fs.ls(self.path(prefix), detail=False)
            except FileNotFoundError as exc:
                self.confirm_absent(exc, f"list {prefix!r}")
                return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def move(self, src: str, dst: str) -> None:
        with self.translate_errors("move", src):
            self.fs.mv(self.path(src), self.path(dst))

    def delete(self, key: str) -> None:
        with self.translate_errors("delete", key), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(key))

    def write_new(self, key: str, data: bytes) -> None:
        # Check-then-write: create-only only against sequential writers. Stores with a
        # conditional write (If-None-Match, ifGenerationMatch=0, O_EXCL) override this.
        if self.info(key) is not None:
            raise FileExistsError(key)
        with self.translate_errors("write", key):
            self.fs.pipe_file(self.path(key), data)

    def read_bytes(self, key: str) -> bytes:
        with self.translate_errors("read", key):
            return cast(bytes, self.fs.cat_file(self.path(key)))

    def link(self, src: str, dst: str) -> bool:
        # A copy inside the filesystem (a server-side copy on object stores).
        with self.translate_errors("copy", src):
            self.fs.cp_file(self.path(src), self.path(dst))
        return True

    def modified(self, key: str) -> float | None:
        with self.translate_errors("stat", key):
            try:
                info = self.fs.info(self.path(key))
            except FileNotFoundError:
                return None
        return _timestamp(info)


def _timestamp(info: Mapping[str, Any]) -> float:
    """The modification time in fsspec's ``info()``, whose field names differ per filesystem;
    unknown reads as now (the object is then never collected for being old)."""
    import datetime

    for field in ("mtime", "LastModified", "updated", "created"):
        value = info.get(field)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return float("inf")
