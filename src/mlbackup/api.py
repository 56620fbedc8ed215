"""The standardized calls every workflow step uses."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

from .config import BackupConfig, load_config
from .engine import run_backup
from .errors import BackupNotFoundError, ConfigError
from .paths import default_name, is_inside_target_root, is_on_target, is_url
from .progress import ProgressCallback
from .restore import run_restore
from .results import BackupResult, BackupStatus, RestoreResult, RestoreStatus
from .target import BackupTarget, open_target, open_target_unreached

__all__ = ["backup", "immediate_backup_if_needed", "restore", "restore_if_missing"]

PathArg = str | PathLike[str]
TargetArg = BackupTarget | str | PathLike[str] | None


log = logging.getLogger("mlbackup")


def _nearby(path: Path, shown: int = 8) -> str:
    """A few names in the nearest existing folder above ``path``, for a typo's sake (the
    first ones listed: a folder of thousands of checkpoints is not read whole for a log line)."""
    folder = path.absolute().parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in itertools.islice(entries, shown + 1))
    except OSError:
        return "?"
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return f"{folder}: {listed or 'nothing'}"


def open_target_for(
    target: TargetArg, config: BackupConfig, *, reach: bool = True
) -> tuple[BackupTarget, bool]:
    """The given target, or one opened from a URL or the config; True if opened here. With
    ``reach=False`` the store is not asked yet (see
    [`BackupTarget.reach()`][mlbackup.BackupTarget.reach])."""
    if isinstance(target, BackupTarget):
        return target, False
    url = str(target) if target is not None else config.target_url()
    if not reach:
        return open_target_unreached(url, **config.storage_options), True
    return open_target(url, **config.storage_options), True


@contextmanager
def _target(target: TargetArg, config: BackupConfig) -> Iterator[BackupTarget]:
    """Use the given target, or open (and afterwards close) one from a URL or the config."""
    opened, owned = open_target_for(target, config)
    try:
        yield opened
    finally:
        if owned:
            opened.close()


def immediate_backup_if_needed(
    path: PathArg,
    *,
    target: TargetArg = None,
    backup_enabled: bool | None = None,
    name: str | None = None,
    keep_last: int | None = None,
    config: BackupConfig | None = None,
    progress: ProgressCallback | None = None,
) -> BackupResult:
    """Back ``path`` up right after a workflow step made it, if that makes sense.

    The one call every step (tuning, training, conversion, benchmarking) makes. In order: skip if
    backup is disabled; skip if ``path`` does not exist; skip if it already lives on backup
    storage (inside the target, on a mounted store, or a URL); otherwise back it up, sending only
    what changed since the last version. Skips are results, not errors.

    Args:
        path: the file or folder the step produced.
        target: a [`BackupTarget`][mlbackup.BackupTarget], a URL or folder; default: the configured
            target.
        backup_enabled: overrides the configured ``enabled`` setting.
        name: the name on the target; default: ``path`` relative to the source root.
        keep_last: keep only this many versions of ``name``; default: the configured value.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        progress: called after each file with a [`ProgressEvent`][mlbackup.ProgressEvent].

    Returns:
        A [`BackupResult`][mlbackup.BackupResult]; ``result.status`` says what happened.

    Raises:
        MLBackupError: only for real failures (the target refused, the source kept changing).

    Examples:
        >>> import pathlib, tempfile
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
        >>> _ = out.write_text('{"acc": 0.9}')
        >>> target = tempfile.mkdtemp()
        >>> immediate_backup_if_needed(out, target=target).status.value
        'copied'
        >>> immediate_backup_if_needed(out, target=target).status.value
        'unchanged'
        >>> immediate_backup_if_needed(out, target=target, backup_enabled=False).status.value
        'skipped_disabled'
    """
    started = time.perf_counter()
    cfg = config or load_config()
    enabled = cfg.enabled if backup_enabled is None else backup_enabled
    if not enabled:
        return BackupResult(BackupStatus.SKIPPED_DISABLED, name=name, reason="backup is disabled")
    if is_url(path):
        return BackupResult(
            BackupStatus.SKIPPED_ALREADY_ON_TARGET, name=name, reason=f"{path} is remote storage"
        )
    source = Path(path)
    if not source.exists():
        # Usually a step that made nothing, sometimes a mistyped path: say which. This runs
        # before every step's output exists, so the folder is listed only for a logged line.
        if log.isEnabledFor(logging.INFO):
            log.info(
                "immediate backup skipped: %s does not exist (nothing made yet, or a mistyped "
                "path? the folder holds: %s)", source.absolute(), _nearby(source),
            )  # fmt: skip
        return BackupResult(
            BackupStatus.SKIPPED_MISSING, name=name, source=source, reason=f"{source} not found"
        )
    with _target(target, cfg) as opened:
        if is_on_target(source, opened):
            return BackupResult(
                BackupStatus.SKIPPED_ALREADY_ON_TARGET,
                name=name,
                target=opened.url,
                source=source,
                reason=f"{source} already lives on backup storage",
                seconds=time.perf_counter() - started,
            )
        return run_backup(
            opened,
            source,
            name if name is not None else default_name(source, cfg.source_root),
            keep_last=keep_last if keep_last is not None else cfg.keep_last,
            progress=progress,
            include_credentials=cfg.include_credential_files,
        )


def backup(
    path: PathArg,
    *,
    target: TargetArg = None,
    name: str | None = None,
    keep_last: int | None = None,
    config: BackupConfig | None = None,
    progress: ProgressCallback | None = None,
) -> BackupResult:
    """Back ``path`` up now, sending only what changed since the last version.

    Unlike [`immediate_backup_if_needed()`][mlbackup.immediate_backup_if_needed], a missing path is
    an error and the ``enabled`` setting is not consulted: this is the explicit call.

    Args:
        path: a file or folder.
        target: a [`BackupTarget`][mlbackup.BackupTarget], a URL or folder; default: the configured
            target.
        name: the name on the target; default: ``path`` relative to the source root.
        keep_last: keep only this many versions; default: the configured value.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        progress: called after each file with a [`ProgressEvent`][mlbackup.ProgressEvent].

    Returns:
        A [`BackupResult`][mlbackup.BackupResult] with status ``COPIED`` or ``UNCHANGED``.

    Raises:
        SourceMissingError: ``path`` does not exist.
        ConfigError: ``path`` is inside the target, or an argument is invalid.
        TargetError: the target failed; the previous version is untouched.

    Examples:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "ckpt"
        >>> folder.mkdir(); _ = (folder / "w.bin").write_bytes(b"0" * 1024)
        >>> r = backup(folder, target=tempfile.mkdtemp())
        >>> (r.status.value, r.version, r.files_sent, r.bytes_sent)
        ('copied', 1, 1, 1024)
    """
    cfg = config or load_config()
    source = Path(path)
    with _target(target, cfg) as opened:
        if is_inside_target_root(source, opened):
            raise ConfigError(
                f"{source} is inside the backup target {opened.url}; back up a path outside it"
            )
        return run_backup(
            opened,
            source,
            name if name is not None else default_name(source, cfg.source_root),
            keep_last=keep_last if keep_last is not None else cfg.keep_last,
            progress=progress,
            include_credentials=cfg.include_credential_files,
        )


def restore(
    name: str,
    dest: PathArg,
    *,
    target: TargetArg = None,
    version: int | None = None,
    overwrite: bool = False,
    config: BackupConfig | None = None,
    progress: ProgressCallback | None = None,
) -> RestoreResult:
    """Restore backup ``name`` so that it is *at* ``dest`` (like ``cp -r SRC DEST``).

    Every file is hash-checked before anything is placed; a damaged backup changes nothing.

    Args:
        name: the backup's name (see ``mlbackup ls``).
        dest: the path to create: a file path for a file backup, a folder for a folder backup.
        target: a [`BackupTarget`][mlbackup.BackupTarget], a URL or folder; default: the configured
            target.
        version: the version to restore; default: the newest.
        overwrite: allow replacing an existing file or writing into a non-empty folder (files
            the backup holds are replaced; others are left alone).
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        progress: called after each file with a [`ProgressEvent`][mlbackup.ProgressEvent].

    Raises:
        BackupNotFoundError: no such name or version.
        DestinationNotEmptyError: ``dest`` exists and ``overwrite`` is false.
        IntegrityError: the backup is damaged; ``.problems`` lists each bad file.
        UnsafePathError: the manifest or the destination would make a write escape ``dest``.

    Examples:
        >>> import pathlib, tempfile
        >>> src = pathlib.Path(tempfile.mkdtemp()) / "model.onnx"
        >>> _ = src.write_bytes(b"onnx")
        >>> target = tempfile.mkdtemp()
        >>> _ = backup(src, target=target, name="model.onnx")
        >>> dest = pathlib.Path(tempfile.mkdtemp()) / "restored.onnx"
        >>> restore("model.onnx", dest, target=target).files_restored
        1
        >>> dest.read_bytes()
        b'onnx'
    """
    cfg = config or load_config()
    with _target(target, cfg) as opened:
        return run_restore(
            opened, name, Path(dest), version=version, overwrite=overwrite, progress=progress
        )


def restore_if_missing(
    path: PathArg,
    *,
    target: TargetArg = None,
    name: str | None = None,
    config: BackupConfig | None = None,
    progress: ProgressCallback | None = None,
) -> RestoreResult:
    """Bring ``path`` back from its newest backup if it does not exist locally.

    The resume call at the top of a notebook: on a fresh machine it restores; on a machine that
    still has the file it does nothing; on the very first run (no backup yet) it does nothing.

    Args:
        path: the local path that a previous run backed up.
        target: a [`BackupTarget`][mlbackup.BackupTarget], a URL or folder; default: the configured
            target.
        name: the backup's name; default: ``path`` relative to the source root.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        progress: called after each file with a [`ProgressEvent`][mlbackup.ProgressEvent].

    Returns:
        A [`RestoreResult`][mlbackup.RestoreResult] with status ``RESTORED``,
            ``SKIPPED_PRESENT`` or ``SKIPPED_NO_BACKUP``.

    Examples:
        >>> import pathlib, tempfile
        >>> missing = pathlib.Path(tempfile.mkdtemp()) / "study.db"
        >>> restore_if_missing(missing, target=tempfile.mkdtemp()).status.value
        'skipped_no_backup'
    """
    cfg = config or load_config()
    dest = Path(path)
    backup_name = name if name is not None else default_name(dest, cfg.source_root)
    if dest.exists():
        return RestoreResult(RestoreStatus.SKIPPED_PRESENT, name=backup_name, dest=dest)
    with _target(target, cfg) as opened:
        try:
            return run_restore(opened, backup_name, dest, progress=progress)
        except BackupNotFoundError:
            if opened.versions(backup_name):
                raise
            return RestoreResult(
                RestoreStatus.SKIPPED_NO_BACKUP, name=backup_name, dest=dest, target=opened.url
            )
