"""Progress reports for long transfers.

Backup and restore calls accept ``progress=callback``; the callback receives a
:class:`ProgressEvent` after each file. It runs on a worker thread: keep it quick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ProgressCallback", "ProgressEvent"]


@dataclass(frozen=True)
class ProgressEvent:
    """Where a transfer stands after one more file.

    Attributes:
        name: the backup's name.
        path: the file just handled (relative to the item; "" for a single file).
        files_done: files handled so far (sent, restored, or found unchanged).
        files_total: files to handle in all.
        bytes_done: bytes of those files.
        bytes_total: bytes of all files.
    """

    name: str
    path: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ProgressCallback = Callable[[ProgressEvent], None]
