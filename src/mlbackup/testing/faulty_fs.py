"""A fault-injecting wrapper around any fsspec filesystem, for local and mounted targets.

The ``file`` and ``drive`` backends do all their I/O through an fsspec filesystem, so wrapping
it reaches the real backend code with the faults a disk or a FUSE mount produces::

    target, faults = faulty_target(tmp_path / "backups")
    faults.fail("write", errno.ENOSPC, on_call=2)     # the 2nd write() to any file: disk full
    with pytest.raises(TargetError, match="disk is full"):
        backup(model, target=target)

Faults, each on the k-th call (and the ``times - 1`` calls after it) of one method, optionally
only for paths containing a given text:

- `FaultyFS.fail()`: raise ``OSError`` with a chosen errno (``EIO``, ``ENOSPC``,
  ``EACCES``, ``ENOTCONN``, ``ETIMEDOUT``, ``EDQUOT``, ...); `FaultyFS.fail_randomly()`
  does so with a seeded probability;
- `FaultyFS.slow()`: add a delay; `FaultyFS.hold()`: block until the test releases
  the hold (to test that nothing waits on the target, or to look at the disk mid-backup,
  without timing anything);
- `FaultyFS.truncate_writes()`: a file opened for writing keeps only its first N bytes,
  silently, as a disk that lost data would.

``write`` names the ``write()`` method of files the filesystem opened; every other name is a
filesystem method (``open``, ``mv``, ``link``, ``info``, ``ls``, ``rm_file``, ``makedirs``,
``cat_file``, ...). Every call is logged (`FaultyFS.log`) and counted (`count()`).
"""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from ..retry import RetryPolicy
from ..target import BackupTarget, open_target

__all__ = ["FaultyFS", "FsCall", "Hold", "faulty_target"]


#: The calls of ``open`` that open a file for writing, counted apart for truncation faults.
_OPEN_FOR_WRITING = "open:write"


