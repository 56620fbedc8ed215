"""The commit protocol: create a version, and retention that is safe under concurrency.

**Commit.** A manifest is created, never replaced. Where the store has create-only writes
(``Backend.create_only``: ``O_EXCL``/``link``, S3 ``If-None-Match``, GCS
``ifGenerationMatch=0``) its key is ``<version>.json`` and a writer that finds the version taken
commits the next one. Elsewhere (stores without create-only writes) the key carries a random tag,
``<version>-<tag>.json``, so two writers can never write the same key; after writing, a writer
lists the versions, and if another manifest holds its number it withdraws its own and takes
the next one (a writer that saw itself alone has committed). Either way the user's call
succeeds, every committed version keeps its number, and "newest" is the highest number.

**Retention** (``keep_last``) drops the oldest manifests of a name; their objects may be shared
with other versions and names, and a writer may be about to commit a version that reuses them,
so nothing is deleted at once. The hashes the dropped versions listed are written to a
*candidate* file under ``.mlbackup/gc/`` first, then the manifests are deleted. A later
retention, at least `GRACE_SECONDS` after a candidate file was written, *sweeps*: it reads
every manifest of every name and deletes a candidate object only if none lists it and the
object itself was not written or touched within the grace period either (a writer reusing an
object that no version it knows lists touches it first, see `mlbackup.objects`). The
sweep also marks every other unlisted object (left by a killed run) as a candidate for the
next one. A retention killed at any point leaves only garbage that a later one collects.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from dataclasses import replace

from .crashpoints import crash_point
from .errors import CommitConflictError, IntegrityError
from .layout import gc_prefix, manifest_key, object_key, objects_prefix
from .manifest import Manifest
from .target import BackupTarget

__all__ = ["GRACE_SECONDS", "apply_retention", "collect_garbage", "commit_version"]

log = logging.getLogger("mlbackup")

#: How long an unlisted object is kept after it was marked, written or touched: longer than
#: any backup takes between reusing an object and committing the version that lists it.
GRACE_SECONDS = 6 * 3600.0
#: How many versions a writer tries before it gives up (each loss means another writer
#: committed meanwhile, so this many losses in a row means something else is wrong).
COMMIT_TRIES = 50


def commit_version(target: BackupTarget, manifest: Manifest) -> Manifest:
    """Commit ``manifest`` as the next free version of its name; returns it as committed
    (its ``version`` is the one taken, which is higher than asked if other writers won)."""
    backend = target.backend
    name = manifest.name
    crash_point("before-commit")
    backend.sync()
    version = manifest.version
    for attempt in range(COMMIT_TRIES):
        draft = replace(manifest, version=version)
        tag = "" if backend.create_only else secrets.token_hex(8)
        key = manifest_key(name, version, tag)
        try:
            backend.write_new(key, draft.to_bytes())
        except FileExistsError:
            version = _next_free(target, name, version)
            log.info("another writer committed %r version %d first; taking %d",
                     name, draft.version, version)  # fmt: skip
            continue
        if tag and _contested(target, name, version, tag, key):
            # Not alone with this number: withdraw (ours was never the only one, so no writer
            # took it as committed) and, after a random pause so that two writers that saw
            # each other do not meet again, try this number again if the other writer
            # withdrew too (no gap in the numbers), else the next after the newest.
            backend.delete(key)
            time.sleep(random.uniform(0, min(0.05 * 2**attempt, 2.0)))  # noqa: S311
            versions = target.versions(name)
            version = version if version not in versions else max(versions) + 1
            continue
        crash_point("after-commit")
        target.note_committed(key, draft)
        return draft
    raise CommitConflictError(
        f"{name!r} on {target.url}: {COMMIT_TRIES} other commits won in a row; retry the backup"
    )


def _contested(target: BackupTarget, name: str, version: int, tag: str, key: str) -> bool:
    """Whether another writer's manifest holds ``version`` too. If the store cannot say, ours
    is withdrawn before the error goes up: a backup that fails commits nothing."""
    try:
        return any(k.version == version and k.tag != tag for k in target.manifest_keys(name))
    except BaseException:
        for _ in range(3):
            try:
                target.backend.delete(key)
                break
            except Exception:  # noqa: BLE001, S112 - the original error is the one to raise
                continue
        raise


def _next_free(target: BackupTarget, name: str, taken: int) -> int:
    return max([taken, *target.versions(name)]) + 1


def apply_retention(
    target: BackupTarget, name: str, keep_last: int, *, grace: float = GRACE_SECONDS
) -> list[int]:
    """Drop all but the newest ``keep_last`` versions of ``name``; return those dropped.

    Their objects are collected by a later retention, once the grace period has passed (see
    the module docstring), so a writer committing a version that reuses them meanwhile is safe.
    """
    versions = target.versions(name)
    dropped = versions[:-keep_last]
    if dropped:
        listed = {e.hash for v in dropped for e in target.read_manifest(name, v).files}
        _mark(target, listed)
        for version in dropped:
            target.delete_manifest(name, version)
            crash_point("during-retention")
        target.collect_legacy_objects(name)
    collect_garbage(target, grace=grace)
    return dropped


def _mark(target: BackupTarget, digests: set[str]) -> None:
    if not digests:
        return
    key = f"{gc_prefix()}/{int(time.time()):012d}-{secrets.token_hex(6)}.json"
    target.backend.write_new(key, json.dumps(sorted(digests)).encode())


def _candidate_time(basename: str) -> float | None:
    stamp, sep, _ = basename.partition("-")
    return float(stamp) if sep and stamp.isdigit() else None


def collect_garbage(target: BackupTarget, *, grace: float = GRACE_SECONDS) -> int:
    """Sweep if a candidate file is older than ``grace``: delete the objects it lists that no
    manifest lists and that are themselves older than ``grace``; mark the other unlisted
    objects. Returns how many objects were deleted (0 when no sweep was due)."""
    backend = target.backend
    now = time.time()
    files = {b: _candidate_time(b) for b in backend.list_dir(gc_prefix())}
    due = [b for b, t in files.items() if t is not None and now - t >= grace]
    if not due:
        return 0
    try:
        listed = target.listed_digests()
    except IntegrityError as exc:
        # What an unreadable manifest lists is unknown, so nothing may be collected.
        log.warning("retention on %s collects nothing while a manifest is unreadable: %s",
                    target.url, exc)  # fmt: skip
        return 0
    candidates: set[str] = set()
    for base in due:
        try:
            candidates.update(json.loads(backend.read_bytes(f"{gc_prefix()}/{base}")))
        except (FileNotFoundError, ValueError, TypeError):
            continue  # swept by another writer meanwhile, or not ours to read
    deleted = 0
    for digest in sorted(candidates - listed):
        if not isinstance(digest, str):
            continue
        key = object_key(digest)
        modified = backend.modified(key)
        if modified is not None and now - modified >= grace:
            backend.delete(key)
            deleted += 1
    for base in due:
        backend.delete(f"{gc_prefix()}/{base}")
    pending: set[str] = set()
    for base, stamp in files.items():
        if base in due or stamp is None:
            continue
        try:
            pending.update(json.loads(backend.read_bytes(f"{gc_prefix()}/{base}")))
        except (FileNotFoundError, ValueError, TypeError):
            continue
    present = set(backend.list_dir(objects_prefix()))
    _mark(target, present - listed - pending)
    log.info("retention on %s: %d unlisted objects collected", target.url, deleted)
    return deleted
