"""Temp files a killed run left in a local target's ``.mlbackup/tmp``.

A write goes to a temp file there and is renamed into place; a process killed mid-write (or a
Colab session that dropped) leaves the temp file behind, as big as the file it was copying.
Nothing refers to it, but on a Drive mount it would take quota forever. A live write touches
its temp file with every chunk, so one untouched for `STALE_AFTER_SECONDS` is a leftover;
other processes writing to the same target right now are never disturbed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

__all__ = ["STALE_AFTER_SECONDS", "remove_stale_temp_files"]

log = logging.getLogger("mlbackup.local")

STALE_AFTER_SECONDS = 24 * 3600


def remove_stale_temp_files(tmp_root: str, now: float | None = None) -> tuple[int, int]:
    """Remove the files under ``tmp_root`` (and its worker folders) untouched for a day;
    returns ``(files, bytes)`` removed. Best effort: a file it cannot remove stays."""
    cutoff = (time.time() if now is None else now) - STALE_AFTER_SECONDS
    removed = freed = 0
    for folder in _folders(tmp_root):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and st.st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed, freed = removed + 1, freed + st.st_size
    if removed:
        log.info(
            "removed %d temp files (%d bytes) that interrupted runs left in %s",
            removed, freed, tmp_root,
        )  # fmt: skip
    return removed, freed


def _folders(tmp_root: str) -> list[str]:
    folders = [tmp_root]
    with contextlib.suppress(OSError):
        folders += [e.path for e in os.scandir(tmp_root) if e.is_dir(follow_symlinks=False)]
    return folders
