"""``mlbackup demo``: the whole story on a local target, offline, in a few seconds.

A small Optuna study on SQLite is backed up after every trial, a "final training" checkpoint
folder, a "conversion" output and a "benchmark" report are each backed up with the same call;
then the outputs are deleted (the runtime is lost), restored, checked byte for byte, and the
study continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import immediate_backup_if_needed, restore_if_missing
from .config import BackupConfig
from .hashing import hash_file
from .integrations.optuna import BackupCallback, resume_study
from .paths import default_name
from .results import RestoreStatus
from .sources import is_sqlite
from .target import open_target

__all__ = ["DemoSummary", "run_demo"]

TRIALS_BEFORE_LOSS = 12
TRIALS_AFTER_RESUME = 5


@dataclass
class DemoSummary:
    """What the demo did, for ``--json`` and for tests."""

    target: str
    workdir: str
    trials_before_loss: int = 0
    study_backups: int = 0
    outputs_backed_up: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    byte_identical: bool = False
    trials_after_resume: int = 0
    best_value: float | None = None


def _objective(trial: Any) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    y = trial.suggest_int("y", -5, 5)
    return float((x - 2.0) ** 2 + (y + 1) ** 2)


def _sampler(optuna: Any, seed: int) -> Any:
    return optuna.samplers.RandomSampler(seed=seed)


def _write_outputs(outputs: Path, best: dict[str, Any]) -> list[Path]:
    """Stand-ins for the later workflow steps' real outputs."""
    rng = random.Random(repr(sorted(best.items())))  # noqa: S311 - demo data, not secrets
    model = outputs / "final_model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "logs").mkdir()  # an empty folder must round-trip too
    (model / "weights.bin").write_bytes(rng.randbytes(2 << 20))
    (model / "config.json").write_text(json.dumps({"best_params": best}, indent=1))
    (model / "tokenizer" / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(500)))
    onnx = outputs / "model.onnx"
    onnx.write_bytes(b"ONNX" + rng.randbytes(300_000))
    report = outputs / "benchmark.json"
    report.write_text(json.dumps({"latency_ms_p50": 3.2, "latency_ms_p95": 4.1, "runs": 200}))
    return [model, onnx, report]


def _fingerprint(paths: list[Path]) -> dict[str, str]:
    """sha256 of every file (of a database's SQL dump: a consistent snapshot of a database is
    the same data, though SQLite rewrites a few header counters when it copies one)."""
    found = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if is_sqlite(f):
                with closing(sqlite3.connect(f)) as conn:
                    dump = "\n".join(conn.iterdump()).encode()
                found[str(f)] = hashlib.sha256(dump).hexdigest()
            else:
                found[str(f)] = hash_file(f, "sha256")[1]
        if path.is_dir():
            for d in sorted(p for p in path.rglob("*") if p.is_dir()):
                found[str(d) + "/"] = "dir"
    return found


def run_demo(
    target_url: str | None = None,
    workdir: Path | None = None,
    say: Callable[[str], None] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> DemoSummary:
    """Run the demo; ``say`` receives the narration lines (default: print them);
    ``storage_options`` are the target's (an ``endpoint_url``, credentials), as for every
    other command."""
    options = dict(storage_options or {})
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - optuna is in the default install
        raise SystemExit('the demo needs Optuna: pip install "mlbackup[optuna]"') from exc
    tell = say or print
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mlbackup-demo-"))
    project = work / "project"
    outputs = project / "outputs"
    (outputs / "hpo").mkdir(parents=True)
    url = target_url or str(work / "backup-target")
    config = BackupConfig(target=url, source_root=project, storage_options=options)
    summary = DemoSummary(target=url, workdir=str(work))
    db = outputs / "hpo" / "study.db"
    storage = f"sqlite:///{db}"

    tell(f"mlbackup demo: project in {project}, backups to {url}")
    tell(
        f"1. tuning: {TRIALS_BEFORE_LOSS} Optuna trials, study.db backed up after each by "
        "mlbackup's Optuna callback"
    )
    # The same line starts a study and resumes one: on this first run there is nothing to restore.
    study = resume_study(
        "demo", storage, config=config, direction="minimize", sampler=_sampler(optuna, 7)
    )
    with BackupCallback(storage=storage, config=config) as callback:  # background mode
        study.optimize(_objective, n_trials=TRIALS_BEFORE_LOSS, callbacks=[callback])
    with open_target(url, **options) as target:
        summary.study_backups = len(target.versions(default_name(db, project)))
    summary.trials_before_loss = len(study.trials)
    tell(
        f"   best value so far {study.best_value:.3f}; {summary.study_backups} versions of study.db"
    )

    tell("2. training, conversion, benchmarking: each output backed up the same way")
    made = _write_outputs(outputs, dict(study.best_params))
    for path in made:
        result = immediate_backup_if_needed(path, config=config)
        summary.outputs_backed_up.append(result.name or str(path))
        tell(
            f"   {result.name}: {result.status.value}, {result.files_sent} files, "
            f"{result.bytes_sent:,} bytes"
        )
    before = _fingerprint([db, *made])

    tell("3. the runtime is lost: deleting every local output")
    shutil.rmtree(outputs)

    tell("4. a new runtime restores what is missing")
    resumed = resume_study("demo", storage, config=config, sampler=_sampler(optuna, 8))
    tell(f"   {default_name(db, project)}: restored by resume_study")
    summary.restored.append(default_name(db, project))
    for path in made:
        restored = restore_if_missing(path, config=config)
        if restored.status is RestoreStatus.RESTORED:
            summary.restored.append(restored.name)
        tell(f"   {restored.name}: {restored.status.value} ({restored.files_restored} files)")
    summary.byte_identical = _fingerprint([db, *made]) == before
    with open_target(url, **options) as target:
        for name in summary.restored:
            target.verify(name)
    tell(
        "   identical to before the loss (byte for byte; databases by content): "
        f"{summary.byte_identical}"
    )

    tell(f"5. tuning resumes: {TRIALS_AFTER_RESUME} more trials on the restored study")
    with BackupCallback(storage=storage, config=config) as callback:
        resumed.optimize(_objective, n_trials=TRIALS_AFTER_RESUME, callbacks=[callback])
    summary.trials_after_resume = len(resumed.trials)
    summary.best_value = resumed.best_value
    tell(
        f"   the study now holds {summary.trials_after_resume} trials "
        f"({summary.trials_before_loss} from before the loss); best value {resumed.best_value:.3f}"
    )
    ok = summary.byte_identical and summary.trials_after_resume == (
        TRIALS_BEFORE_LOSS + TRIALS_AFTER_RESUME
    )
    tell("demo finished: nothing was lost." if ok else "demo FAILED: see above.")
    return summary
