"""One writer per backup name on this machine at a time.

Two processes backing the same name up to the same target at once would overwrite each other's
plain files between one's commit and the other's. Each backup therefore holds an exclusive
``flock`` on a lock file keyed by target URL and name, in the user's cache folder. The kernel
drops the lock when its holder dies (even by kill -9), so a crash never leaves a stale lock.
Writers on *different* machines are not serialized by this; see docs/architecture.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["name_lock"]

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "MLBACKUP_LOCK_DIR"


def _lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or _user_cache_dir()) / "locks"


def _user_cache_dir() -> Path:
    if sys.platform.startswith("linux"):
        # platformdirs' answer on Linux, without its import (4 ms of every command).
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        return Path(xdg or os.path.expanduser("~/.cache")) / "mlbackup"
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlbackup"))


@contextmanager
def name_lock(target_url: str, name: str) -> Iterator[None]:
    """Hold the machine-wide lock of ``name`` on ``target_url`` (waiting for another holder)."""
    folder = _lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{target_url}\0{name}".encode()).hexdigest()[:32]
    fd = os.open(folder / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another backup of %r to %s to finish", name, target_url)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
