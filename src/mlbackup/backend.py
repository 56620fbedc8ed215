"""The backend plugin interface: the few storage operations the backup protocol needs.

A backend stores opaque objects under ``/``-separated keys relative to its root. The protocol
(what to send, where, in which order; see :mod:`mlbackup.engine`) lives in the core and is the
same for every backend; a backend only has to make each operation below keep its promise.
Most backends subclass :class:`mlbackup.fsspec_backend.FsspecBackend` and override only what
their store does differently.

Register a backend under the entry-point group ``mlbackup.backends`` (one entry per URL scheme)
or at run time with :func:`mlbackup.register_backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from .options import check_options
from .retry import RetryPolicy

__all__ = ["Backend", "ObjectInfo"]


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object.

    Attributes:
        key: the object's key relative to the backend root.
        size: its size in bytes.
        checksum: its hash in the backend's ``hash_name``, when the store reports one cheaply
            (an md5 from S3, GCS or Drive), else ``None``.
    """

    key: str
    size: int
    checksum: str | None = None


class Backend(ABC):
    """One storage location (a folder, a bucket prefix, a Drive folder) holding backups.

    Class attributes:
        hash_name: the hash that verifies data on this store (see :mod:`mlbackup.hashing`).
        max_workers: how many transfers the engine runs at once.
        retry_policy: how each operation's transient failures are retried.
        staged_writes: writes are staged locally and confirmed by the store later.
        many_files_warning: a file count above which a backup logs a warning.
    """

    hash_name: ClassVar[str] = "md5"
    max_workers: ClassVar[int] = 8
    #: How transient failures (:class:`~mlbackup.BackendUnavailableError`) are retried.
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy()
    #: True where a finished write is only staged on this machine (the Colab Drive mount
    #: uploads in the background): results then say ``staged`` rather than confirmed.
    staged_writes: ClassVar[bool] = False
    #: Warn when one backup holds more files than this (stores slow with many small files).
    many_files_warning: ClassVar[int | None] = None
    #: The options the backend accepts, each with the type(s) its value may have;
    #: ``from_url`` rejects any other name or type.
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Return the options with text values converted to their declared types.

        Options typed on the command line (``-o anon=true``) arrive as text. Raise
        :class:`ConfigError` naming any unknown option or a value of the wrong type (without
        echoing the value: it may be a secret).
        """
        return check_options(cls.__name__, cls.option_types, options)

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> Backend:
        """Build the backend for ``url``; ``options`` are the store's own settings.

        Raise :class:`mlbackup.ConfigError` for an option the backend does not know, listing
        the valid ones.
        """

    def check(self) -> None:  # noqa: B027 - a hook: a local folder needs no preflight
        """Confirm the storage exists and the credentials work, failing fast with the fix.

        Called once when a target is opened. Cloud backends make one cheap request here so a
        missing bucket or a rejected key is reported at once, not after minutes of retries.
        """

    @property
    @abstractmethod
    def url(self) -> str:
        """The target's URL for display. Never contains a credential."""

    @property
    def local_root(self) -> Path | None:
        """The root as a local folder, for targets that are one (local, Drive mount)."""
        return None

    @abstractmethod
    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        """Store the file at ``key``, atomically: readers see the old object or the whole new one.

        Returns the stored object's info with ``checksum`` set to the hash of the bytes sent,
        computed while sending; raises if the store's own size or checksum disagree. To move
        progress bars during a large file, call :func:`mlbackup.progress.byte_reporter`'s
        function (when not None) with each chunk's size once it is sent.
        """

    def put_file_extending(
        self, local_path: Path, key: str, base: str, base_size: int
    ) -> ObjectInfo | None:
        """Store the file at ``key`` like :meth:`put_file`, sending only what follows its
        first ``base_size`` bytes, which the caller has checked equal the object at ``base``
        (the previous version of an appended file). None where the store cannot build an
        object from another's bytes: the caller then sends the whole file.
        """
        return None

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Open the object for reading; raise ``FileNotFoundError`` if it does not exist."""

    @abstractmethod
    def info(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or ``None`` if there is no object at ``key``."""

    @abstractmethod
    def list_dir(self, prefix: str) -> list[str]:
        """Return the base names directly under ``prefix`` (``[]`` if there are none)."""

    @abstractmethod
    def move(self, src: str, dst: str) -> None:
        """Move an object, replacing ``dst``. Never leaves both keys missing."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; a missing object is not an error."""

    @abstractmethod
    def write_new(self, key: str, data: bytes) -> None:
        """Create an object atomically; raise ``FileExistsError`` if ``key`` already exists."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Read a small object whole; raise ``FileNotFoundError`` if it does not exist."""

    def read_at_most(self, key: str, limit: int) -> bytes:
        """The object's first ``limit`` bytes (all of it if it is shorter), read in as few
        requests as the store allows: restores read small files this way. Raise
        ``FileNotFoundError`` if it does not exist. The default reads through
        :meth:`open_read`; a store where opening costs a request of its own overrides it.
        """
        with self.open_read(key) as f:
            return f.read(limit)

    def sync(self) -> None:  # noqa: B027 - a hook: most stores are durable once a write returns
        """Make every object written so far durable. Called before a manifest is committed."""

    def duplicates(self, prefix: str = "") -> dict[str, list[str]]:
        """Keys under ``prefix`` held by several stored objects (stores that allow duplicate
        names, such as Drive): key -> object IDs, the one read first. Most stores: none."""
        return {}

    def repair_duplicates(self, prefix: str = "") -> int:
        """Keep the object read for each duplicated key, remove the others; returns how many."""
        return 0

    def credentials(self) -> str:
        """Where this backend's credentials come from, in words (never the credentials
        themselves): what ``mlbackup doctor`` shows. Stores that need none say so."""
        return "none needed"

    def free_bytes(self) -> int | None:
        """Room left on the store where it reports a limit (a disk, a Drive quota); None
        where it has none to report (buckets)."""
        return None

    def close(self) -> None:  # noqa: B027 - a hook: most backends hold nothing to release
        """Release connections and temporary state."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
