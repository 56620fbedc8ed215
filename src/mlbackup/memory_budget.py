"""A cap on the bytes that upload workers hold in memory at once.

Bucket backends send small files from memory and large ones in parts; with eight workers and
16 MiB parts (each copied a few times on its way through the client library) memory would grow
to hundreds of MB. Each worker takes its buffer's size from one shared budget before reading and
gives it back once the request is done, so memory stays near the budget whatever the number of
workers. A buffer larger than the whole budget still goes through, alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MemoryBudget", "parts_within"]


class MemoryBudget:
    """At most ``limit`` bytes taken at once (a single larger request waits until it is alone)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0
        self._peak = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Block until ``size`` bytes fit in the budget; hold them for the ``with`` block."""
        with self._changed:
            self._changed.wait_for(lambda: self._taken == 0 or self._taken + size <= self.limit)
            self._taken += size
            self._peak = max(self._peak, self._taken)
        try:
            yield
        finally:
            with self._changed:
                self._taken -= size
                self._changed.notify_all()

    @property
    def peak(self) -> int:
        """The most bytes held at once so far."""
        return self._peak


def parts_within(budget: MemoryBudget, parts: Iterator[bytes], part_size: int) -> Iterator[bytes]:
    """Yield from ``parts``, each read only once ``part_size`` bytes fit in ``budget`` and held
    until the next one is asked for. The consumer must drop its reference to a part before
    asking for the next one (``del part`` at the end of the loop body), or it holds two."""
    while True:
        with budget.hold(part_size):
            part = next(parts, None)
            if part is None:
                return
            yield part
            del part
