"""The backend plugin interface: the few storage operations the backup protocol needs.

A backend stores opaque objects under ``/``-separated keys relative to its root. The protocol
(what to send, where, in which order; see `mlbackup.engine` and `mlbackup.commit`)
lives in the core and is the same for every backend; a backend only has to make each operation
below keep its promise. The ``put_object*`` methods store the immutable, content-addressed
objects versions refer to: their defaults are built on the plain operations, and a store with
a cheaper way (hashing while writing, copying parts inside the store) overrides them.
Most backends subclass `mlbackup.fsspec_backend.FsspecBackend` and override only what
their store does differently.

Register a backend under the entry-point group ``mlbackup.backends`` (one entry per URL scheme)
or at run time with [`mlbackup.register_backend()`][mlbackup.register_backend]. A store that
a sync client mounts as a local folder (the Colab Drive mount) also declares its class under
``mlbackup.mounts``, so the core can ask it `Backend.mount_root()` and
`Backend.default_target()` without importing every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from .errors import SourceChangedError
from .options import check_options
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .target import BackupTarget

__all__ = ["Backend", "ObjectInfo"]


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object.

    Attributes:
        key: the object's key relative to the backend root.
        size: its size in bytes.
        checksum: its hash in the backend's ``hash_name``, when the store reports one cheaply
            (an md5 from S3, GCS or Drive), else ``None``.
        ref: the store's own ID of the object where it names objects by ID (a Drive file ID),
            recorded in manifests so that readers find exactly this object; else ``None``.
        reused: a ``put_object*`` call found the object stored already and kept it (nothing
            was written: the call did not create it).
    """

    key: str
    size: int
    checksum: str | None = None
    ref: str | None = None
    reused: bool = False


