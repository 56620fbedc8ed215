"""BackupTarget: the backend-neutral view of a backup location.

It lists versions, reads manifests, locates each file's bytes and checks them; committing and
retention are in `mlbackup.commit`, storing objects in `mlbackup.objects`. The backup
and restore protocols (`mlbackup.engine`, [`mlbackup.restore`][mlbackup.restore]) are built on it; a
backend only stores objects.

Where a file's bytes live (see `mlbackup.layout`): a format-2 version's entries are the
immutable objects ``.mlbackup/objects/<hash>`` (where the store names objects by ID, the
object the entry's ``ref`` names).
A format-1 version (release 0.1.0) kept its newest bytes at the plain keys and older ones under
``names/<name>/objects/<hash>``; the first format-2 backup of such a name puts the plain files'
bytes under ``.mlbackup/objects/`` before the browsable tree changes, so every format-1 entry
is found at one of those places, and the hash check on every read catches anything else.
"""

from __future__ import annotations

import builtins
import dataclasses
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

from . import layout
from .backend import Backend
from .closing import ClosingContext
from .errors import BackupNotFoundError, ConfigError, IntegrityError
from .hashing import copy_hashing, new_hasher
from .manifest import MAX_MANIFEST_BYTES, FileEntry, Manifest
from .registry import get_backend_class
from .results import BackupInfo, VerifyResult
from .retry import RetryPolicy
from .retrying_backend import RetryingBackend

#: Files up to this size are restored and verified with one read request each.
WHOLE_READ_MAX = 4 << 20

#: How `BackupTarget.copy_verified()` ends the line for a file whose object is not there.
MISSING = "missing from the target"

__all__ = ["BackupTarget", "open_target"]

log = logging.getLogger("mlbackup")


@dataclass(frozen=True)
class DataLocation:
    """Where to read one manifest entry's bytes."""

    entry: FileEntry
    key: str
    #: Where else to look, in order, if ``key`` is gone (format-1 versions only: a plain
    #: file's bytes are put under ``.mlbackup/objects/`` before the plain file is replaced).
    fallbacks: tuple[str, ...] = ()


