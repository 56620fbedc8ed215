"""Run one function over many items in worker threads: how transfers go in parallel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["map_in_threads"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def map_in_threads(
    fn: Callable[[_T], _R],
    items: Sequence[_T],
    workers: int,
    name: str,
    *,
    size_of: Callable[[_T], int] | None = None,
) -> list[_R]:
    """``[fn(item) for item in items]``, with up to ``workers`` running at once (in this
    thread when there is only one). The first exception cancels what has not started yet and
    is raised once the running calls have ended.

    With ``size_of``, the largest items start first (the results keep the items' order): a
    large file started last is the run's tail, one worker busy while the others idle; started
    first, the small ones fill the other workers meanwhile.
    """
    order = list(range(len(items)))
    if size_of is not None:
        order.sort(key=lambda i: size_of(items[i]), reverse=True)  # stable: ties keep order
    results: list[_R] = [None] * len(items)  # type: ignore[list-item]  # each set below
    workers = min(workers, len(items))
    if workers <= 1:
        for i in order:
            results[i] = fn(items[i])
        return results
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        futures = {pool.submit(fn, items[i]): i for i in order}
        try:
            # Not in the order they started: the largest item, first, may run long, and a
            # failure of a small one must call off the rest at once.
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # raises the failure, if any
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        for future, i in futures.items():
            results[i] = future.result()
    return results
