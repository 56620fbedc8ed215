"""Progress reports for long transfers.

Backup and restore calls accept ``progress=callback``; the callback receives a
:class:`ProgressEvent` after each file, and while a large file is sent, after each chunk the
backend reports (see :func:`byte_reporter`). It runs on a worker thread: keep it quick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["ProgressCallback", "ProgressEvent", "byte_reporter", "reporting_bytes_to"]

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
    """Route :func:`byte_reporter` calls made in this thread, inside the block, to ``sink``."""
    token = _byte_sink.set(sink)
    try:
        yield
    finally:
        _byte_sink.reset(token)