class Backend(ABC):
    """One storage location (a folder, a bucket prefix, a Drive folder) holding backups.

    Class attributes:
        hash_name: the hash that verifies data on this store (see `mlbackup.hashing`).
        max_workers: how many transfers the engine runs at once.
        retry_policy: how each operation's transient failures are retried.
        staged_writes: writes are staged locally and confirmed by the store later.
        many_files_warning: a file count above which a backup logs a warning.
        create_only: `write_new()` is atomic against writers on other machines. Where
            it is not, manifests get writer-tagged names that two writers cannot both take.
    """

    hash_name: ClassVar[str] = "md5"
    max_workers: ClassVar[int] = 8
    #: How transient failures (`BackendUnavailableError`) are retried.
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy()
    #: Seconds one operation may take, its retries included: the deadline of the policy a
    #: target is opened with, set on the backend then. A backend whose reads go on by
    #: themselves after a cut connection gives up within it.
    deadline: float = RetryPolicy.deadline
    #: True where a finished write is only staged on this machine (the Colab Drive mount
    #: uploads in the background): results then say ``staged`` rather than confirmed.
    staged_writes: ClassVar[bool] = False
    #: Warn when one backup holds more files than this (stores slow with many small files).
    many_files_warning: ClassVar[int | None] = None
    #: True where `write_new()` fails for a name another writer took, whatever machine it
    #: runs on (``O_EXCL``/``link``, S3 ``If-None-Match``, GCS ``ifGenerationMatch=0``).
    create_only: ClassVar[bool] = True
    #: True where `touch()` can refresh an object's time cheaply: an existing object is
    #: then reused (and touched, so retention's grace period starts again) instead of sent.
    touches: ClassVar[bool] = False
    #: How many threads make the browsable tree's links at once (None: ``max_workers``).
    #: Local hard links gain nothing from threads: they contend on the folder's lock (5,000
    #: links took 0.40 s with 8 threads, 0.13 s with one); a bucket's server-side copies do.
    link_workers: ClassVar[int | None] = None
    #: The options the backend accepts, each with the type(s) its value may have;
    #: ``from_url`` rejects any other name or type.
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}
    #: The ``MLBACKUP_*`` environment variables the backend itself reads (the Drive mount's
    #: ``MLBACKUP_DRIVE_MOUNT_ROOT``): known names, so the config does not warn about them.
    #: Read of the ``mlbackup.mounts`` backends only (the config imports no other backend).
    environment: ClassVar[tuple[str, ...]] = ()
    #: What turns staged writes into confirmed ones, for `staged_writes` stores (the Drive
    #: mount: ``mlbackup_drive.flush()``): what ``doctor`` and ``status`` tell the user.
    staged_advice: ClassVar[str] = "wait until the store has uploaded it before the machine goes"
    #: What to do when the store reports no room left: what ``doctor`` tells the user.
    no_room_advice: ClassVar[str] = "free space there or choose another target"

    @classmethod
    def mount_root(cls) -> Path | None:
        """The local folder where a sync client mounts this store on this machine (the Colab
        Drive mount), or None: files under it are already on backup storage, so an immediate
        backup skips them (where backups go with no target configured is `default_target`'s).

        The core asks only the backends that declare themselves in the ``mlbackup.mounts``
        entry-point group (besides ``mlbackup.backends``), so it need not import every backend
        to know; see `mlbackup.registry.mounted_backends`.
        """
        return None

    @classmethod
    def default_target(cls, project: str) -> str | None:
        """The target for ``project`` when none is configured and this store is at hand (a
        mounted Drive: a folder in My Drive), else None. Asked of ``mlbackup.mounts`` only."""
        return None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Return the options with text values converted to their declared types.

        Options typed on the command line (``-o anon=true``) arrive as text. Raise
        `ConfigError` naming any unknown option or a value of the wrong type (without
        echoing the value: it may be a secret).
        """
        return check_options(cls.__name__, cls.option_types, options)

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> Backend:
        """Build the backend for ``url``; ``options`` are the store's own settings.

        Raise `mlbackup.ConfigError` for an option the backend does not know, listing
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

    @property
    def lock_key(self) -> str:
        """What the target *is*, for this machine's lock of a name: two spellings of one
        storage place (a symlinked folder, ``drive://`` and the mount path) give the same
        key. Default: the URL."""
        return self.url

    @abstractmethod
    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        """Store the file at ``key``, atomically: readers see the old object or the whole new one.

        Returns the stored object's info with ``checksum`` set to the hash of the bytes sent,
        computed while sending; raises if the store's own size or checksum disagree. To move
        progress bars during a large file, call `mlbackup.progress.byte_reporter()`'s
        function (when not None) with each chunk's size once it is sent.
        """

    def put_object(self, local_path: Path, key: str, digest: str) -> ObjectInfo:
        """Store the file as the immutable object ``key``, whose content hash must be
        ``digest``; never leave other bytes at ``key``. Raise
        `SourceChangedError` if the bytes read do not hash to ``digest`` (the
        file changed since it was hashed). Another writer may store the same object at the
        same moment: both write the same bytes, so either may win.

        The default sends the file to a temp key, checks the checksum the store reports and
        then moves it to ``key``; stores that can check before they publish override it.
        """
        import uuid

        from .layout import tmp_prefix

        temp = f"{tmp_prefix()}/object-{uuid.uuid4().hex}"
        try:
            stored = self.put_file(local_path, temp)
            if stored.checksum != digest:
                raise SourceChangedError(f"{local_path} changed while it was sent")
            self.move(temp, key)
        except BaseException:
            self.delete(temp)
            raise
        return ObjectInfo(key, stored.size, digest, stored.ref)

    def put_object_hashing(
        self, local_path: Path, key_for: Callable[[str], str]
    ) -> ObjectInfo | None:
        """Store a file whose hash is not known yet as the object ``key_for(digest)``, hashing
        it while it is written (one read instead of two). None where the store needs the key
        before the bytes (the caller then hashes first and calls `put_object()`)."""
        return None

    def put_object_extending(
        self, local_path: Path, key: str, digest: str, base: str, base_size: int
    ) -> ObjectInfo | None:
        """Store the file as the object ``key`` like `put_object()`, sending only what
        follows its first ``base_size`` bytes, which the caller has checked equal the object
        at ``base`` (the previous version of an appended file). None where the store cannot
        build an object from another's bytes: the caller then sends the whole file.
        """
        return None

    def link(self, src: str, dst: str) -> bool:
        """Make ``dst`` show the bytes of the object ``src`` as cheaply as the store allows (a
        hard link, a server-side copy, a Drive shortcut), replacing what mlbackup put at
        ``dst`` before (and only that). This builds the browsable tree; False where the store
        has no cheap way, and then there is none."""
        return False

    @property
    def keeps_browsable_tree(self) -> bool:
        """Whether `link()` builds a browsable tree on this store (False: the backup
        skips that step, with no request). Default: where the class overrides `link()`."""
        return type(self).link is not Backend.link

    def unlink(self, key: str) -> None:
        """Remove what `link()` put at ``key`` (a missing key is not an error)."""
        self.delete(key)

    def adopt(self, src: str, dst: str) -> bool:
        """Make the object ``dst`` hold the bytes of ``src`` (a plain file of a format-1
        version) without sending them again: a link where the store has one, else a
        server-side copy. False where neither exists (the caller sends the bytes)."""
        return self.link(src, dst)

    def touch(self, key: str) -> None:
        """Set the object's modification time to now (where `touches` is True): a
        writer about to reuse an object that no version it knows of lists does this, so
        that retention, which collects only objects untouched for its grace period, keeps it.
        Raise ``FileNotFoundError`` if it is gone."""
        raise NotImplementedError

    def modified(self, key: str) -> float | None:
        """When the object was last written or touched (seconds since the epoch), or None if
        it does not exist: retention collects only objects older than its grace period.
        Default: unknown, which reads as "just now" (never collected for being old)."""
        return None if self.info(key) is None else float("inf")

    def open_ref(self, ref: str) -> BinaryIO:
        """Open the object the store calls ``ref`` (see [`ObjectInfo.ref`][mlbackup.ObjectInfo.ref])
        for reading; raise ``FileNotFoundError`` if it does not exist. Only stores that set refs
        need it."""
        raise FileNotFoundError(ref)

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
        `open_read()`; a store where opening costs a request of its own overrides it.
        """
        with self.open_read(key) as f:
            return f.read(limit)

    def sync(self) -> None:  # noqa: B027 - a hook: most stores are durable once a write returns
        """Make every object written so far durable. Called before a manifest is committed."""

    def withdraw(self, key: str) -> None:  # noqa: B027 - a hook: most stores leave it to GC
        """Remove the object ``key`` that this process created for a backup that then failed,
        unless another writer may be reusing it since. Best effort, never raises. The default
        leaves it: the next retention's sweep marks it and collects it after the grace
        period. Stores where a full disk stops every later backup (local folders) remove it
        at once."""

    def absent_because(self) -> str | None:
        """Why the target holds nothing at all, where that is known without a request (a
        local folder that does not exist: a mistyped path), else None."""
        return None

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

    def unconfirmed(self, target: BackupTarget, name: str, options: Mapping[str, Any]) -> list[str]:
        """For `staged_writes` stores: the files of ``name``'s newest version that the store
        itself does not hold yet (``[]``: all confirmed), checked with ``options`` (the Drive
        mount asks the Drive API with the ``gdrive`` backend's options).

        Raises:
            ConfigError: the store does not stage writes, so there is nothing to confirm.
        """
        from .errors import ConfigError

        raise ConfigError(f"{self.url} does not stage writes: every backup is confirmed")

    def close(self) -> None:  # noqa: B027 - a hook: most backends hold nothing to release
        """Release connections and temporary state."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
