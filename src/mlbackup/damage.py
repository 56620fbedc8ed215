"""Which committed versions no longer restore whole: objects deleted behind mlbackup's back.

A person tidying the folder, a lifecycle rule of the store or a sync tool can remove objects a
version needs. Every check here costs one listing of the object space (on S3 and GCS a request
per 1,000 objects) plus each version's manifest, read once per `BackupTarget` (format-2
manifests never change once committed), never a request per file.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from weakref import WeakKeyDictionary

from .errors import BackupNotFoundError, IntegrityError
from .parallel import map_in_threads
from .target import BackupTarget

__all__ = ["Damage", "Repair", "damaged_versions", "repair_from_folder"]

#: File entries kept per target by `_FilesCache` (a few MB): beyond it the oldest are read again.
_CACHED_ENTRIES = 100_000


@dataclass(frozen=True)
class Damage:
    """One version that no longer restores whole.

    Attributes:
        name: the backup's name.
        version: the version.
        gone: the paths of its files whose stored bytes are gone (a file backup's one file is
            shown by the name); empty when its manifest itself is unreadable.
        files: how many files the version lists.
        unreadable: its manifest is damaged (then every file is out of reach).
    """

    name: str
    version: int
    gone: tuple[str, ...]
    files: int
    unreadable: bool = False

    def describe(self) -> str:
        """One line: which version, how much of it, and which files."""
        if self.unreadable:
            return f"{self.name!r} version {self.version}: its manifest is unreadable"
        shown = ", ".join(self.gone[:5]) + (", ..." if len(self.gone) > 5 else "")
        return (
            f"{self.name!r} version {self.version}: the stored bytes of {len(self.gone)} of its "
            f"{self.files} files are gone ({shown})"
        )


#: A version's files as ``(hash, path, size)``.
_Files = tuple[tuple[str, str, int], ...]


class _FilesCache:
    """Each version's files, by manifest key: a committed format-2 manifest never changes."""

    def __init__(self) -> None:
        self._by_key: OrderedDict[str, _Files] = OrderedDict()
        self._entries = 0

    def get(self, key: str) -> _Files | None:
        found = self._by_key.get(key)
        if found is not None:
            self._by_key.move_to_end(key)
        return found

    def put(self, key: str, files: _Files) -> None:
        self._by_key[key] = files
        self._entries += len(files)
        while self._entries > _CACHED_ENTRIES and len(self._by_key) > 1:
            _, dropped = self._by_key.popitem(last=False)
            self._entries -= len(dropped)


_caches: WeakKeyDictionary[BackupTarget, _FilesCache] = WeakKeyDictionary()


def _files_of(target: BackupTarget, name: str, version: int) -> _Files | None:
    """A format-2 version's files; None for format 1 (its bytes live elsewhere: only reading
    them tells). Raises IntegrityError for an unreadable manifest."""
    cache = _caches.setdefault(target, _FilesCache())
    key = target.manifest_key_of(name, version)
    found = cache.get(key)
    if found is not None:
        return found
    manifest = target.read_manifest(name, version)
    if manifest.format_version == 1:
        return None
    files = tuple((e.hash, e.path or name, e.size) for e in manifest.files)
    cache.put(key, files)
    return files


def damaged_versions(
    target: BackupTarget,
    name: str,
    stored: set[str],
    *,
    versions: Iterable[int] | None = None,
) -> list[Damage]:
    """The versions of ``name`` (default: all kept) that ``stored`` does not hold whole,
    oldest first. Manifests are read in parallel, each once per target."""
    wanted = list(versions) if versions is not None else target.versions(name)

    def check(version: int) -> Damage | None:
        try:
            files = _files_of(target, name, version)
        except BackupNotFoundError:
            return None  # dropped by another writer's retention since the listing
        except IntegrityError:
            return Damage(name, version, (), 0, unreadable=True)
        if files is None:
            return None
        gone = tuple(sorted(path for digest, path, _ in files if digest not in stored))
        return Damage(name, version, gone, len(files)) if gone else None

    found = map_in_threads(check, wanted, target.backend.max_workers, "mlbackup-check")
    return [d for d in found if d is not None]


@dataclass(frozen=True)
class Repair:
    """What `repair_from_folder()` put back, and what it could not.

    Attributes:
        put_back: the hashes whose objects were stored again from the folder.
        still_missing: ``(name, version, path)`` of each file it found no copy of.
    """

    put_back: tuple[str, ...]
    still_missing: tuple[tuple[str, int, str], ...]


def repair_from_folder(target: BackupTarget, damage: Iterable[Damage], folder: Path) -> Repair:
    """Put back the missing objects of ``damage`` whose bytes a file under ``folder`` holds.

    Only files of a size some missing object had are hashed; a file is stored only if its
    hash is one a version lists, so nothing else ever lands on the target.
    """
    from .hashing import hash_file
    from .objects import store_object

    wanted: dict[str, list[tuple[str, int, str]]] = {}  # hash -> the files that lack it
    sizes: set[int] = set()
    for d in damage:
        gone = set(d.gone)
        for digest, path, size in _files_of(target, d.name, d.version) or ():
            if path in gone:
                wanted.setdefault(digest, []).append((d.name, d.version, path))
                sizes.add(size)
    put_back: list[str] = []
    for root, _dirs, files in os.walk(folder):  # symlinks are not followed
        for base in files:
            local = Path(root) / base
            try:
                if local.is_symlink() or local.stat().st_size not in sizes:
                    continue
                _, digest = hash_file(local, target.hash_name)
            except OSError:
                continue  # unreadable: another copy may still be found
            if digest in wanted and digest not in put_back:
                store_object(target.backend, local, digest)
                put_back.append(digest)
    done = set(put_back)
    missing = sorted(f for digest, lacking in wanted.items() if digest not in done for f in lacking)
    return Repair(tuple(sorted(put_back)), tuple(missing))
