"""Optuna workers on one bucket journal, each in a fresh process: what the bucket-journal tests
start, on any store and through any proxy."""

import json
import multiprocessing
import os
import time
from pathlib import Path

STUDY = "hpo"


def objective(trial):
    return (trial.suggest_float("x", -10, 10) - 2) ** 2


def run_worker(url, options, cache_dir, n_trials, out, crash_at=None):
    """Run ``n_trials`` trials on the study, writing after each what this worker told
    (number, params, value) and where it joined the log to ``out``."""
    if crash_at:
        os.environ["MLBACKUP_CRASH_AT"] = crash_at
    import optuna
    from optuna.storages import JournalStorage

    from mlbackup import open_target
    from mlbackup.integrations.optuna import BucketJournalBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = BucketJournalBackend(open_target(url, **options), name=STUDY, cache_dir=cache_dir)
    study = optuna.load_study(
        study_name=STUDY, storage=JournalStorage(backend), sampler=optuna.samplers.RandomSampler()
    )
    told = []

    def record(study, trial):
        told.append({"number": trial.number, "params": trial.params, "value": trial.value})
        temp = Path(f"{out}.tmp")
        temp.write_text(json.dumps({"told": told, "joined_at": backend.joined_at}))
        temp.replace(out)

    study.optimize(objective, n_trials=n_trials, callbacks=[record])


def start_workers(specs):
    """Start one process per ``(url, options, cache_dir, n_trials, out, crash_at)``."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, args=spec) for spec in specs]
    for proc in procs:
        proc.start()
    return procs


def join_all(procs, timeout=600):
    """Wait for every process, ``timeout`` seconds in all; kill those still running."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.exitcode is None:
            proc.kill()
            proc.join()
    return [proc.exitcode for proc in procs]


def told_by(out):
    """What the worker writing ``out`` told, and where it joined (None: from the start)."""
    if not Path(out).exists():
        return [], None
    document = json.loads(Path(out).read_text())
    return document["told"], document["joined_at"]
