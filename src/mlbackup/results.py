"""What backup, restore, listing and verification calls return.

Skips are results, not exceptions: a workflow step that calls
[`immediate_backup_if_needed()`][mlbackup.immediate_backup_if_needed] reads ``result.status`` to
learn what happened.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BackupInfo",
    "BackupResult",
    "BackupStatus",
    "RestoreResult",
    "RestoreStatus",
    "VerifyResult",
]


class BackupStatus(str, enum.Enum):
    """What a backup call did."""

    COPIED = "copied"
    """A new version was committed."""
    UNCHANGED = "unchanged"
    """Nothing changed since the last committed version; nothing was sent."""
    SKIPPED_DISABLED = "skipped_disabled"
    """Backup is disabled by configuration or argument."""
    SKIPPED_MISSING = "skipped_missing"
    """The path does not exist (yet)."""
    SKIPPED_ALREADY_ON_TARGET = "skipped_already_on_target"
    """The path already lives on backup storage (inside the target, a mounted store, a URL)."""


class RestoreStatus(str, enum.Enum):
    """What a restore call did."""

    RESTORED = "restored"
    """The backup was written to the destination."""
    SKIPPED_PRESENT = "skipped_present"
    """``restore_if_missing``: the path already exists locally; nothing was written."""
    SKIPPED_NO_BACKUP = "skipped_no_backup"
    """``restore_if_missing``: no backup of that name exists yet (a first run)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class _Result:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as their values, paths as strings)."""
        return {k: _jsonable(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class BackupResult(_Result):
    """The outcome of one backup call.

    Attributes:
        status: what happened; see [`BackupStatus`][mlbackup.BackupStatus].
        name: the backup's name on the target (``None`` when skipped before naming).
        version: the committed version (the new one, or the unchanged latest), else ``None``.
        files_sent: files uploaded by this call.
        bytes_sent: bytes uploaded by this call (of a file appended to, on a store that can
            reuse its old bytes, only the new ones).
        files_total: files in the committed version.
        bytes_total: bytes in the committed version.
        target: the target URL.
        source: the local path backed up.
        reason: for skips, why, in words.
        skipped_entries: entries of a folder left out by rule (symlinks, sockets, credential
            files) or gone since the scan, with why.
        failed_entries: entries left out for an error (a file or folder that could not be
            read), each with why and the fix; any makes the backup ``partial``.
        partial: the committed version lacks files of the source because of errors (see
            ``failed_entries``); the command line exits 23 then.
        seconds: wall time of the call.
        staged: the target only staged the data on this machine (a mounted store): it
            is safe from a crash of this process but not yet from the loss of the machine
            until the store has uploaded it (``Backend.staged_advice`` says how to wait).
        healed: files of the previous version whose stored bytes were gone (deleted or
            trashed behind mlbackup's back) and were put back from the source, which still
            held them: every version listing them restores whole again.
        lost: files of the previous version whose stored bytes are gone and which the source
            no longer holds as they were: that version does not restore them.
        damaged_versions: the kept versions before this one that no longer restore whole
            (their stored bytes are gone and this run could not put them back), oldest first;
            ``mlbackup doctor`` names what each lacks.
    """

    status: BackupStatus
    name: str | None = None
    version: int | None = None
    files_sent: int = 0
    bytes_sent: int = 0
    files_total: int = 0
    bytes_total: int = 0
    target: str | None = None
    source: Path | None = None
    reason: str = ""
    skipped_entries: tuple[str, ...] = ()
    failed_entries: tuple[str, ...] = ()
    partial: bool = False
    seconds: float = 0.0
    staged: bool = False
    healed: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    damaged_versions: tuple[int, ...] = ()

    @property
    def committed(self) -> bool:
        """True if the data is now on the target (copied now, or unchanged since)."""
        return self.status in (BackupStatus.COPIED, BackupStatus.UNCHANGED)


@dataclass(frozen=True)
class RestoreResult(_Result):
    """The outcome of one restore call.

    Attributes:
        status: what happened; see [`RestoreStatus`][mlbackup.RestoreStatus].
        name: the backup's name.
        version: the version restored, else ``None``.
        dest: where it was (or would have been) written.
        files_restored: files written.
        bytes_restored: bytes written.
        target: the target URL.
        seconds: wall time of the call.
        skipped_versions: newer versions passed over because they no longer restore whole
            (their stored bytes were deleted or damaged behind mlbackup's back), newest first;
            only when no ``version`` was asked for.
    """

    status: RestoreStatus
    name: str
    dest: Path
    version: int | None = None
    files_restored: int = 0
    bytes_restored: int = 0
    target: str | None = None
    seconds: float = 0.0
    skipped_versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class BackupInfo(_Result):
    """One committed version of a backup, as listed by
    [`BackupTarget.list()`][mlbackup.BackupTarget.list].

    Attributes:
        name: the backup's name.
        version: the version number (1, 2, ...).
        created: when it was committed (ISO 8601, UTC).
        kind: ``"file"`` or ``"dir"``.
        files: how many files it holds.
        bytes: their total size.
        missing_files: how many of its files' stored bytes are gone (deleted behind
            mlbackup's back), so that it no longer restores whole when above 0; ``None`` when
            not checked.
    """

    name: str
    version: int
    created: str
    kind: str
    files: int
    bytes: int
    missing_files: int | None = None


@dataclass(frozen=True)
class VerifyResult(_Result):
    """A verification that passed: every file is present with its recorded size and hash.

    A failed verification raises `IntegrityError` listing the damage.
    """

    name: str
    version: int
    files_checked: int
    bytes_checked: int
