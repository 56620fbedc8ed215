"""Is a path already on backup storage, and what is it called there?"""

from __future__ import annotations

import os
import re
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from .layout import check_name

if TYPE_CHECKING:
    from .target import BackupTarget

__all__ = [
    "default_name",
    "is_inside_target_root",
    "is_on_mounted_store",
    "is_on_target",
    "is_url",
    "is_within",
]

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str | PathLike[str]) -> bool:
    """True if ``path`` is a URL such as ``gs://bucket/x`` rather than a local path.

    Examples:
        >>> is_url("gs://bucket/run/study.db"), is_url("outputs/study.db")
        (True, False)
    """
    return bool(_URL_RE.match(os.fspath(path)))


def _resolved(path: str | PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def is_within(path: str | PathLike[str], root: str | PathLike[str]) -> bool:
    """True if local ``path`` is ``root`` or lies under it, symlinks resolved.

    Examples:
        >>> is_within("/srv/runs/exp1/model.bin", "/srv/runs"), is_within("/srv/x", "/srv/runs")
        (True, False)
    """
    if is_url(path):
        return False
    resolved, top = _resolved(path), _resolved(root)
    return resolved == top or top in resolved.parents


def is_on_mounted_store(path: str | PathLike[str]) -> bool:
    """True if ``path`` lies in a folder a sync client keeps on storage: a mounted
    backend's `Backend.mount_root()` holds it.

    Examples:
        >>> is_on_mounted_store("/srv/outputs/study.db")
        False
    """
    from .registry import mounted_backends

    for backend in mounted_backends():
        try:
            root = backend.mount_root()
        except Exception:  # noqa: BLE001 - a plugin's fault must not fail the backup
            root = None
        if root is not None and is_within(path, root):
            return True
    return False


def is_on_target(path: str | PathLike[str], target: BackupTarget) -> bool:
    """True if ``path`` already lives on backup storage, so copying it would be pointless.

    That is: a URL (remote storage), a path on a mounted store (`is_on_mounted_store()`), or a
    path inside the target's own folder (for local targets). Checked before every immediate
    backup, so that a workflow step writing straight to storage is skipped instead of copying
    a file onto itself.

    Examples:
        >>> import tempfile
        >>> from mlbackup import open_target
        >>> folder = tempfile.mkdtemp()
        >>> target = open_target(folder)
        >>> is_on_target(f"{folder}/outputs/model.onnx", target), is_on_target("/srv/x", target)
        (True, False)
    """
    return is_url(path) or is_inside_target_root(path, target) or is_on_mounted_store(path)


def is_inside_target_root(path: str | PathLike[str], target: BackupTarget) -> bool:
    """True if ``path`` lies inside a local target's own folder."""
    root = target.local_root
    return root is not None and is_within(path, root)


def default_name(path: str | PathLike[str], source_root: str | PathLike[str]) -> str:
    """The backup name of ``path``: relative to ``source_root`` when inside it, else its basename.

    Examples:
        >>> default_name("/work/proj/outputs/hpo/study.db", "/work/proj")
        'outputs/hpo/study.db'
        >>> default_name("/tmp/model.onnx", "/work/proj")
        'model.onnx'
    """
    absolute = Path(os.path.abspath(path))
    root = Path(os.path.abspath(source_root))
    if absolute != root and root in absolute.parents:
        name = absolute.relative_to(root).as_posix()
    else:
        name = absolute.name
    return check_name(name)
