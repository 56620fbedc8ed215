"""Where things live on a target, as keys relative to the target's root (storage format 2).

::

    <root>/.mlbackup/objects/<hash>                       immutable content, shared by every
                                                          name and version of the target
    <root>/.mlbackup/names/<quoted name>/manifests/<version>.json         committed versions
    <root>/.mlbackup/names/<quoted name>/manifests/<version>-<tag>.json   (stores without
                                                          create-only writes: writer-tagged)
    <root>/.mlbackup/names/<quoted name>/browsable.json   which version the browsable tree shows
    <root>/.mlbackup/gc/<time>-<tag>.json                 objects found unreferenced, collected
                                                          by a later retention after a grace
    <root>/.mlbackup/journals/<quoted name>/              an Optuna study's log in the bucket
                                                          (`mlbackup.integrations.bucket_journal`)
    <root>/.mlbackup/tmp/                                 staging for atomic writes
    <root>/<name>/<path>                                  the browsable tree: the newest
                                                          version as plain files, derived
                                                          after the commit and never trusted

The name is percent-quoted into one path segment so that two names can never share a
``.mlbackup`` folder (``a`` and ``a/manifests`` stay apart). Format 1 (release 0.1.0) kept the
newest version at the plain keys and older bytes under ``names/<quoted name>/objects/``; those
keys are still read (`legacy_object_key()`), never written.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote

from .errors import ConfigError, IntegrityError

__all__ = [
    "META_DIR",
    "ManifestKey",
    "browsable_key",
    "check_digest",
    "check_name",
    "gc_prefix",
    "journal_prefix",
    "legacy_object_key",
    "legacy_objects_prefix",
    "manifest_key",
    "manifests_prefix",
    "name_from_segment",
    "names_prefix",
    "object_key",
    "objects_prefix",
    "parse_manifest_key",
    "plain_key",
    "tmp_prefix",
]

META_DIR = ".mlbackup"
_MANIFEST_RE = re.compile(r"^(\d{10})(?:-([0-9a-f]{8,40}))?\.json$")
#: Hex digits of each hash's digest: an object key is built only from a string of this shape.
_DIGEST_HEX = {"md5": 32, "xxh128": 32, "sha256": 64}
_HEX = re.compile(r"[0-9a-f]+")


class ManifestKey(NamedTuple):
    """A manifest's place in the listing: its version and, on stores without create-only
    writes, the writer's tag that keeps two writers' names apart."""

    version: int
    tag: str = ""


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid backup name, else raise `ConfigError`."""
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ConfigError(
            f"invalid backup name {name!r}: use a relative path such as 'outputs/model' "
            "without '..', '.', empty parts or backslashes"
        )
    if parts[0] == META_DIR:
        raise ConfigError(f"invalid backup name {name!r}: {META_DIR!r} is reserved for mlbackup")
    return name


def check_digest(digest: str, hash_name: str) -> str:
    """Return ``digest`` if it is a hex digest of ``hash_name``, else raise
    `IntegrityError`: a manifest's ``hash`` becomes part of a key, so it must never be a
    path (``../../home/u/.bashrc``) or anything but the hash it claims to be."""
    length = _DIGEST_HEX.get(hash_name)
    if length is None or len(digest) != length or not _HEX.fullmatch(digest):
        shown = digest if len(digest) <= 80 else digest[:77] + "..."
        raise IntegrityError(
            f"{shown!r} is not a {hash_name} digest; the manifest was edited or damaged, "
            "restore another version with --version"
        )
    return digest


def names_prefix() -> str:
    return f"{META_DIR}/names"


def _name_dir(name: str) -> str:
    return f"{names_prefix()}/{quote(name, safe='')}"


def name_from_segment(segment: str) -> str:
    return unquote(segment)


def manifests_prefix(name: str) -> str:
    return f"{_name_dir(name)}/manifests"


def manifest_key(name: str, version: int, tag: str = "") -> str:
    suffix = f"-{tag}" if tag else ""
    return f"{manifests_prefix(name)}/{version:010d}{suffix}.json"


def parse_manifest_key(basename: str) -> ManifestKey | None:
    """The version (and tag) a manifest's base name encodes, or None for any other name."""
    match = _MANIFEST_RE.match(basename)
    return ManifestKey(int(match.group(1)), match.group(2) or "") if match else None


def browsable_key(name: str) -> str:
    return f"{_name_dir(name)}/browsable.json"


def objects_prefix() -> str:
    return f"{META_DIR}/objects"


def object_key(digest: str) -> str:
    """The key of the object holding the bytes whose digest is ``digest`` (already checked by
    `check_digest()` or computed here)."""
    return f"{objects_prefix()}/{digest}"


def legacy_objects_prefix(name: str) -> str:
    """Format 1: where bytes displaced from a plain key were kept, per name."""
    return f"{_name_dir(name)}/objects"


def legacy_object_key(name: str, digest: str) -> str:
    return f"{legacy_objects_prefix(name)}/{digest}"


def gc_prefix() -> str:
    return f"{META_DIR}/gc"


def journal_prefix(name: str) -> str:
    """Where the bucket journal ``name`` keeps its segments and snapshots."""
    return f"{META_DIR}/journals/{quote(check_name(name), safe='')}"


def plain_key(name: str, path: str) -> str:
    """The browsable key of a file: the name itself for a file backup, else under it."""
    return f"{name}/{path}" if path else name


def tmp_prefix() -> str:
    return f"{META_DIR}/tmp"  # noqa: S108 - a key on the target, not /tmp
