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
    "drive_mount_root",
    "is_drive_path",
    "is_inside_target_root",
    "is_on_target",
    "is_url",
]

DRIVE_MOUNT_ENV = "MLBACKUP_DRIVE_MOUNT_ROOT"
COLAB_DRIVE_MOUNT = "/content/drive"

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def drive_mount_root() -> Path:
    """Where Google Drive is mounted: ``/content/drive`` on Colab, else as configured.

    ``$MLBACKUP_DRIVE_MOUNT_ROOT`` overrides it (tests, or a mount elsewhere).
    """
    return Path(os.environ.get(DRIVE_MOUNT_ENV) or COLAB_DRIVE_MOUNT)


def is_url(path: str | PathLike[str]) -> bool:
    """True if ``path`` is a URL such as ``gs://bucket/x`` rather than a local path.

    Examples:
        >>> is_url("gs://bucket/run/study.db"), is_url("outputs/study.db")
        (True, False)
    """
    return bool(_URL_RE.match(os.fspath(path)))


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _resolved(path: str | PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def is_drive_path(path: str | PathLike[str]) -> bool:
    """True if ``path`` lies on the mounted Google Drive (it is backed up by Drive itself).

    Examples:
        >>> is_drive_path("/content/drive/MyDrive/runs/study.db")
        True
        >>> is_drive_path("/content/outputs/study.db")
        False
    """
    if is_url(path):
        return False
    return _is_within(_resolved(path), _resolved(drive_mount_root()))


def is_on_target(path: str | PathLike[str], target: BackupTarget) -> bool:
    """True if ``path`` already lives on backup storage, so copying it would be pointless.

    That is: a URL (remote storage), a path on the Google Drive mount, or a path inside the
    target's own folder (for local targets). Checked before every immediate backup, so that a
    workflow step writing straight to Drive is skipped instead of copying a file onto itself.

    Examples:
        >>> import tempfile
        >>> from mlbackup import open_target
        >>> folder = tempfile.mkdtemp()
        >>> target = open_target(folder)
        >>> is_on_target(f"{folder}/outputs/model.onnx", target), is_on_target("/srv/x", target)
        (True, False)
    """
    return is_url(path) or is_drive_path(path) or is_inside_target_root(path, target)


def is_inside_target_root(path: str | PathLike[str], target: BackupTarget) -> bool:
    """True if ``path`` lies inside a local target's own folder."""
    root = target.local_root
    return root is not None and not is_url(path) and _is_within(_resolved(path), _resolved(root))


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
