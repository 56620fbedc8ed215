"""Backups of one name on this machine queue, one after the other.

Correctness does not depend on it: versions are immutable and commits cannot collide (see
`mlbackup.commit`), so writers on different machines, which no lock here can see, are
safe too. Queueing saves work: the second writer of a name starts from the first one's
version and sends only what differs. Each backup holds an exclusive ``flock`` on a lock file
keyed by what the target *is* (``Backend.lock_key``: the resolved folder, however it was
spelled) and the name, in the user's cache folder (``$MLBACKUP_LOCK_DIR`` overrides it). The
kernel drops the lock when its holder dies (even by kill -9), so a crash never leaves a stale
lock.
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
def name_lock(target_key: str, name: str) -> Iterator[None]:
    """Hold the machine-wide lock of ``name`` on the target ``target_key`` (waiting for
    another holder)."""
    folder = _lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{target_key}\0{name}".encode()).hexdigest()[:32]
    fd = os.open(folder / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another backup of %r to %s to finish", name, target_key)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
