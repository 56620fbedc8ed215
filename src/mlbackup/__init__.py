"""mlbackup: back machine-learning outputs up the moment they exist, resume on the next machine.

Examples:
    >>> import pathlib, tempfile
    >>> import mlbackup
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "study.db"
    >>> _ = out.write_bytes(b"trials")
    >>> target = mlbackup.open_target(tempfile.mkdtemp())
    >>> mlbackup.immediate_backup_if_needed(out, target=target).status.value
    'copied'
    >>> out.unlink()
    >>> mlbackup.restore_if_missing(out, target=target).status.value
    'restored'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .api import backup, immediate_backup_if_needed, restore, restore_if_missing
from .backend import Backend, ObjectInfo
from .config import BackupConfig, load_config
from .errors import (
    BackendPermissionError,
    BackendUnavailableError,
    BackupNotFoundError,
    CommitConflictError,
    ConfigError,
    DestinationError,
    DestinationNotEmptyError,
    IntegrityError,
    MLBackupError,
    RestoreError,
    SourceChangedError,
    SourceError,
    SourceMissingError,
    TargetError,
    TargetMissingError,
    UnknownBackendError,
    UnsafePathError,
)
from .paths import default_name, is_on_mounted_store, is_on_target, is_url
from .progress import ProgressCallback, ProgressEvent
from .registry import available_backends, register_backend
from .results import (
    BackupInfo,
    BackupResult,
    BackupStatus,
    RestoreResult,
    RestoreStatus,
    VerifyResult,
)
from .target import BackupTarget, open_target

if TYPE_CHECKING:
    from .background import BackgroundBackup, BackgroundBackupError, NameStatus
    from .bucket_backend import BucketBackend
    from .doctor import DoctorReport, Finding, run_doctor
    from .fsspec_backend import FsspecBackend
    from .progress_bar import ProgressBar
    from .status import NameReport, backup_status

#: Exports imported on first use: a training script or a command rarely needs them, and
#: importing them all up front cost about 10 ms of every command-line run.
_LAZY = {
    "BackgroundBackup": "background",
    "BackgroundBackupError": "background",
    "NameStatus": "background",
    "BucketBackend": "bucket_backend",
    "DoctorReport": "doctor",
    "Finding": "doctor",
    "run_doctor": "doctor",
    "FsspecBackend": "fsspec_backend",
    "ProgressBar": "progress_bar",
    "NameReport": "status",
    "backup_status": "status",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlbackup' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Backend",
    "BackendPermissionError",
    "BackendUnavailableError",
    "BackgroundBackup",
    "BackgroundBackupError",
    "BackupConfig",
    "BackupInfo",
    "BackupNotFoundError",
    "BackupResult",
    "BackupStatus",
    "BackupTarget",
    "BucketBackend",
    "CommitConflictError",
    "ConfigError",
    "DestinationError",
    "DestinationNotEmptyError",
    "DoctorReport",
    "Finding",
    "FsspecBackend",
    "IntegrityError",
    "MLBackupError",
    "NameReport",
    "NameStatus",
    "ObjectInfo",
    "ProgressBar",
    "ProgressCallback",
    "ProgressEvent",
    "RestoreError",
    "RestoreResult",
    "RestoreStatus",
    "SourceChangedError",
    "SourceError",
    "SourceMissingError",
    "TargetError",
    "TargetMissingError",
    "UnknownBackendError",
    "UnsafePathError",
    "VerifyResult",
    "__version__",
    "available_backends",
    "backup",
    "backup_status",
    "default_name",
    "immediate_backup_if_needed",
    "is_on_mounted_store",
    "is_on_target",
    "is_url",
    "load_config",
    "open_target",
    "register_backend",
    "restore",
    "restore_if_missing",
    "run_doctor",
]
