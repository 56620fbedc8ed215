"""Incremental backup costs, side by side with their physical floor.

    .venv/bin/python benchmarks/bench_incremental.py [--files 5000] [--trials 60]

1. The background Optuna callback's cost per trial (median), against the trial's own time.
2. The no-change check of a backed-up tree, against a bare ``os.stat`` walk of the same tree
   (the least any change check can do), as a ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from mlbackup import backup, open_target
from mlbackup.integrations.optuna import BackupCallback


def make_tree(root: Path, files: int) -> None:
    rng = random.Random(0)
    for i in range(files):
        path = root / f"d{i % 64:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 64 * 1024)))


def stat_walk(root: Path) -> int:
    count = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            count += 1
    return count


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_callback(work: Path, trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{work}/study.db"
    study = optuna.create_study(storage=storage)
    cost: list[float] = []
    trial_time: list[float] = []
    with BackupCallback(work / "target", storage=storage) as cb:

        def timed(study, trial):
            started = time.perf_counter()
            cb(study, trial)
            cost.append(time.perf_counter() - started)
            trial_time.append(trial.duration.total_seconds())

        def objective(t):
            return sum((t.suggest_float(f"x{i}", -1, 1)) ** 2 for i in range(5))

        study.optimize(objective, n_trials=trials, callbacks=[timed])
    versions = len(open_target(work / "target").versions("study.db"))
    med = statistics.median(cost)
    print(f"callback, background mode: median {med * 1e6:.0f} µs per trial over {trials} trials")
    print(
        f"  a trial's own median time: {statistics.median(trial_time) * 1e3:.1f} ms "
        f"(SQLite storage); versions committed: {versions} (coalesced)"
    )


def bench_no_change(work: Path, files: int) -> None:
    tree = work / "tree"
    make_tree(tree, files)
    target = open_target(work / "tree-target")
    backup(tree, target=target, name="tree")
    floor = median_time(lambda: stat_walk(tree), 5)
    ours = median_time(lambda: backup(tree, target=target, name="tree"), 5)
    print(
        f"no-change check, {files} files: mlbackup {ours * 1e3:.1f} ms, "
        f"bare stat walk {floor * 1e3:.1f} ms, ratio {ours / floor:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_callback(Path(tmp), args.trials)
        bench_no_change(Path(tmp), args.files)


if __name__ == "__main__":
    main()
