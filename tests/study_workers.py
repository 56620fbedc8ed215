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
