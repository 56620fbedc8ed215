"""The browsable tree: the newest version as plain files, derived after the commit.

``<root>/<name>/<path>`` shows the newest version in a file browser, a cloud folder's web
page or a bucket console, and lets a tool read a checkpoint in place (``from_pretrained`` on a
mounted folder). It is built from objects by ``Backend.link`` (a hard link on local folders, a
server-side copy on buckets, what the store offers elsewhere), so it costs little room. It is
never read by mlbackup and never trusted: the commit does not wait for it, and a crash or a
second writer may leave it a version behind, never a committed version damaged.
``names/<name>/browsable.json`` records which version it shows, so the next backup updates only
what differs from that one.
"""

from __future__ import annotations

import json
import logging

from .crashpoints import crash_point
from .errors import MLBackupError
from .layout import browsable_key, object_key, plain_key
from .manifest import FileEntry, Manifest
from .parallel import map_in_threads
from .target import BackupTarget

__all__ = ["refresh_browsable"]

log = logging.getLogger("mlbackup")


def refresh_browsable(target: BackupTarget, manifest: Manifest, shown: Manifest | None) -> None:
    """Make the plain files of ``manifest.name`` show ``manifest``, given that they showed
    ``shown`` (the version the backup started from). Failures are logged, never raised: the
    version is committed whatever happens here."""
    backend = target.backend
    if not backend.keeps_browsable_tree:
        return
    try:
        shown = _what_is_shown(target, manifest.name, shown)
        before = shown.by_path() if shown is not None else {}
        after = manifest.by_path()
        gone = [p for p in before if p not in after]
        changed = [e for p, e in after.items() if _differs(before.get(p), e)]
        if shown is not None and manifest.kind != shown.kind:
            gone, changed = list(before), list(after.values())
        workers = backend.link_workers or backend.max_workers
        map_in_threads(
            lambda path: backend.unlink(plain_key(manifest.name, path)),
            gone, workers, "mlbackup-browse",
        )  # fmt: skip

        def show(entry: FileEntry) -> bool:
            linked = backend.link(object_key(entry.hash), plain_key(manifest.name, entry.path))
            crash_point("during-browse")
            return linked

        # The first file tells whether the store keeps a browsable tree at all.
        if changed and not show(changed[0]):
            log.debug("%s keeps no browsable tree", target.url)
            return
        map_in_threads(show, changed[1:], workers, "mlbackup-browse")
        record = {"version": manifest.version}
        backend.delete(browsable_key(manifest.name))
        backend.write_new(browsable_key(manifest.name), json.dumps(record).encode())
    except (MLBackupError, OSError) as exc:
        log.warning(
            "the browsable files of %r on %s may show an older version (%s); the backup is "
            "committed and restores exactly",
            manifest.name, target.url, exc,
        )  # fmt: skip


def _differs(old: FileEntry | None, new: FileEntry) -> bool:
    return old is None or old.hash != new.hash


def _what_is_shown(target: BackupTarget, name: str, assumed: Manifest | None) -> Manifest | None:
    """The version the plain files show: ``assumed`` if the record says so (or if there is no
    record and ``assumed`` is a format-1 version, whose newest files are the plain ones)."""
    if assumed is None:
        return None  # a new name (or one whose versions were all removed): build every file
    try:
        record = json.loads(target.backend.read_bytes(browsable_key(name)))
        version = int(record["version"])
    except FileNotFoundError:
        return assumed if assumed.format_version == 1 else None
    except (ValueError, KeyError, TypeError):
        return None
    if assumed.version == version:
        return assumed
    try:
        return target.read_manifest(name, version)
    except MLBackupError:
        return None  # dropped by retention: rebuild every file
