"""Optuna workers in processes of their own, all on one study, for the tests of live studies."""

import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def study_workers(work: Callable, storage: str, count: int = 4) -> Iterator[None]:
    """Run ``work(storage, stop, ready)`` in ``count`` fresh processes (``spawn``: nothing of
    this process's threads comes along); enter once each has said ``ready``, and on the way
    out stop them and check that every one ended cleanly."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    readies = [ctx.Event() for _ in range(count)]
    procs = [ctx.Process(target=work, args=(storage, stop, ready)) for ready in readies]
    for proc in procs:
        proc.start()
    try:
        for ready in readies:
            assert ready.wait(120), "a worker did not start"
        yield
    finally:
        stop.set()
        for proc in procs:
            proc.join(120)
    assert [p.exitcode for p in procs] == [0] * count, "a worker failed (database is locked?)"


def backups_while_they_run(bg, path, name, finished, count=50):
    """Submit ``count`` background backups of ``path`` while the workers run, each with the
    number of trials ``finished(path)`` counted just before; returns ``(finished, future)``."""
    submitted = [(finished(path), bg.submit(path, name)) for _ in range(count)]
    bg.flush(timeout=300)
    return submitted


def each_version_holds_what_was_finished(submitted, finished_in_version):
    """Every committed version holds at least the trials finished when its backup was
    submitted; ``finished_in_version(version)`` (restore, check, count) runs once a version.
    Returns the versions checked."""
    checked = {}
    for finished, future in submitted:
        version = future.result().version
        if version not in checked:
            checked[version] = finished_in_version(version)
        assert checked[version] >= finished, f"version {version} lost finished trials"
    return checked
