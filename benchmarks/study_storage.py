"""Per-trial overhead of the storages a study shared by several workers can use, side by side.

    .venv/bin/python benchmarks/study_storage.py            # 4 workers, 25 trials each
    .venv/bin/python benchmarks/study_storage.py --trials 10

Four worker processes run one study with an objective that returns at once, so the time per
trial is the storage's own cost. Storages: mlbackup's bucket journal on moto's S3 server,
SQLite on a folder standing in for the Drive mount path (how a Colab user shares a study
file), and PostgreSQL through Optuna's RDB storage (the throwaway server of
`mlbackup.testing.postgres_server`, which runs with ``fsync=off``: a kind comparison for it).
Each networked storage runs on loopback and again with 10 ms added each way: the S3 server
behind the fault proxy's latency (20 ms a request), PostgreSQL behind a TCP proxy that holds
every chunk 10 ms in each direction. (SQLite has no network between worker and file; on a
real Drive mount the sync client's own upload lag comes on top and is not measured.)
Writes ``benchmarks/study_storage.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKERS = 4
DELAY = 0.010  # seconds added each way


def _storage(spec: dict[str, Any]) -> Any:
    import optuna

    if spec["kind"] == "journal":
        from optuna.storages import JournalStorage

        from mlbackup import open_target
        from mlbackup.integrations.optuna import BucketJournalBackend

        target = open_target(spec["url"], **spec["options"])
        return JournalStorage(BucketJournalBackend(target, name="bench"))
    return optuna.storages.RDBStorage(
        spec["url"], engine_kwargs={"connect_args": spec.get("connect_args", {})}
    )


def _worker(spec: dict[str, Any], trials: int, ready: Any, start: Any, done: Any) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name="bench", storage=_storage(spec), sampler=optuna.samplers.RandomSampler()
    )
    ready.put(True)
    start.wait()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=trials)
    done.put(time.monotonic())


def per_trial_ms(spec: dict[str, Any], trials: int) -> float:
    """Wall time per trial with `WORKERS` workers on one fresh study, in milliseconds."""
    import optuna

    optuna.create_study(study_name="bench", storage=_storage(spec))
    ctx = multiprocessing.get_context("spawn")
    ready, start, done = ctx.Queue(), ctx.Event(), ctx.Queue()
    args = (spec, trials, ready, start, done)
    procs = [ctx.Process(target=_worker, args=args) for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    for _ in procs:  # the workers import and load the study before the clock starts
        ready.get(timeout=300)
    began = time.monotonic()
    start.set()
    ended = max(done.get(timeout=1800) for _ in procs)
    for proc in procs:
        proc.join()
    return (ended - began) * 1000 / (trials * WORKERS)


class DelayingTCPProxy:
    """Forwards TCP connections on 127.0.0.1 to ``port``, holding each chunk ``delay``
    seconds in each direction (this kernel has no netem)."""

    def __init__(self, port: int, delay: float) -> None:
        self.upstream, self.delay = port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                time.sleep(self.delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=25, help="trials per worker")
    args = parser.parse_args()

    from mlbackup.testing.fault_proxy import FaultProxy
    from mlbackup.testing.postgres_server import PostgresServer
    from mlbackup.testing.s3_server import MotoS3Server

    rows: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory() as work, MotoS3Server() as s3, PostgresServer() as pg:
        s3.client().create_bucket(Bucket="bench")

        def journal(endpoint: str, prefix: str) -> dict[str, Any]:
            options = s3.storage_options(endpoint_url=endpoint)
            return {"kind": "journal", "url": f"s3://bench/{prefix}", "options": options}

        def postgres(port: int, database: str) -> dict[str, Any]:
            pg.create_database(database)
            url = pg.database_url(database).replace(f":{pg.port}/", f":{port}/")
            return {"kind": "rdb", "url": url}

        mount = Path(work) / "content" / "drive" / "MyDrive"
        mount.mkdir(parents=True)
        sqlite = {
            "kind": "rdb",
            "url": f"sqlite:///{mount}/study.db",
            "connect_args": {"timeout": 120},
        }
        runs: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[], dict[str, Any]]] | None]
        with FaultProxy(s3.endpoint_url) as proxy:
            delayed_pg = DelayingTCPProxy(pg.port, DELAY)
            runs = {
                "bucket journal (S3, moto)": (
                    lambda: journal(s3.endpoint_url, "loopback"),
                    lambda: journal(proxy.endpoint_url, "delayed"),
                ),
                "PostgreSQL (RDB storage)": (
                    lambda: postgres(pg.port, "loopback"),
                    lambda: postgres(delayed_pg.port, "delayed"),
                ),
            }
            rows["SQLite on the Drive mount path"] = {
                "loopback": per_trial_ms(sqlite, args.trials),
                "10 ms each way": None,
            }
            for label, (near, far) in runs.items():
                proxy.latency = 0.0
                loopback = per_trial_ms(near(), args.trials)
                proxy.latency = 2 * DELAY  # the proxy waits once a request: both ways at once
                delayed = per_trial_ms(far(), args.trials)
                rows[label] = {"loopback": loopback, "10 ms each way": delayed}
    (HERE / "study_storage.json").write_text(json.dumps(rows, indent=2) + "\n")
    base = rows["SQLite on the Drive mount path"]["loopback"] or 1.0
    pg_rows = rows["PostgreSQL (RDB storage)"]
    print(f"{WORKERS} workers, {args.trials} trials each; milliseconds per trial (wall)\n")
    print("| storage | loopback | x SQLite | x PostgreSQL | 10 ms each way | x PostgreSQL |")
    print("|---|---|---|---|---|---|")
    for label, row in rows.items():
        near, far = row["loopback"], row["10 ms each way"]
        assert near is not None
        pg_far = pg_rows["10 ms each way"]
        far_ratio = f"{far / pg_far:.2f}" if far and pg_far else "-"
        print(
            f"| {label} | {near:.1f} | {near / base:.2f} | {near / pg_rows['loopback']:.2f} | "
            f"{f'{far:.1f}' if far else '-'} | {far_ratio} |"
        )


if __name__ == "__main__":
    main()
