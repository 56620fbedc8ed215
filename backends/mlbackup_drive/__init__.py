"""The ``drive`` backend: the Google Drive mount of a Colab runtime (built in).

URL: ``drive://<path under My Drive>``, e.g. ``drive://runs/exp1`` for
``/content/drive/MyDrive/runs/exp1``. The mount root is ``/content/drive`` on Colab and
``$MLBACKUP_DRIVE_MOUNT_ROOT`` anywhere else (that is how tests run it against a temp folder).
On Colab an unmounted Drive is mounted on first use (it asks for consent once); elsewhere an
unmounted Drive is an error saying what to do.

It stores exactly like the ``file`` backend (temp file, rename, immutable objects), with what
the mount changes:

- **Staged, not confirmed.** A write to the mount returns once the file is in the VM's cache;
  Drive uploads it in the background. Results and ``BackgroundBackup.status()`` say
  ``staged=True``; `flush()` (``drive.flush_and_unmount()``) waits until Drive has it all.
- Errors the mount reports are named: ``EIO`` usually means the Drive quota is full,
  ``ENOTCONN`` that the mount dropped (remount), and no hard links (manifests are published
  by check-then-rename instead, under writer-tagged names, and there is no browsable tree:
  a copy of the newest version would take as much Drive quota again).
- **No browsable tree** unless asked for (``browsable=true``): Drive has no hard links, so it
  would be a copy of the newest version, charged to the Drive quota again.
- Thousands of small files are slow on the mount: a backup of more than
  `MANY_FILES` files logs a warning suggesting an archive or a bucket.

`unconfirmed()` asks the Drive API (``gdrive://``) whether Drive itself holds a backup's
files yet, byte for byte, without unmounting.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import unquote, urlsplit

from mlbackup_local import LocalBackend

from mlbackup.error_table import Rule
from mlbackup.errors import BackendUnavailableError, ConfigError, TargetError, TargetMissingError
from mlbackup.hashing import copy_hashing, new_hasher
from mlbackup.paths import is_within
from mlbackup.target import BackupTarget

__all__ = [
    "MANY_FILES",
    "MOUNT_ROOT_ENV",
    "DriveMountBackend",
    "drive_mount_root",
    "flush",
    "is_drive_path",
    "mount_if_needed",
    "unconfirmed",
]

log = logging.getLogger("mlbackup.drive")  # under the one mlbackup logger

#: A backup of more files than this warns: the mount handles each file with a round trip.
MANY_FILES = 2000

_DISCONNECTED = {errno.ENOTCONN, errno.ESTALE, errno.ENODEV, errno.ECONNABORTED}

#: Where Drive is mounted when not on Colab (tests, or a mount elsewhere).
MOUNT_ROOT_ENV = "MLBACKUP_DRIVE_MOUNT_ROOT"
COLAB_DRIVE_MOUNT = "/content/drive"


def drive_mount_root() -> Path:
    """Where Google Drive is mounted: ``/content/drive`` on Colab, else as configured.

    ``$MLBACKUP_DRIVE_MOUNT_ROOT`` overrides it (tests, or a mount elsewhere).
    """
    return Path(os.environ.get(MOUNT_ROOT_ENV) or COLAB_DRIVE_MOUNT)


def is_drive_path(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` lies on the mounted Google Drive (it is backed up by Drive itself).

    Examples:
        >>> is_drive_path("/content/drive/MyDrive/runs/study.db")
        True
        >>> is_drive_path("/content/outputs/study.db")
        False
    """
    return is_within(path, drive_mount_root())


def _on_colab() -> bool:
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def mount_if_needed(mount_root: Path | None = None) -> Path:
    """Return ``<mount root>/MyDrive``, mounting Drive first on Colab if it is not mounted.

    Raises:
        TargetMissingError: Drive is not mounted and this is not Colab.
    """
    root = mount_root or drive_mount_root()
    my_drive = root / "MyDrive"
    if my_drive.is_dir():
        return my_drive
    if _on_colab() and str(root) == COLAB_DRIVE_MOUNT:
        from google.colab import drive

        log.info("mounting Google Drive at %s", root)
        drive.mount(str(root))
        if my_drive.is_dir():
            return my_drive
    raise TargetMissingError(
        f"Google Drive is not mounted at {root} (no {my_drive}); on Colab run "
        "`from google.colab import drive; drive.mount('/content/drive')`, elsewhere set "
        "MLBACKUP_DRIVE_MOUNT_ROOT to the folder holding MyDrive, or use a gdrive:// URL "
        "(the Drive API)"
    )


def flush(timeout_ms: int = 24 * 3600 * 1000) -> bool:
    """Wait until Drive has uploaded everything written to the mount, then unmount it.

    On Colab this is ``google.colab.drive.flush_and_unmount()``: call it before the runtime
    ends to turn staged backups into confirmed ones. Elsewhere there is nothing to flush and it
    returns ``False``.
    """
    if not _on_colab():
        return False
    from google.colab import drive

    drive.flush_and_unmount(timeout_ms=timeout_ms)
    return True


