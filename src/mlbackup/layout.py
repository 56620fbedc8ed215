"""Where things live on a target, as keys relative to the target's root.

::

    <root>/<name>                                       the newest version, as plain files
    <root>/<name>/<path>                                  (browsable in Drive or a bucket console)
    <root>/.mlbackup/names/<quoted name>/manifests/<version>.json   committed versions
    <root>/.mlbackup/names/<quoted name>/objects/<hash>             bytes displaced from a plain
                                                                    path that older versions need
    <root>/.mlbackup/tmp/                               staging for atomic writes (local targets)

The name is percent-quoted into one path segment so that two names can never share a
``.mlbackup`` folder (``a`` and ``a/manifests`` stay apart).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from .errors import ConfigError

__all__ = [
    "META_DIR",
    "check_name",
    "manifest_key",
    "manifests_prefix",
    "name_from_segment",
    "names_prefix",
    "object_key",
    "objects_prefix",
    "plain_key",
    "tmp_prefix",
    "version_from_manifest_key",
]

META_DIR = ".mlbackup"
_MANIFEST_RE = re.compile(r"^(\d{10})\.json$")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid backup name, else raise :class:`ConfigError`."""
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


def names_prefix() -> str:
    return f"{META_DIR}/names"


def _name_dir(name: str) -> str:
    return f"{names_prefix()}/{quote(name, safe='')}"


def name_from_segment(segment: str) -> str:
    return unquote(segment)


def manifests_prefix(name: str) -> str:
    return f"{_name_dir(name)}/manifests"


def manifest_key(name: str, version: int) -> str:
    return f"{manifests_prefix(name)}/{version:010d}.json"


def version_from_manifest_key(basename: str) -> int | None:
    match = _MANIFEST_RE.match(basename)
    return int(match.group(1)) if match else None


def objects_prefix(name: str) -> str:
    return f"{_name_dir(name)}/objects"


def object_key(name: str, digest: str) -> str:
    return f"{objects_prefix(name)}/{digest}"


def plain_key(name: str, path: str) -> str:
    """The browsable key of a file: the name itself for a file backup, else under it."""
    return f"{name}/{path}" if path else name


def tmp_prefix() -> str:
    return f"{META_DIR}/tmp"  # noqa: S108 - a key on the target, not /tmp
