"""The Python side of the benchmarks, run as a child process by the harness.

    python benchmarks/child.py <operation> '<json arguments>'

Imports happen first; only the operation itself is timed, and printed as ``{"seconds": ...}``
on the last line (the in-process figure). The harness measures the whole process as well.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from measure import vm_hwm_kb


def _time_commits() -> list[float]:
    """From now on, when each version became committed (``time.perf_counter()``): what
    follows (the browsable tree, retention) is work no reader waits for."""
    import mlbackup.engine

    committed: list[float] = []
    commit = mlbackup.engine.commit_version

    def timed_commit(*args: Any, **kwargs: Any) -> Any:
        manifest = commit(*args, **kwargs)
        committed.append(time.perf_counter())
        return manifest

    mlbackup.engine.commit_version = timed_commit  # type: ignore[assignment]
    return committed


def mlbackup_backup(a: dict[str, Any]) -> dict[str, float]:
    from mlbackup import backup, open_target

    committed = _time_commits()
    target = open_target(a["url"], **a.get("options", {}))
    result = backup(a["src"], target=target, name=a["name"])
    after_commit = time.perf_counter() - committed[-1] if committed else 0.0
    return {
        "bytes_sent": result.bytes_sent,
        "files_sent": result.files_sent,
        "after_commit": after_commit,
    }


def mlbackup_restore(a: dict[str, Any]) -> None:
    from mlbackup import open_target, restore

    restore(a["name"], a["dest"], target=open_target(a["url"], **a.get("options", {})))


def fsspec_rsync(a: dict[str, Any]) -> None:
    from fsspec.generic import rsync

    rsync(a["src"], a["dst"], **a.get("kwargs", {}))


def s3fs_put(a: dict[str, Any]) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**a["options"])
    fs.put(a["src"].rstrip("/") + "/", a["dst"], recursive=True)


def stat_walk(a: dict[str, Any]) -> None:
    for dirpath, _dirs, names in os.walk(a["src"]):
        for name in names:
            os.stat(os.path.join(dirpath, name))


def read_all(a: dict[str, Any]) -> None:
    for dirpath, _dirs, names in os.walk(a["src"]):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                while f.read(1 << 20):
                    pass


def md5_all(a: dict[str, Any]) -> None:
    import hashlib

    for dirpath, _dirs, names in os.walk(a["src"]):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                hashlib.file_digest(f, "md5")


def study_callback(a: dict[str, Any]) -> dict[str, float]:
    """The Optuna callback's cost per trial in background mode, as the study grows."""
    import optuna

    from mlbackup.integrations.optuna import BackupCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{a['db']}"
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    cost: list[float] = []
    trial: list[float] = []
    with BackupCallback(a["target"], storage=storage) as callback:

        def timed(s: Any, t: Any) -> None:
            started = time.perf_counter()
            callback(s, t)
            cost.append(time.perf_counter() - started)
            trial.append(t.duration.total_seconds())

        study.optimize(
            lambda t: sum(t.suggest_float(f"x{i}", -1, 1) ** 2 for i in range(8)),
            n_trials=a["trials"],
            callbacks=[timed],
        )
    return {
        "callback_ms": statistics.median(cost) * 1e3,
        "trial_ms": statistics.median(trial) * 1e3,
    }


def snapshot_vs_copy(a: dict[str, Any]) -> dict[str, float]:
    """A consistent SQLite snapshot against a raw (unsafe) copyfile of the same database."""
    from mlbackup.sources import snapshot_sqlite

    db = Path(a["db"])
    snap, copy = [], []
    for _ in range(a["repeat"]):
        started = time.perf_counter()
        shutil.copyfile(db, db.with_suffix(".copy"))
        copy.append(time.perf_counter() - started)
        started = time.perf_counter()
        snapshot_sqlite(db).unlink()
        snap.append(time.perf_counter() - started)
    return {
        "snapshot_ms": statistics.median(snap) * 1e3,
        "copyfile_ms": statistics.median(copy) * 1e3,
    }


