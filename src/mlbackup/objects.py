"""Storing a file's bytes as an immutable, content-addressed object (storage format 2).

Every version refers to objects at ``.mlbackup/objects/<hash>`` (see `mlbackup.layout`),
which are written once and never changed: writing an object that already exists is a no-op, or
rewrites the same bytes, so writers racing on one name, or on two names that share files,
cannot harm each other. An object is published only after its bytes were checked to hash to
its key; the backend's ``put_object*`` methods keep that promise on each store.

Reusing an object that exists already needs care against retention, which collects objects
no manifest lists once they are older than a grace period (`mlbackup.commit`): an object
the previous version lists is live; any other is *touched* first where the store can do that
cheaply, else sent again, so that its age starts over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .backend import Backend, ObjectInfo
from .errors import SourceChangedError
from .hashing import hash_file
from .layout import object_key

__all__ = ["Stored", "check_expected", "store_object"]


@dataclass(frozen=True)
class Stored:
    """Where a file's bytes went, how many of them were sent, and whether this call created
    the object (so that a backup that fails takes it back:
    [`Backend.withdraw()`][mlbackup.Backend.withdraw])."""

    info: ObjectInfo
    sent: int
    created: bool = False


def store_object(
    backend: Backend,
    local_path: Path,
    digest: str | None = None,
    *,
    base: tuple[str, int] | None = None,
    live: Mapping[str, str | None] | None = None,
) -> Stored:
    """Store ``local_path`` as the object of its hash and return it.

    Args:
        backend: the target's backend.
        local_path: a stable copy of the file (it is not re-read by the caller).
        digest: its hash in the backend's ``hash_name`` if already computed.
        base: ``(hash, size)`` of the previous version of an appended file, whose object the
            new one may be built from.
        live: the objects the previous version lists, hash -> ref: reused without a request.

    Raises:
        SourceChangedError: the file changed while it was read.
    """
    if digest is None:
        stored = backend.put_object_hashing(local_path, object_key)
        if stored is not None:
            return Stored(stored, 0 if stored.reused else stored.size, not stored.reused)
        size, digest = hash_file(local_path, backend.hash_name)
    else:
        size = local_path.stat().st_size
    key = object_key(digest)
    if live and digest in live:
        return Stored(ObjectInfo(key, size, digest, live[digest]), 0)
    reused = _reuse(backend, key, size, digest)
    if reused is not None:
        return Stored(reused, 0)
    if base is not None:
        base_hash, base_size = base
        extended = backend.put_object_extending(
            local_path, key, digest, object_key(base_hash), base_size
        )
        if extended is not None:
            return Stored(extended, extended.size - base_size, not extended.reused)
    put = backend.put_object(local_path, key, digest)
    return Stored(put, 0 if put.reused else size, not put.reused)


def check_expected(local_path: Path, got: str, expected: str | None) -> None:
    """For a backend's ``put_object``: raise `SourceChangedError` if the bytes
    read hash to ``got`` but the object goes up under ``expected`` (the file changed since it
    was hashed): such bytes must never be published there."""
    if expected is not None and got != expected:
        raise SourceChangedError(f"{local_path} changed while it was read")


def _reuse(backend: Backend, key: str, size: int, digest: str) -> ObjectInfo | None:
    """The existing object ``key``, touched, if it may be reused; else None (send it)."""
    if not backend.touches:
        return None  # sending again costs less than making sure retention keeps it
    existing = backend.info(key)
    if existing is None or existing.size != size or existing.checksum not in (None, digest):
        return None
    try:
        backend.touch(key)
    except FileNotFoundError:
        return None  # collected between the two requests
    return ObjectInfo(key, size, digest, existing.ref)
