"""Named points in the backup protocol where crash trials kill the process.

Set ``MLBACKUP_CRASH_AT=<point>[:<n>]`` in a child process and it sends itself SIGKILL the
``n``-th time (default 1st) it reaches ``<point>``. Unset, each call is one dictionary lookup.
The points are listed in `POINTS`; tests sweep all of them (see ``tests/test_crash.py``).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["POINTS", "RESTORE_POINTS", "crash_point"]

#: Every named point, in protocol order.
POINTS = (
    "after-part",  # one part of a multipart/resumable upload sent, the upload unfinished
    "after-put",  # one file's object stored, the rest not
    "before-commit",  # all objects stored, manifest not written
    "after-commit",  # manifest written, the browsable tree and retention not updated
    "during-browse",  # one browsable file updated, the others not
    "during-retention",  # an old manifest deleted, its objects not yet collected
)
#: The points of a restore (swept by ``tests/test_restore_crash.py``).
RESTORE_POINTS = (
    "restore-after-fetch",  # one file fetched into a temp file, the rest not
    "restore-after-place",  # one file renamed into place, the rest not
)

_ENV = "MLBACKUP_CRASH_AT"
_hits: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(point: str) -> None:
    """SIGKILL this process here if ``MLBACKUP_CRASH_AT`` names ``point`` and its count is due."""
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    name, _, count = wanted.partition(":")
    if name != point:
        return
    with _lock:
        _hits[point] = _hits.get(point, 0) + 1
        due = _hits[point] == int(count or 1)
    if due:
        os.kill(os.getpid(), signal.SIGKILL)