def _study_of(db: Path, trials: int) -> Any:
    """An Optuna study in SQLite at ``db`` with ``trials`` finished trials (added in bulk)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{db}")
    dist = {f"x{i}": optuna.distributions.FloatDistribution(-1, 1) for i in range(8)}
    study.add_trials(
        optuna.trial.create_trial(params=dict.fromkeys(dist, 0.5), distributions=dist, value=n)
        for n in range(trials)
    )
    return study, dist


def study_commit_path(a: dict[str, Any]) -> dict[str, Any]:
    """One in-process backup of a study.db that gained a trial, to S3, as the Optuna callback
    makes it after every trial: its time until the version is committed, and its requests;
    against a consistent snapshot plus one plain upload (boto3's ``put_object``) of the same
    database."""
    from collections import Counter

    import boto3
    import optuna

    from mlbackup import backup, open_target
    from mlbackup.sources import snapshot_sqlite
    from mlbackup.testing.fault_proxy import FaultProxy

    committed = _time_commits()
    options = a["options"]
    client = boto3.client(
        "s3", endpoint_url=options["endpoint_url"], aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"], region_name="us-east-1",
    )  # fmt: skip
    bucket = a["url"].removeprefix("s3://").split("/")[0]
    sizes: dict[str, Any] = {}
    for trials in a["sizes"]:
        folder = Path(a["work"]) / f"study-{trials}"
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "study.db"
        study, dist = _study_of(db, trials)
        url = f"{a['url']}/commit-{trials}"

        def one_more_trial(study: Any = study, dist: Any = dist) -> None:
            study.add_trial(optuna.trial.create_trial(
                params=dict.fromkeys(dist, 0.25), distributions=dist, value=0.0))  # fmt: skip

        target = open_target(url, **options)
        backup(db, target=target, name="study")  # the first version: not what is measured
        ours, plain = [], []
        for _ in range(a["repeat"]):
            one_more_trial()
            started = time.perf_counter()
            backup(db, target=target, name="study")
            ours.append(committed[-1] - started)
            started = time.perf_counter()
            snapshot = snapshot_sqlite(db)
            with open(snapshot, "rb") as f:
                client.put_object(Bucket=bucket, Key=f"plain-{trials}/study.db", Body=f)
            snapshot.unlink()
            plain.append(time.perf_counter() - started)
        with FaultProxy(options["endpoint_url"]).start() as proxy:
            counted = open_target(url, **{**options, "endpoint_url": proxy.endpoint_url})
            one_more_trial()
            backup(db, target=counted, name="study")  # as the callback's previous backup
            one_more_trial()
            proxy.log.clear()
            backup(db, target=counted, name="study")
            log = list(proxy.log)
        # The commit is the manifest's create-only PUT; what follows it (the browsable
        # copy, retention) is work no reader waits for.
        commit = next(i for i, r in enumerate(log) if r.method == "PUT" and "/manifests/" in r.path)
        requests = dict(Counter(r.method for r in log[: commit + 1]))
        after = dict(Counter(r.method for r in log[commit + 1 :]))
        sizes[str(trials)] = {
            "commit_ms": statistics.median(ours) * 1e3,
            "plain_ms": statistics.median(plain) * 1e3,
            "bytes": db.stat().st_size,
            "requests": requests,
            "requests_after_commit": after,
        }
    return {"sizes": sizes}


def no_change_requests(a: dict[str, Any]) -> dict[str, Any]:
    """The requests one no-change backup makes on S3 (its check that every object the
    versions list is still there included): in a fresh process, and again in one that ran
    a backup of the name before (a callback's steady state)."""
    from collections import Counter

    from mlbackup import backup, open_target
    from mlbackup.testing.fault_proxy import FaultProxy

    src, versions = Path(a["src"]), a["versions"]
    with FaultProxy(a["options"]["endpoint_url"]).start() as proxy:
        options = {**a["options"], "endpoint_url": proxy.endpoint_url}
        note = src / "mlbackup-bench-note.txt"
        for version in range(versions):
            note.write_text(f"version {version}")  # a new version each time, one file changed
            backup(src, target=open_target(a["url"], **options), name="requests")
        counted = {}
        target = open_target(a["url"], **options)  # as a new CLI process opens it
        for when in ("fresh process", "same process"):
            proxy.log.clear()
            assert backup(src, target=target, name="requests").status.value == "unchanged"
            counted[when] = dict(Counter(r.method for r in proxy.log))
        objects = len(target.backend.list_dir(".mlbackup/objects"))
    note.unlink()
    return {"requests": counted, "files": sum(1 for p in src.rglob("*") if p.is_file()),
            "objects": objects, "versions": versions}  # fmt: skip


OPERATIONS = {f.__name__: f for f in (
    mlbackup_backup, mlbackup_restore, fsspec_rsync, s3fs_put, stat_walk, read_all, md5_all,
    study_callback, snapshot_vs_copy, study_commit_path, no_change_requests,
)}  # fmt: skip


def _import_backend(url: str) -> None:
    """Import the target's backend before the clock starts: a training process pays that
    once, not per backup."""
    from mlbackup.registry import get_backend_class

    scheme = url.split("://")[0] if "://" in url else "file"
    get_backend_class(scheme)
    if scheme == "s3":  # what the S3 backend loads on first use: the direct path, and s3fs
        import botocore.session  # noqa: F401
        import s3fs  # noqa: F401
        import urllib3  # noqa: F401


def main() -> None:
    operation, args = OPERATIONS[sys.argv[1]], json.loads(sys.argv[2])
    if "url" in args:
        _import_backend(args["url"])
    started = time.perf_counter()
    extra = operation(args) or {}
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "vm_hwm_kb": vm_hwm_kb(), **extra}))


if __name__ == "__main__":
    main()
