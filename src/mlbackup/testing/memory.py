"""The ``memory`` backend: an in-process store, the reference backend for unit tests.

``memory://bucket/prefix`` URLs share one process-wide store (fsspec's), so two targets opened
on the same URL see the same backups, as two machines would see one bucket. It verifies uploads
with an md5 it computes from the stored bytes, standing in for the checksum a cloud store reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from fsspec.implementations.memory import MemoryFileSystem

from mlbackup.errors import ConfigError
from mlbackup.fsspec_backend import FsspecBackend
from mlbackup.hashing import hash_bytes

__all__ = ["MemoryBackend"]


class MemoryBackend(FsspecBackend):
    """Backups held in this process's memory."""

    hash_name: ClassVar[str] = "md5"

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> MemoryBackend:
        cls.check_options(options)
        parts = urlsplit(url)
        root = f"/{parts.netloc}{parts.path}".rstrip("/")
        if parts.scheme != "memory" or root in ("", "/"):
            raise ConfigError(f"{url!r} is not a memory URL; use memory://bucket/prefix")
        fs = MemoryFileSystem(skip_instance_cache=True)
        return cls(fs, root, f"memory:/{root}")

    def stored_checksum(self, info: Mapping[str, Any]) -> str | None:
        return hash_bytes(self.fs.cat_file(info["name"]), self.hash_name)