class BackupTarget(ClosingContext):
    """A backup location: one backend plus the protocol's bookkeeping.

    Build one with [`open_target()`][mlbackup.open_target]. It is a context manager; leaving it
    closes the backend.

    Examples:
        >>> import tempfile
        >>> target = open_target(tempfile.mkdtemp())
        >>> target.list()
        []
    """

    def __init__(self, backend: Backend, *, reached: bool = True) -> None:
        self.backend = backend
        #: The manifest key of each version, by name, from the last listing.
        self._keys: dict[str, dict[int, layout.ManifestKey]] = {}
        # Per name, the key and manifest this process committed last: a version is immutable,
        # so a backup that follows its own commit needs the listing only, not the read (a
        # callback's steady state: one request fewer per trial).
        self._committed: dict[str, tuple[str, Manifest]] = {}
        self._reached = reached  # the backend's check() has passed

    def reach(self) -> None:
        """Check that the store is there and answers (once: later calls return at once).
        [`open_target()`][mlbackup.open_target] does this; a target opened without it (background
        mode, which must not wait on the network in a constructor) does it before its first
        backup."""
        if not self._reached:
            self.backend.check()
            self._reached = True

    @property
    def url(self) -> str:
        """The target's URL (never with credentials)."""
        return self.backend.url

    @property
    def local_root(self) -> Path | None:
        """The target's folder, for targets that are local folders (or a mount); else None."""
        return self.backend.local_root

    @property
    def hash_name(self) -> str:
        """The hash that verifies data on this target."""
        return self.backend.hash_name

    def __repr__(self) -> str:
        return f"BackupTarget({self.url!r})"

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    # -- versions -------------------------------------------------------------------------

    def names(self) -> builtins.list[str]:
        """The names with at least one committed version, sorted."""
        names = []
        for segment in self.backend.list_dir(layout.names_prefix()):
            name = layout.name_from_segment(segment)
            try:
                layout.check_name(name)
            except ConfigError:
                # Not a folder we would make (someone else's, or planted): one bad entry must
                # not hide every backup on the target.
                log.warning(
                    "%s: %s/%s is not a backup name mlbackup writes; skipped (remove it if it "
                    "is not yours)", self.url, layout.names_prefix(), segment,
                )  # fmt: skip
                continue
            if self.versions(name):
                names.append(name)
        return sorted(names)

    def manifest_keys(self, name: str) -> builtins.list[layout.ManifestKey]:
        """Every manifest of ``name`` the store lists, by version then tag."""
        layout.check_name(name)
        found = (
            layout.parse_manifest_key(base)
            for base in self.backend.list_dir(layout.manifests_prefix(name))
        )
        keys = sorted(k for k in found if k is not None)
        # Two manifests of one version exist only for a moment, on a store without create-only
        # writes, while the later writer withdraws its own: every reader reads the first.
        first: dict[int, layout.ManifestKey] = {}
        for k in keys:
            first.setdefault(k.version, k)
        self._keys[name] = first
        return keys

    def versions(self, name: str) -> builtins.list[int]:
        """The committed versions of ``name``, oldest first (empty if none)."""
        return sorted({k.version for k in self.manifest_keys(name)})

    def listed_versions(self, name: str) -> builtins.list[int]:
        """The versions of ``name`` as the last listing saw them (listed now if never)."""
        known = self._keys.get(name)
        return sorted(known) if known is not None else self.versions(name)

    def manifest_key_of(self, name: str, version: int) -> str:
        found = self._keys.get(name, {}).get(version)
        if found is None:
            self.manifest_keys(name)
            found = self._keys[name].get(version)
        if found is None:
            raise BackupNotFoundError(f"backup {name!r} has no version {version} on {self.url}")
        return layout.manifest_key(name, found.version, found.tag)

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        """The manifest of ``version`` of ``name`` (default: the newest).

        Raises:
            BackupNotFoundError: no such name or version.
            IntegrityError: the manifest is unreadable or inconsistent.
        """
        versions = self.versions(name)
        if not versions:
            absent = self.backend.absent_because()
            if absent is not None or not self.names():
                raise BackupNotFoundError(
                    f"no backup named {name!r}: {self.url} holds no backups at all"
                    + (f" ({absent})" if absent else "; check the target URL or folder")
                )
            raise BackupNotFoundError(
                f"no backup named {name!r} on {self.url}; see the names with `mlbackup ls`"
            )
        if version is None:
            version = versions[-1]
        elif version not in versions:
            kept = ", ".join(map(str, versions))
            raise BackupNotFoundError(
                f"backup {name!r} has no version {version} on {self.url}; kept versions: {kept}"
            )
        return self.read_manifest(name, version)

    def latest_manifest(self, name: str) -> Manifest | None:
        """The newest manifest of ``name``, or None if it was never backed up."""
        for _ in range(3):
            versions = self.versions(name)
            if not versions:
                return None
            key, ours = self._committed.get(name, ("", None))
            if ours is not None and key == self.manifest_key_of(name, versions[-1]):
                return ours
            try:
                return self.read_manifest(name, versions[-1])
            except BackupNotFoundError:
                continue  # withdrawn by its writer (or dropped) since the listing: look again
        return self.manifest(name)

    def read_manifest(self, name: str, version: int) -> Manifest:
        """Read the manifest of a version known to exist; see `manifest()`.

        Raises:
            BackupNotFoundError: the version is gone (another writer's retention dropped it,
                or its writer withdrew it on a store without create-only writes).
        """
        key = self.manifest_key_of(name, version)
        # Never more than a reader loads (one byte more tells that it is too large).
        limit = MAX_MANIFEST_BYTES + 1
        try:
            data = self.backend.read_at_most(key, limit)
        except FileNotFoundError:
            self.manifest_keys(name)  # the listing was stale: read what is there now
            key = self.manifest_key_of(name, version)
            try:
                data = self.backend.read_at_most(key, limit)
            except FileNotFoundError:
                raise BackupNotFoundError(
                    f"backup {name!r} version {version} is gone from {self.url}"
                ) from None
        manifest = Manifest.from_bytes(data, where=f"{self.url}/{key}")
        if manifest.name != name or manifest.version != version:
            raise IntegrityError(
                f"manifest {self.url}/{key} claims to be {manifest.name!r} version "
                f"{manifest.version}; it was moved or edited, restore another version"
            )
        return manifest

    def committed_here(self, name: str) -> Manifest | None:
        """The manifest of ``name`` this process committed last, if any (it may no longer be
        the newest: `latest_manifest()` says)."""
        return self._committed.get(name, ("", None))[1]

    def note_committed(self, key: str, manifest: Manifest) -> None:
        """Remember the manifest this process just committed at ``key`` (`commit_version()`)."""
        self._committed[manifest.name] = (key, manifest)

    def delete_manifest(self, name: str, version: int) -> None:
        """Drop one version (retention only: see `mlbackup.commit`)."""
        key = self.manifest_key_of(name, version)
        if self._committed.get(name, ("",))[0] == key:
            del self._committed[name]
        self.backend.delete(key)

    def stored_objects(self) -> set[str]:
        """The hash of every object on the store: one listing (on a bucket a request per
        1,000 objects)."""
        return set(self.backend.list_dir(layout.objects_prefix()))

    def listed_digests(self) -> set[str]:
        """The hash of every file every committed version of every name lists."""
        listed: set[str] = set()
        for segment in self.backend.list_dir(layout.names_prefix()):
            name = layout.name_from_segment(segment)
            for version in self.versions(name):
                try:
                    listed.update(e.hash for e in self.read_manifest(name, version).files)
                except BackupNotFoundError:
                    continue  # dropped by another writer's retention since the listing
        return listed

    def collect_legacy_objects(self, name: str) -> None:
        """Delete the format-1 objects of ``name`` that no kept format-1 version lists."""
        legacy = self.backend.list_dir(layout.legacy_objects_prefix(name))
        if not legacy:
            return
        needed: set[str] = set()
        for version in self.versions(name):
            manifest = self.read_manifest(name, version)
            if manifest.format_version == 1:
                needed.update(e.hash for e in manifest.files)
        for digest in legacy:
            if digest not in needed:
                self.backend.delete(layout.legacy_object_key(name, digest))

    def list(self, name: str | None = None, *, check_stored: bool = True) -> list[BackupInfo]:
        """One [`BackupInfo`][mlbackup.BackupInfo] per committed version, by name then version.

        Args:
            name: only this backup's versions; default all.
            check_stored: also count each version's files whose stored bytes are gone
                (``BackupInfo.missing_files``), from one listing of the objects.
        """
        stored = self.stored_objects() if check_stored else None
        infos = []
        for each in [name] if name is not None else self.names():
            for version in self.versions(each):
                m = self.read_manifest(each, version)
                missing = None
                if stored is not None and m.format_version >= 2:
                    missing = sum(1 for e in m.files if e.hash not in stored)
                infos.append(
                    BackupInfo(
                        name=each,
                        version=version,
                        created=m.created,
                        kind=m.kind,
                        files=len(m.files),
                        bytes=m.total_bytes,
                        missing_files=missing,
                    )
                )
        return infos

    # -- data -----------------------------------------------------------------------------

    def locate(self, manifest: Manifest) -> builtins.list[DataLocation]:
        """Where each file of ``manifest`` is stored (no per-file requests)."""
        if manifest.format_version >= 2:
            return [DataLocation(e, layout.object_key(e.hash)) for e in manifest.files]
        displaced = set(self.backend.list_dir(layout.legacy_objects_prefix(manifest.name)))
        located = []
        for e in manifest.files:
            shared = layout.object_key(e.hash)
            plain = layout.plain_key(manifest.name, e.path)
            if e.hash in displaced:
                located.append(
                    DataLocation(e, layout.legacy_object_key(manifest.name, e.hash), (shared,))
                )
            else:
                located.append(DataLocation(e, shared, (plain,)))
        return located

    def copy_verified(
        self, location: DataLocation, out: BinaryIO | None, hash_name: str
    ) -> str | None:
        """Stream one file's bytes into ``out`` (or nowhere), checking size and hash.

        Returns None if they match, else a one-line description of the damage.
        """
        entry = location.entry
        shown = entry.path or "(the file)"
        hasher = new_hasher(hash_name)
        try:
            src = self._open_located(location)
        except FileNotFoundError:
            return f"{shown}: {MISSING}"
        with src:
            size = copy_hashing(src, out, hasher, progress=True)
        if size < entry.size:
            return f"{shown}: {size} bytes stored, {entry.size} expected (truncated or replaced)"
        if size > entry.size:  # a small file is read only one byte past its recorded size
            return f"{shown}: more than the {entry.size} bytes expected are stored (replaced)"
        if hasher.hexdigest() != entry.hash:
            return f"{shown}: content does not match its recorded {hash_name} (corrupted)"
        return None

    def _open_located(self, location: DataLocation) -> BinaryIO:
        size = location.entry.size
        read: Callable[[str], BinaryIO] = self.backend.open_read
        if 0 < size <= WHOLE_READ_MAX:
            # A small file in one request (opening a bucket object asks for its size first),
            # and one byte more than recorded, so that a longer object shows as damaged.
            def read(key: str) -> BinaryIO:
                return io.BytesIO(self.backend.read_at_most(key, size + 1))

        if location.entry.ref is not None:
            try:
                return self.backend.open_ref(location.entry.ref)  # the object the store names
            except FileNotFoundError:
                pass  # removed behind our back, then put back by a backup: found by its key
                # (a same-named file of another tool is caught by the hash check)
        keys = (location.key, *location.fallbacks)
        for key in keys[:-1]:
            try:
                return read(key)
            except FileNotFoundError:
                continue
        return read(keys[-1])

    def verify(self, name: str, version: int | None = None) -> VerifyResult:
        """Read every file of a version back and check its size and hash.

        Raises:
            BackupNotFoundError: no such name or version.
            IntegrityError: some files are missing or damaged; ``.problems`` names each.

        Examples:
            >>> import pathlib, tempfile
            >>> from mlbackup import backup
            >>> src = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
            >>> _ = src.write_text("hello")
            >>> target = open_target(tempfile.mkdtemp())
            >>> _ = backup(src, target=target, name="notes.txt")
            >>> target.verify("notes.txt").files_checked
            1
        """
        manifest = self.manifest(name, version)
        problems = [
            problem
            for location in self.locate(manifest)
            if (problem := self.copy_verified(location, None, manifest.hash_name))
        ]
        if problems:
            raise IntegrityError(
                f"backup {name!r} version {manifest.version} on {self.url} is damaged; "
                "restore another version (--version) or back the data up again",
                problems,
            )
        return VerifyResult(name, manifest.version, len(manifest.files), manifest.total_bytes)


