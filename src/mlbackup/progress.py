"""Progress reports for long transfers.

Backup and restore calls accept ``progress=callback``; the callback receives a
[`ProgressEvent`][mlbackup.ProgressEvent] after each file, and while a large file is sent, after
each chunk the backend reports (see `byte_reporter()`). It runs on a worker thread: keep it quick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = [
    "ProgressCallback",
    "ProgressCounter",
    "ProgressEvent",
    "byte_reporter",
    "reporting_bytes_to",
]

ByteSink = Callable[[int], None]
_byte_sink: ContextVar[ByteSink | None] = ContextVar("mlbackup_byte_sink", default=None)


@dataclass(frozen=True)
class ProgressEvent:
    """Where a transfer stands after one more file.

    Attributes:
        name: the backup's name.
        path: the file just handled, or being sent (relative to the item; "" for a single
            file).
        files_done: files handled so far (sent, restored, or found unchanged).
        files_total: files to handle in all.
        bytes_done: bytes of those files, plus what was sent so far of files in flight.
        bytes_total: bytes of all files.
    """

    name: str
    path: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ProgressCallback = Callable[[ProgressEvent], None]


def byte_reporter() -> ByteSink | None:
    """For backends: call the returned function with each chunk's size once it is sent, so a
    progress bar moves during a large file. None when nobody watches; fetch it once per
    ``put_file``, from the thread that runs it.
    """
    return _byte_sink.get()


@contextmanager
def reporting_bytes_to(sink: ByteSink | None) -> Iterator[None]:
    """Route `byte_reporter()` calls made in this thread, inside the block, to ``sink``."""
    token = _byte_sink.set(sink)
    try:
        yield
    finally:
        _byte_sink.reset(token)


class ProgressCounter:
    """Counts one transfer's files and bytes from several threads and tells ``callback``."""

    def __init__(
        self, name: str, files_total: int, bytes_total: int, callback: ProgressCallback | None
    ) -> None:
        self.name = name
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.callback = callback
        self.files_done = 0
        self.bytes_done = 0
        self._lock = threading.Lock()

    def add(self, path: str, size: int, *, files: int = 1) -> None:
        """Count ``files`` more files done and ``size`` more bytes (negative: taken back)."""
        if self.callback is None:
            return
        with self._lock:
            self.files_done += files
            self.bytes_done += size
            event = ProgressEvent(
                self.name, path, self.files_done, self.files_total, self.bytes_done,
                self.bytes_total,
            )  # fmt: skip
        self.callback(event)

    @contextmanager
    def chunks(self, path: str) -> Iterator[list[int]]:
        """Around one file's transfer: chunks reported through `byte_reporter()` count as
        they go. Yields their running total; on an error they are taken back (not on an
        interrupt: a bar that jumps back to 0% at Ctrl-C would misstate how far it got), else
        the caller settles them: ``add(path, size - sent[0])``, or ``add(path, -sent[0],
        files=0)`` to send the file again from the start."""
        sent = [0]
        if self.callback is None:  # nobody watches: backends see no reporter
            yield sent
            return

        def sink(n: int) -> None:
            sent[0] += n
            self.add(path, n, files=0)

        try:
            with reporting_bytes_to(sink):
                yield sent
        except Exception:
            self.add(path, -sent[0], files=0)
            raise
