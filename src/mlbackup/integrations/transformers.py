"""Hugging Face ``transformers``: back each checkpoint up as the Trainer saves it, and resume on
a fresh machine from the newest one backed up.

::

    from mlbackup.integrations.transformers import BackupTrainerCallback, resume_checkpoint

    callback = BackupTrainerCallback(URL)
    trainer = Trainer(model, args, train_dataset=data, callbacks=[callback])
    trainer.train(resume_from_checkpoint=resume_checkpoint(args.output_dir, target=URL))

Importing ``mlbackup`` never imports ``transformers``; this module does
(``pip install "mlbackup[transformers]"``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import TargetArg
from ..closing import ClosingContext
from ..config import BackupConfig
from .checkpoints import CheckpointSender, resume_newest

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mlbackup.integrations.transformers needs transformers: "
        "pip install 'mlbackup[transformers]'"
    ) from exc

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

__all__ = ["BackupTrainerCallback", "resume_checkpoint"]

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# The Trainer writes this last: a checkpoint folder without it is a save that did not finish.
_COMPLETE_MARKER = "trainer_state.json"


class BackupTrainerCallback(TrainerCallback, ClosingContext):
    """A ``transformers.TrainerCallback`` backing up each ``checkpoint-N`` folder once saved.

    * After each save (``on_save``, when the folder is complete), the new checkpoint is sent;
      in background mode (the default) training goes on at once.
    * Before the next save, it waits for that backup: the Trainer's ``save_total_limit``
      rotation deletes old folders, and a folder must not vanish while it is being sent.
    * At the end of training the final model (and tokenizer or processor, if the Trainer has
      one) is saved to ``output_dir/final_dir`` and backed up, and everything is flushed.
    * A failed backup never stops training: it is logged and kept in `failures`.

    Call `close()` after ``trainer.train()``, or use the callback as a context manager.

    Args:
        target: a [`BackupTarget`][mlbackup.BackupTarget], URL or folder; default: the configured
            one.
        background: send from a worker thread (True) or inline at each save (False).
        name_prefix: names on the target are ``name_prefix/checkpoint-N``; default: the
            output folder's path relative to the source root (what `resume_checkpoint()`
            looks under by default too).
        final_dir: the final model's folder inside ``output_dir``; None skips the final save.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        keep_last: versions kept per name; default: the configured value.

    Attributes:
        sent: the names submitted so far, in order.
        failures: name -> error text of each backup that failed.

    With backup disabled (the ``enabled`` setting), nothing is sent.
    """

    failures: dict[str, str]

    def __init__(
        self,
        target: TargetArg = None,
        *,
        background: bool = True,
        name_prefix: str | None = None,
        final_dir: str | None = "final",
        config: BackupConfig | None = None,
        keep_last: int | None = None,
    ) -> None:
        self._sender = CheckpointSender(
            target, background=background, config=config, keep_last=keep_last
        )
        self.failures = self._sender.failures
        self.name_prefix = name_prefix
        self.final_dir = final_dir
        self.sent: list[str] = []

    def _send(self, path: Path) -> None:
        name = self._sender.name_of(path, self.name_prefix)
        if self._sender.send(path, name):
            self.sent.append(name)

    def _before_possible_save(self, args: TrainingArguments, control: TrainerControl) -> None:
        # With save_strategy="best" the save is decided after evaluating, so wait then too.
        if control.should_save or (args.save_strategy == "best" and control.should_evaluate):
            self._sender.wait()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._before_possible_save(args, control)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._before_possible_save(args, control)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        folder = _output_dir(args) / f"checkpoint-{state.global_step}"
        if (folder / _COMPLETE_MARKER).is_file():
            self._send(folder)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        model = kwargs.get("model")
        if self.final_dir is not None and model is not None:
            self._sender.wait()  # the last checkpoint first: a resume needs it more
            final = _output_dir(args) / self.final_dir
            model.save_pretrained(final)
            processor = kwargs.get("processing_class")
            if processor is not None and hasattr(processor, "save_pretrained"):
                processor.save_pretrained(final)
            self._send(final)
        self._sender.wait()

    def close(self, timeout: float | None = None) -> None:
        """Wait for pending backups and release the target (after ``trainer.train()``)."""
        self._sender.close(timeout)


def _output_dir(args: TrainingArguments) -> Path:
    # TrainingArguments fills in its own default when output_dir is None
    return Path(args.output_dir or "trainer_output")


def _step(folder: str) -> float | None:
    match = _CHECKPOINT.fullmatch(folder)
    return float(match.group(1)) if match else None


def resume_checkpoint(
    output_dir: str | Path,
    *,
    target: TargetArg = None,
    name_prefix: str | None = None,
    config: BackupConfig | None = None,
) -> str | None:
    """The newest complete checkpoint to resume from, restored from the target if need be.

    Pass the result to ``trainer.train(resume_from_checkpoint=...)``: on a fresh machine the
    newest backed-up ``checkpoint-N`` comes back into ``output_dir``; where a newer complete
    checkpoint is already on disk, that one is used; on the very first run it is None, which
    starts training from scratch.

    Args:
        output_dir: the Trainer's ``output_dir``.
        target: a [`BackupTarget`][mlbackup.BackupTarget], URL or folder; default: the configured
            one.
        name_prefix: as given to `BackupTrainerCallback`.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.

    Examples:
        >>> import tempfile
        >>> resume_checkpoint(tempfile.mkdtemp(), target=tempfile.mkdtemp()) is None
        True
    """
    out = Path(output_dir)
    local = [
        (step, entry)
        for entry in (out.iterdir() if out.is_dir() else [])
        if (step := _step(entry.name)) is not None and (entry / _COMPLETE_MARKER).is_file()
    ]
    return resume_newest(
        out,
        local,
        lambda _, name: _step(name.rsplit("/", 1)[-1]),
        target=target,
        name_prefix=name_prefix,
        config=config,
    )
