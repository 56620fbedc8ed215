"""What the trainer callbacks share: sending checkpoints without ever raising into training, and
finding the newest backed-up checkpoint on a fresh machine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..api import TargetArg, immediate_backup_if_needed, open_target_for
from ..background import BackgroundBackup, BackgroundBackupError
from ..closing import ClosingContext
from ..config import BackupConfig, load_config
from ..errors import MLBackupError
from ..paths import default_name
from ..restore import run_restore
from ..target import BackupTarget

__all__ = ["CheckpointSender", "resume_newest"]

log = logging.getLogger("mlbackup")


class CheckpointSender(ClosingContext):
    """Back checkpoints up in the background (or inline) and log failures instead of raising.

    Training must go on when the store is down: a failed backup is logged and kept in
    `failures`, and the next checkpoint is tried as usual.
    """

    def __init__(
        self,
        target: TargetArg,
        *,
        background: bool,
        config: BackupConfig | None,
        keep_last: int | None,
    ) -> None:
        self.config = config or load_config()
        self.failures: dict[str, str] = {}
        self._keep_last = keep_last
        self._target, self._owns_target = open_target_for(target, self.config, reach=not background)
        self._background = (
            BackgroundBackup(self._target, config=self.config, keep_last=keep_last)
            if background
            else None
        )

    def name_of(self, path: Path, prefix: str | None) -> str:
        """``prefix/<basename>`` if a prefix is given, else the path relative to the project."""
        if prefix is not None:
            return f"{prefix.strip('/')}/{path.name}"
        return default_name(path, self.config.source_root)

    def send(self, path: Path, name: str, *, missing_ok: bool = False) -> bool:
        """Back ``path`` up as ``name``; returns at once in background mode. False when backup
        is disabled (the ``enabled`` setting), as ``immediate_backup_if_needed`` skips."""
        if not self.config.enabled:
            return False
        if self._background is not None:
            self._background.submit(path, name, missing_ok=missing_ok)
            return True
        try:
            immediate_backup_if_needed(
                path, target=self._target, name=name, config=self.config, keep_last=self._keep_last
            )
        except MLBackupError as exc:
            self._record({name: exc})
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Wait for what was sent so far; failures are logged, never raised."""
        if self._background is None:
            return
        try:
            self._background.flush(timeout)
        except BackgroundBackupError as exc:
            self._record(exc.failures)
        except TimeoutError as exc:
            log.error("checkpoint backups: %s", exc)

    def _record(self, failures: dict[str, BaseException]) -> None:
        for name, exc in failures.items():
            self.failures[name] = str(exc)
            log.error("checkpoint %s was not backed up: %s", name, exc)

    def close(self, timeout: float | None = None) -> None:
        """Wait for pending backups, then release the target."""
        try:
            self.wait(timeout)
            if self._background is not None:
                self._background.close(timeout)
        finally:
            if self._owns_target:
                self._target.close()


def resume_newest(
    folder: Path,
    local: list[tuple[float, Path]],
    rank: Callable[[BackupTarget, str], float | None],
    *,
    target: TargetArg,
    name_prefix: str | None,
    config: BackupConfig | None,
) -> str | None:
    """The checkpoint to resume from: the best-ranked of ``local`` (rank, path) pairs and of the
    backups directly under the prefix, restored into ``folder`` if a backup ranks higher.

    ``rank(target, name)`` scores a backed-up name (None: not a checkpoint); scores must be
    comparable with the local ones (a step number, a write time).
    """
    cfg = config or load_config()
    newest_local = max(local, default=None)
    prefix = name_prefix if name_prefix is not None else default_name(folder, cfg.source_root)
    start = prefix.strip("/") + "/"
    opened, owned = open_target_for(target, cfg)
    try:
        scored = [
            (score, name)
            for name in opened.names()
            if name.startswith(start) and "/" not in name[len(start) :]
            if (score := rank(opened, name)) is not None
        ]
        best = max(scored, default=None)
        if best is not None and (newest_local is None or best[0] > newest_local[0]):
            name = best[1]
            dest = folder / name[len(start) :]
            # overwrite: a partial leftover of a save that crashed is replaced
            result = run_restore(opened, name, dest, overwrite=True)
            log.info(
                "restored checkpoint %s (version %s, %d files) to %s",
                name, result.version, result.files_restored, dest,
            )  # fmt: skip
            return str(dest)
    finally:
        if owned:
            opened.close()
    return str(newest_local[1]) if newest_local is not None else None