class Hold:
    """Calls held by `FaultyFS.hold()`: `arrived` is set when the first one is
    waiting; `release()` lets them all go."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def _wait(self) -> None:
        self.arrived.set()
        self._released.wait()


@dataclass
class _Fault:
    method: str
    on_call: int
    times: int
    path_contains: str
    errno: int | None = None
    probability: float | None = None
    delay: float = 0.0
    hold: Hold | None = None
    keep_bytes: int | None = None
    seen: int = field(default=0, init=False)

    def due(self, method: str, path: str, rng: random.Random) -> bool:
        if method != self.method or self.path_contains not in path:
            return False
        self.seen += 1
        if self.probability is not None:
            return rng.random() < self.probability
        return self.on_call <= self.seen < self.on_call + self.times


@dataclass(frozen=True)
class FsCall:
    """One call the wrapper saw: the method, its path, and the fault applied (or None)."""

    method: str
    path: str
    fault: str | None


class FaultyFS:
    """Wraps the fsspec filesystem ``fs``; calls pass through until a fault is armed.

    Args:
        fs: the filesystem to wrap (its other attributes stay reachable).
        seed: seeds `fail_randomly()`, so a run is reproducible.
    """

    def __init__(self, fs: Any, *, seed: int = 0) -> None:
        self.fs = fs
        self.log: list[FsCall] = []
        self._faults: list[_Fault] = []
        self._rng = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        self._lock = threading.Lock()

    # -- arming -----------------------------------------------------------------------------

    def fail(
        self, method: str, code: int, *, on_call: int = 1, times: int = 1, path_contains: str = ""
    ) -> FaultyFS:
        """Raise ``OSError(code)`` from the ``on_call``-th call of ``method`` (and ``times - 1``
        more)."""
        return self._arm(_Fault(method, on_call, times, path_contains, errno=code))

    def fail_randomly(
        self, method: str, code: int, *, probability: float, path_contains: str = ""
    ) -> FaultyFS:
        """Raise ``OSError(code)`` from each call of ``method`` with ``probability`` (seeded)."""
        return self._arm(_Fault(method, 1, 0, path_contains, errno=code, probability=probability))

    def slow(
        self,
        method: str,
        seconds: float,
        *,
        on_call: int = 1,
        times: int = 1_000_000,
        path_contains: str = "",
    ) -> FaultyFS:
        """Delay calls of ``method`` by ``seconds`` (every call from ``on_call`` by default)."""
        return self._arm(_Fault(method, on_call, times, path_contains, delay=seconds))

    def hold(
        self, method: str, *, on_call: int = 1, times: int = 1_000_000, path_contains: str = ""
    ) -> Hold:
        """Block calls of ``method`` until the returned `Hold` is released."""
        hold = Hold()
        self._arm(_Fault(method, on_call, times, path_contains, hold=hold))
        return hold

    def truncate_writes(
        self,
        keep_bytes: int,
        *,
        on_call: int = 1,
        times: int = 1,
        path_contains: str = "",
        method: str = "open",
    ) -> FaultyFS:
        """Files opened for writing by the ``on_call``-th ``method`` call that writes (``open``
        for writing: reads are not counted; or ``open_unnamed`` for the local folder's
        objects) keep only ``keep_bytes``."""
        counted = _OPEN_FOR_WRITING if method == "open" else method
        return self._arm(_Fault(counted, on_call, times, path_contains, keep_bytes=keep_bytes))

    def clear(self) -> None:
        """Disarm every fault (the log is kept)."""
        with self._lock:
            self._faults.clear()

    def count(self, method: str, *, faulted: bool | None = None) -> int:
        """How many calls of ``method`` were seen (only faulted or clean ones, if asked)."""
        with self._lock:
            return sum(
                1
                for call in self.log
                if call.method == method
                and (faulted is None or (call.fault is not None) == faulted)
            )

    def _arm(self, fault: _Fault) -> FaultyFS:
        with self._lock:
            self._faults.append(fault)
        return self

    # -- applying ---------------------------------------------------------------------------

    def _due(self, method: str, path: str) -> list[_Fault]:
        with self._lock:
            due = [f for f in self._faults if f.due(method, path, self._rng)]
            label = ",".join(_label(f) for f in due) or None
            self.log.append(FsCall(method, path, label))
            return due

    def _apply(self, method: str, path: str) -> int | None:
        """Apply the faults due for this call; the bytes to keep if writes are truncated."""
        keep: int | None = None
        for fault in self._due(method, path):
            if fault.hold is not None:
                fault.hold._wait()
            if fault.delay:
                time.sleep(fault.delay)  # the fault itself: a slow disk, not a synchronisation
            if fault.errno is not None:
                raise OSError(fault.errno, os.strerror(fault.errno), path)
            if fault.keep_bytes is not None:
                keep = fault.keep_bytes
        return keep

    def __getattr__(self, name: str) -> Any:
        if name == "fs":
            raise AttributeError(name)
        attr = getattr(self.fs, name)
        if name.startswith("_") or not callable(attr):
            return attr
        return self._wrapped(name, attr)

    def _wrapped(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            path = str(args[0]) if args else ""
            keep = self._apply(name, path)
            result = method(*args, **kwargs)
            if name == "open_unnamed":  # always open for writing
                return _FaultyFile(result, self, path, keep)
            if name == "open":
                mode = args[1] if len(args) > 1 else kwargs.get("mode", "rb")
                if "w" in mode or "a" in mode:
                    truncated = self._apply(_OPEN_FOR_WRITING, path)
                    return _FaultyFile(result, self, path, keep if truncated is None else truncated)
            return result

        return call

    def __repr__(self) -> str:
        return f"FaultyFS({self.fs!r})"


class _FaultyFile:
    """A file opened for writing: ``write`` faults apply, and truncation if armed."""

    def __init__(self, inner: Any, owner: FaultyFS, path: str, keep: int | None) -> None:
        self._inner = inner
        self._owner = owner
        self._path = path
        self._room = keep

    def write(self, data: bytes) -> int:
        self._owner._apply("write", self._path)
        if self._room is None:
            return int(self._inner.write(data))
        kept = bytes(data[: self._room])
        self._room -= len(kept)
        self._inner.write(kept)
        return len(data)  # the lie a failing disk tells

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


def _label(fault: _Fault) -> str:
    if fault.errno is not None:
        return errno.errorcode.get(fault.errno, str(fault.errno))
    if fault.hold is not None:
        return "held"
    if fault.keep_bytes is not None:
        return f"truncated to {fault.keep_bytes}"
    return f"slow {fault.delay}s"


def faulty_target(
    url: str | PathLike[str], *, retry: RetryPolicy | None = None, seed: int = 0, **options: Any
) -> tuple[BackupTarget, FaultyFS]:
    """Open ``url`` like [`open_target()`][mlbackup.open_target], with its filesystem wrapped in a
    `FaultyFS` (for backends built on fsspec: ``file``, ``drive``).

    Args:
        retry: replaces the backend's retry policy (e.g. with short waits for a test).
        seed: seeds `FaultyFS.fail_randomly()`.
    """
    target = open_target(url, **options)
    backend = target.backend
    inner = getattr(backend, "inner", backend)
    if not hasattr(inner, "fs"):
        target.close()
        raise TypeError(f"{target.url} is not served by an fsspec filesystem; use FaultProxy")
    faults = FaultyFS(inner.fs, seed=seed)
    inner.fs = faults
    if retry is not None:
        backend.policy = retry  # type: ignore[attr-defined]
    return target, faults
