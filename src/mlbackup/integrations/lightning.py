"""PyTorch Lightning: back up what ``ModelCheckpoint`` saves, and resume on a fresh machine from
the newest checkpoint backed up.

::

    from mlbackup.integrations.lightning import BackupCheckpointCallback, resume_checkpoint

    checkpoints = ModelCheckpoint(dirpath="outputs/ckpt", save_last=True)
    trainer = L.Trainer(callbacks=[checkpoints, BackupCheckpointCallback(URL)])
    trainer.fit(model, ckpt_path=resume_checkpoint("outputs/ckpt", target=URL))

Give ``ModelCheckpoint`` a fixed ``dirpath``: the default one holds a version number that
changes from machine to machine, so a fresh machine would look for its backups elsewhere.
Importing ``mlbackup`` never imports Lightning; this module does
(``pip install "mlbackup[lightning]"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..api import TargetArg
from ..closing import ClosingContext
from ..config import BackupConfig
from ..target import BackupTarget
from .checkpoints import CheckpointSender, resume_newest

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "mlbackup.integrations.lightning needs Lightning: pip install 'mlbackup[lightning]'"
        ) from exc

__all__ = ["BackupCheckpointCallback", "resume_checkpoint"]

_SUFFIX = ".ckpt"


class BackupCheckpointCallback(pl.Callback, ClosingContext):
    """A Lightning ``Callback`` backing up each checkpoint file ``ModelCheckpoint`` writes.

    Lightning runs checkpoint callbacks after all others, so a save is noticed (through
    ``on_save_checkpoint``) and sent at the next hook: the next batch, epoch or validation run,
    or the end of training. In background mode (the default) training goes on at once. A file
    that ``save_top_k`` removes before its turn is skipped; one that was sent stays on the
    target. At the end of training everything is flushed. A failed backup never stops
    training: it is logged and kept in `failures`.

    Args:
        target: a [`BackupTarget`][mlbackup.BackupTarget], URL or folder; default: the configured
            one.
        background: send from a worker thread (True) or inline (False).
        name_prefix: names on the target are ``name_prefix/<file name>``; default: each file's
            path relative to the source root (what `resume_checkpoint()` assumes too).
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        keep_last: versions kept per name (``last.ckpt`` gets one per save); default: the
            configured value.

    Attributes:
        sent: the names submitted so far, in order.
        failures: name -> error text of each backup that failed.

    With backup disabled (the ``enabled`` setting), nothing is sent.
    """

    def __init__(
        self,
        target: TargetArg = None,
        *,
        background: bool = True,
        name_prefix: str | None = None,
        config: BackupConfig | None = None,
        keep_last: int | None = None,
    ) -> None:
        self._sender = CheckpointSender(
            target, background=background, config=config, keep_last=keep_last
        )
        self.failures = self._sender.failures
        self.name_prefix = name_prefix
        self.sent: list[str] = []
        self._seen: dict[str, tuple[int, int]] = {}
        self._saved_since_last_look = False

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Any) -> None:
        # Called just before the file is written; it is on disk by our next hook.
        self._saved_since_last_look = True

    def _send_new_files(self, trainer: Any) -> None:
        if not self._saved_since_last_look or not trainer.is_global_zero:
            return
        self._saved_since_last_look = False
        for callback in trainer.checkpoint_callbacks:
            kept = {*callback.best_k_models, callback.last_model_path, callback.best_model_path}
            for path in sorted(p for p in kept if p):
                try:
                    st = os.stat(path, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if os.path.islink(path) or self._seen.get(path) == (st.st_mtime_ns, st.st_size):
                    continue  # save_last="link" points at a file sent on its own
                self._seen[path] = (st.st_mtime_ns, st.st_size)
                name = self._sender.name_of(Path(path), self.name_prefix)
                if self._sender.send(Path(path), name, missing_ok=True):
                    self.sent.append(name)

    def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
        self._send_new_files(trainer)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._send_new_files(trainer)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._send_new_files(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._send_new_files(trainer)
        self._sender.wait()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._send_new_files(trainer)  # what was saved before the crash is worth keeping
        self._sender.wait()

    def close(self, timeout: float | None = None) -> None:
        """Wait for pending backups and release the target (after ``trainer.fit()``)."""
        self._sender.close(timeout)


def _written_ns(target: BackupTarget, name: str) -> float | None:
    # When the .ckpt was written, as recorded in its backup: comparable with a local mtime.
    if not name.endswith(_SUFFIX):
        return None
    manifest = target.latest_manifest(name)
    if manifest is None or manifest.kind != "file" or not manifest.files:
        return None
    return float(manifest.files[0].mtime_ns)


def resume_checkpoint(
    dirpath: str | Path,
    *,
    target: TargetArg = None,
    name_prefix: str | None = None,
    config: BackupConfig | None = None,
) -> str | None:
    """The newest ``.ckpt`` to resume from, restored from the target if need be.

    Pass the result to ``trainer.fit(model, ckpt_path=...)``. "Newest" is by the time the file
    was written (kept in the backup), so a restored file and its backup count as the same, and
    a file written since on this machine wins. On the very first run it is None.

    Args:
        dirpath: ``ModelCheckpoint``'s ``dirpath``.
        target: a [`BackupTarget`][mlbackup.BackupTarget], URL or folder; default: the configured
            one.
        name_prefix: as given to `BackupCheckpointCallback`.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.

    Examples:
        >>> import tempfile
        >>> resume_checkpoint(tempfile.mkdtemp(), target=tempfile.mkdtemp()) is None
        True
    """
    folder = Path(dirpath)
    local = [
        (float(entry.stat().st_mtime_ns), entry)
        for entry in (folder.iterdir() if folder.is_dir() else [])
        if entry.suffix == _SUFFIX and entry.is_file() and not entry.is_symlink()
    ]
    return resume_newest(
        folder, local, _written_ns, target=target, name_prefix=name_prefix, config=config
    )
