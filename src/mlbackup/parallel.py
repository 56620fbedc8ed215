"""Run one function over many items in worker threads: how transfers go in parallel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["map_in_threads"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def map_in_threads(
    fn: Callable[[_T], _R], items: Sequence[_T], workers: int, name: str
) -> list[_R]:
    """``[fn(item) for item in items]``, with up to ``workers`` running at once (in this
    thread when there is only one). The first exception cancels what has not started yet and
    is raised once the running calls have ended."""
    workers = min(workers, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
