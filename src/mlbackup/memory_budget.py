"""A cap on the bytes that upload workers hold in memory at once.

Bucket backends send small files from memory and large ones in parts; with eight workers and
16 MiB parts (each copied a few times on its way through the client library) memory would grow
to hundreds of MB. Each worker takes its buffer's size from one shared budget before reading and
gives it back once the request is done, so memory stays near the budget whatever the number of
workers. A buffer larger than the whole budget still goes through, alone. Parts are read into
buffers the budget lends and takes back (`read_parts_reusing()`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SourceError
from .hashing import Hasher
from .progress import byte_reporter

__all__ = ["MemoryBudget", "read_parts_reusing"]


class MemoryBudget:
    """At most ``limit`` bytes taken at once (a single larger request waits until it is alone)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0
        self._peak = 0
        self._free: list[bytearray] = []  # buffers lent before, to lend again
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

    @contextmanager
    def lend(self, size: int) -> Iterator[bytearray]:
        """Hold ``size`` bytes of the budget and lend a buffer of that size for the block.
        Buffers are kept (at most the budget's worth) and lent again, so parts do not churn
        the allocator."""
        with self.hold(size):
            with self._changed:
                buffer = next((b for b in self._free if len(b) == size), None)
                if buffer is not None:
                    self._free.remove(buffer)
            if buffer is None:
                buffer = bytearray(size)
            try:
                yield buffer
            finally:
                with self._changed:
                    if len(buffer) == size and len(self._free) * size < self.limit:
                        self._free.append(buffer)

    @property
    def peak(self) -> int:
        """The most bytes held at once so far."""
        return self._peak


def read_parts_reusing(
    budget: MemoryBudget, path: Path, part_size: int, hasher: Hasher, *, start: int = 0
) -> Iterator[bytearray]:
    """Yield the file at ``path`` from ``start`` in parts of ``part_size`` bytes, each read
    once it fits in ``budget``, into a buffer the budget lends and takes back when the next
    part is asked for, feeding each to ``hasher``. The consumer must be done with a part
    before asking for the next one: its bytes are then overwritten.

    Reusing buffers keeps the process's memory flat: fresh multi-MiB buffers, freed from
    several threads, fragment the allocator's per-thread arenas (about 100 MB more resident
    memory over a tree of large files).
    """
    sent = byte_reporter()
    try:
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                with budget.lend(part_size) as buffer:
                    n = f.readinto(buffer)
                    if not n:
                        return
                    if n < part_size:
                        del buffer[n:]  # the last part (clients take bytes, not views)
                    hasher.update(buffer)
                    yield buffer
                if sent is not None:  # the caller asks for the next part: this one is sent
                    sent(n)
    except OSError as exc:
        raise SourceError(f"could not read {path}: {exc.strerror or exc}") from exc