def _policy_with_deadline(policy: RetryPolicy, deadline: Any) -> RetryPolicy:
    if deadline is None:
        return policy
    try:
        seconds = float(deadline)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(
            f"deadline={deadline!r} is not a number of seconds; give one above 0, such as "
            "deadline=45"
        )
    return dataclasses.replace(policy, deadline=seconds)


def _split_scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and scheme else "file"


def open_target(url: str | PathLike[str], **options: Any) -> BackupTarget:
    """Open the backup location at ``url``.

    Args:
        url: a folder path (the local backend), or a URL whose scheme picks the backend:
            ``file://`` or any scheme an installed plugin serves
            (`mlbackup.available_backends()`; ``s3://`` and ``gs://`` among them).
        **options: the backend's own storage options, e.g. ``endpoint_url`` for S3; and, for
            every backend, ``deadline``: the seconds one operation may take with its retries
            (default: the backend's policy, 45 s unless it says otherwise).

    Raises:
        UnknownBackendError: no installed backend serves the scheme (the message lists them).
        ConfigError: an option or the URL is invalid.
        TargetMissingError: the bucket the URL names does not exist.
        BackendPermissionError: the store rejected the credentials or denied access.
        BackendUnavailableError: the store could not be reached.

    Examples:
        >>> import tempfile
        >>> target = open_target(tempfile.mkdtemp())
        >>> target.url.startswith("file://")
        True
    """
    target = open_target_unreached(url, **options)
    try:
        target.reach()
    except BaseException:
        target.close()
        raise
    return target


def open_target_unreached(url: str | PathLike[str], **options: Any) -> BackupTarget:
    """[`open_target()`][mlbackup.open_target] without the network: the URL and options are checked
    (bad input raises here), and the store is first asked by
    [`BackupTarget.reach()`][mlbackup.BackupTarget.reach] or the first call that needs it. For
    constructors that must return at once, such as background mode's."""
    text = str(url)
    backend_class = get_backend_class(_split_scheme(text))
    options = dict(options)
    policy = _policy_with_deadline(backend_class.retry_policy, options.pop("deadline", None))
    backend = RetryingBackend(backend_class.from_url(text, options), policy)
    log.debug("opened %s with %s", backend.url, backend_class.__name__)
    return BackupTarget(backend, reached=False)
