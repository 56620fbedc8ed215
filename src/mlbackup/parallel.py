"""Run one function over many items in worker threads: how transfers go in parallel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    size: Callable[[_T], int] | None = None,
) -> list[_R]:
    """``[fn(item) for item in items]``, with up to ``workers`` running at once (in this
    thread when there is only one). The first exception cancels what has not started yet and
    is raised once the running calls have ended.

    With ``size``, the largest items start first (the results keep the items' order): a
    large file started last is the run's tail, one worker busy while the others idle; started
    first, the small ones fill the other workers meanwhile.
    """
    order = list(range(len(items)))
    if size is not None:
        order.sort(key=lambda i: size(items[i]), reverse=True)  # stable: ties keep their order
    results: list[_R] = [None] * len(items)  # type: ignore[list-item]  # each set below
    workers = min(workers, len(items))
    if workers <= 1:
        for i in order:
            results[i] = fn(items[i])
        return results
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        futures = [(i, pool.submit(fn, items[i])) for i in order]
        try:
            for i, future in futures:
                results[i] = future.result()
        except BaseException:
            for _, future in futures:
                future.cancel()
            raise
    return results