def unconfirmed(target: BackupTarget, name: str, **api_options: Any) -> list[str]:
    """The files of ``name``'s newest version on a ``drive://`` target that Drive does not
    hold yet, as the Drive API sees them (``[]``: Drive has confirmed the whole version): each
    file's path in the backup (the name itself for a file backup), and ``"(manifest)"`` for the
    record that makes the version visible.

    ``api_options`` are the ``gdrive`` backend's (credentials, ``api_endpoint``). Each file
    counts as confirmed when Drive reports the same size and md5 as the staged bytes.

    Example (on Colab, after a backup to ``drive://runs/exp1``)::

        pending = unconfirmed(target, "outputs/study.db", colab=True)
    """
    from mlbackup import open_target

    root = target.local_root
    if not target.url.startswith("drive://") or root is None:
        raise ConfigError(f"{target.url} is not a drive:// target; only mount backups are staged")
    folder = target.url.removeprefix("drive://")
    manifest = target.manifest(name)
    keys = {loc.entry.path or name: loc.key for loc in target.locate(manifest)}
    keys["(manifest)"] = target.manifest_key_of(name, manifest.version)
    pending = []
    with open_target(f"gdrive://root/{folder}".rstrip("/"), **api_options) as api:
        mount = cast(LocalBackend, getattr(target.backend, "inner", target.backend))
        for shown, key in keys.items():
            size, digest = _md5_of(target, key)
            # Where the mount keeps it, which is where Drive will have it.
            remote = api.backend.info(mount.stored_path(key).relative_to(root).as_posix())
            if remote is None or remote.size != size or remote.checksum != digest:
                pending.append(shown)
    return pending


def _md5_of(target: BackupTarget, key: str) -> tuple[int, str]:
    md5 = new_hasher("md5")
    with target.backend.open_read(key) as f:
        size = copy_hashing(f, None, md5)
    return size, md5.hexdigest()


class DriveMountBackend(LocalBackend):
    """Backups in a folder of My Drive, through the Colab Drive mount."""

    staged_writes: ClassVar[bool] = True
    # Two runtimes each mount Drive and sync later: O_EXCL on one mount says nothing about a
    # file another runtime created, so manifests get writer-tagged names (mlbackup.commit).
    create_only: ClassVar[bool] = False
    # FUSE has no O_TMPFILE; the mount uploads a file once it is closed under its name.
    unnamed_files: ClassVar[bool] = False
    many_files_warning: ClassVar[int | None] = MANY_FILES
    link_workers: ClassVar[int | None] = None  # its browsable "links" are copies: in parallel
    # "durable" is the local folder's; the mount decides when data reaches Drive.
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {"browsable": bool}
    environment: ClassVar[tuple[str, ...]] = (MOUNT_ROOT_ENV,)
    staged_advice: ClassVar[str] = (
        "Drive uploads it in the background; `mlbackup status --confirm colab=true` checks "
        "whether it has, mlbackup_drive.flush() waits for it before the runtime ends"
    )

    @classmethod
    def mount_root(cls) -> Path | None:
        return drive_mount_root()

    @classmethod
    def default_target(cls, project: str) -> str | None:
        # drive://, not the plain path: staged writes are reported, manifests get
        # writer-tagged names (several runtimes share one Drive), and errors name the mount.
        return f"drive://mlbackup/{project}" if (drive_mount_root() / "MyDrive").is_dir() else None

    def unconfirmed(self, target: BackupTarget, name: str, options: Mapping[str, Any]) -> list[str]:
        return unconfirmed(target, name, **options)

    def __init__(self, root: Path, display: str, *, browsable: bool = False) -> None:
        super().__init__(root)
        self._display = display
        self._browsable = browsable

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> DriveMountBackend:
        options = cls.check_options(options)
        parts = urlsplit(url)
        relative = unquote(f"{parts.netloc}{parts.path}").strip("/")
        if parts.scheme != "drive" or parts.query or parts.fragment:
            raise ConfigError(f"{url!r} is not a drive URL; use drive://<folder in My Drive>")
        if any(segment in ("", ".", "..") for segment in relative.split("/")) and relative:
            raise ConfigError(f"{url!r} has an empty, '.' or '..' segment; give a plain path")
        root = drive_mount_root() / "MyDrive" / relative
        return cls(root, f"drive://{relative}", browsable=options.get("browsable", False))

    @property
    def url(self) -> str:
        return self._display

    def check(self) -> None:
        mount_if_needed()

    @property
    def keeps_browsable_tree(self) -> bool:
        return self._browsable

    def link(self, src: str, dst: str) -> bool:
        # Drive has no hard links: whatever the mount answers, Drive would store a second
        # copy and charge it to the quota. So the browsable tree is a copy, made only when
        # asked for (browsable=true), and costs the newest version's size again.
        if not self._browsable:
            return False
        self.copy(src, dst)
        return True

    error_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            BackendUnavailableError,
            "the Drive mount is disconnected ({code}); remount it "
            "(drive.mount('/content/drive', force_remount=True)) and retry",
            codes=frozenset(errno.errorcode[n] for n in _DISCONNECTED),
        ),
        Rule(
            TargetError,
            "an I/O error ({code}); on the Drive mount this usually means the Drive quota is "
            "full: free space in Drive (empty the trash) and retry",
            codes=frozenset({"EIO"}),
        ),
        *LocalBackend.error_rules,  # quota as EIO aside: disk full, denied, links
    )
