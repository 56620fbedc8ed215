"""Background backups that never get in the training loop's way.

[`BackgroundBackup`][mlbackup.BackgroundBackup] takes submissions from the training loop and returns
at once; one worker thread sends them. Submissions of the same name coalesce, latest wins: if
``study.db`` is submitted ten times while an upload runs, the next upload sends its newest state
once, and all ten futures get that result. A failure is recorded, logged once per kind, shown by
[`BackgroundBackup.status()`][mlbackup.BackgroundBackup.status], and raised by
[`flush()`][mlbackup.BackgroundBackup.flush] and [`close()`][mlbackup.BackgroundBackup.close],
never by [`submit()`][mlbackup.BackgroundBackup.submit] unless ``strict=True``. Pending work is
flushed at interpreter exit and, best effort, on SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from .api import PathArg, TargetArg, open_target_for
from .closing import ClosingContext
from .config import BackupConfig, load_config
from .engine import run_backup
from .errors import BackendUnavailableError, MLBackupError, SourceMissingError
from .paths import default_name
from .results import BackupResult, BackupStatus
from .target import BackupTarget

__all__ = ["BackgroundBackup", "BackgroundBackupError", "NameStatus"]

log = logging.getLogger("mlbackup")


class BackgroundBackupError(MLBackupError):
    """One or more background backups failed; ``.failures`` maps each name to its error."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = dict(failures)
        lines = "\n".join(f"  - {name}: {exc}" for name, exc in self.failures.items())
        super().__init__(f"{len(self.failures)} background backup(s) failed:\n{lines}")


@dataclass
class NameStatus:
    """Where one name stands in a [`BackgroundBackup`][mlbackup.BackgroundBackup].

    Attributes:
        name: the backup's name.
        last_version: the newest version committed by this session (None if none yet).
        last_committed_at: when it was committed (``time.time()``), else None.
        pending: a submission is waiting or being sent.
        behind_seconds: how long the oldest submission not yet committed has waited (0 if none).
        last_error: the last failure's message, cleared by the next success.
        failures: failed attempts so far.
        staged: the last commit is only staged on this machine (a mounted store), not
            yet confirmed by the store.
    """

    name: str
    last_version: int | None = None
    last_committed_at: float | None = None
    pending: bool = False
    behind_seconds: float = 0.0
    last_error: str | None = None
    failures: int = 0
    staged: bool = False


@dataclass
class _Job:
    name: str
    path: Path
    futures: list[Future[BackupResult]]
    since: float
    missing_ok: bool = False
    prepare: Callable[[], object] | None = None


class BackgroundBackup(ClosingContext):
    """Back paths up from a worker thread; `submit()` returns immediately.

    Args:
        target: a [`BackupTarget`][mlbackup.BackupTarget], a URL or folder; default: the configured
            target.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        keep_last: versions kept per name; default: the configured value.
        max_pending: how many distinct names may wait at once; `submit()` blocks beyond
            that (coalescing keeps one entry per name, so this bounds memory, not updates).
        strict: raise a recorded failure from the next `submit()`.
        retries: how often a transient failure (`BackendUnavailableError`) is retried,
            with exponential backoff from ``backoff`` seconds.
        backoff: the first retry's delay.
        exit_timeout: at interpreter exit (or SIGTERM), how long to wait for pending backups;
            then each name is logged as committed or NOT committed, with the version that is
            safe on the target instead.

    Examples:
        >>> import pathlib, tempfile
        >>> db = pathlib.Path(tempfile.mkdtemp()) / "metrics.txt"
        >>> with BackgroundBackup(tempfile.mkdtemp()) as bg:
        ...     for step in range(3):
        ...         _ = db.write_text(f"step {step}")
        ...         future = bg.submit(db)
        ...     results = bg.flush()
        >>> future.result().status.value in ("copied", "unchanged")
        True
    """

    def __init__(
        self,
        target: TargetArg = None,
        *,
        config: BackupConfig | None = None,
        keep_last: int | None = None,
        max_pending: int = 64,
        strict: bool = False,
        retries: int = 3,
        backoff: float = 0.5,
        exit_timeout: float = 60.0,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._config = config or load_config()
        # The store is not asked here: a training script's constructor must not wait on the
        # network. The first backup reaches it, and an outage shows in status().
        self._target, self._owns_target = open_target_for(target, self._config, reach=False)
        self._keep_last = keep_last if keep_last is not None else self._config.keep_last
        self._max_pending = max_pending
        self._strict = strict
        self._retries = retries
        self._backoff = backoff
        self.exit_timeout = exit_timeout
        self._lock = threading.Condition()
        self._queue: OrderedDict[str, _Job] = OrderedDict()
        self._running: _Job | None = None
        self._status: dict[str, NameStatus] = {}
        self._waiting_since: dict[str, float] = {}  # oldest uncommitted submission per name
        self._failures: dict[str, BaseException] = {}
        self._warned: set[type[BaseException]] = set()
        self._closed = False
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="mlbackup-background", daemon=True)
        self._worker.start()
        _register_exit_flush(self)

    @property
    def target(self) -> BackupTarget:
        """The target backups go to."""
        return self._target

    def submit(
        self,
        path: PathArg,
        name: str | None = None,
        *,
        missing_ok: bool = False,
        prepare: Callable[[], object] | None = None,
    ) -> Future[BackupResult]:
        """Queue a backup of ``path``; returns a future of its
        [`BackupResult`][mlbackup.BackupResult].

        Returns in microseconds unless ``max_pending`` distinct names are already waiting.
        If ``name`` is already queued, this submission joins it and the newest state is sent.
        With ``missing_ok``, a path gone before its turn (a checkpoint the trainer rotated away)
        resolves as ``SKIPPED_MISSING`` instead of failing. ``prepare``, if given, runs in the
        worker just before the backup (it writes ``path``: a database snapshot, say), so the
        newest submission's runs and an older one's never does; its failure fails the backup.
        """
        source = Path(path)
        backup_name = name if name is not None else default_name(source, self._config.source_root)
        future: Future[BackupResult] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("this BackgroundBackup is closed")
            if self._strict and self._failures:
                raise BackgroundBackupError(self._failures)
            job = self._queue.get(backup_name)
            if job is None:
                while len(self._queue) >= self._max_pending:
                    self._lock.wait()
                job = _Job(backup_name, source, [], time.time())
                self._queue[backup_name] = job
            job.path = source
            job.missing_ok = missing_ok
            job.prepare = prepare
            job.futures.append(future)
            status = self._status.setdefault(backup_name, NameStatus(backup_name))
            status.pending = True
            self._waiting_since.setdefault(backup_name, job.since)
            self._lock.notify_all()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stop.is_set():
                    self._lock.wait()
                if not self._queue:
                    return
                _, job = self._queue.popitem(last=False)
                self._running = job
                self._lock.notify_all()
            self._run(job)
            with self._lock:
                self._running = None
                self._lock.notify_all()

    def _run(self, job: _Job) -> None:
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                if job.prepare is not None:  # a snapshot's source may be away a moment too
                    job.prepare()
                self._target.reach()
                result = run_backup(
                    self._target,
                    job.path,
                    job.name,
                    keep_last=self._keep_last,
                    include_credentials=self._config.include_credential_files,
                )
            except SourceMissingError as exc:
                if job.missing_ok and not job.path.exists():
                    self._skipped(job, BackupStatus.SKIPPED_MISSING, str(exc))
                else:
                    self._failed(job, exc)
                return
            except BackendUnavailableError as exc:
                if attempt == self._retries or self._stop.wait(delay):
                    self._failed(job, exc)
                    return
                delay *= 2
            except Exception as exc:  # noqa: BLE001 - recorded and raised at flush, by design
                self._failed(job, exc)
                return
            else:
                self._succeeded(job, result)
                return

    def _succeeded(self, job: _Job, result: BackupResult) -> None:
        with self._lock:
            status = self._status[job.name]
            status.last_version = result.version
            status.staged = result.staged
            status.last_committed_at = time.time()
            # Committed without some files (unreadable): not silent, and not cleared as a success.
            status.last_error = (
                f"partial: {'; '.join(result.failed_entries)}" if result.partial else None
            )
            self._failures.pop(job.name, None)
            self._settle(status, job)
        for future in job.futures:
            future.set_result(result)

    def _skipped(self, job: _Job, status: BackupStatus, reason: str) -> None:
        result = BackupResult(status, name=job.name, source=job.path, reason=reason)
        with self._lock:
            self._settle(self._status[job.name], job)
        for future in job.futures:
            future.set_result(result)

    def _failed(self, job: _Job, exc: BaseException) -> None:
        with self._lock:
            status = self._status[job.name]
            status.failures += 1
            status.last_error = str(exc)
            self._failures[job.name] = exc
            first_of_kind = type(exc) not in self._warned
            self._warned.add(type(exc))
            self._settle(status, job)
        if first_of_kind:
            log.warning("background backup of %s failed: %s", job.name, exc)
        else:
            log.debug("background backup of %s failed again: %s", job.name, exc)
        for future in job.futures:
            future.set_exception(exc)

    def _settle(self, status: NameStatus, job: _Job) -> None:
        queued = self._queue.get(job.name)
        status.pending = queued is not None
        if queued is not None:
            self._waiting_since[job.name] = queued.since
        else:
            self._waiting_since.pop(job.name, None)

    def status(self) -> dict[str, NameStatus]:
        """Per name: the last committed version, when, how far behind, the last error."""
        now = time.time()
        with self._lock:
            return {
                name: replace(s, behind_seconds=now - self._waiting_since.get(name, now))
                for name, s in self._status.items()
            }

    def flush(self, timeout: float | None = None) -> dict[str, NameStatus]:
        """Wait until everything submitted so far is sent (or failed).

        Returns:
            `status()` once idle.

        Raises:
            TimeoutError: work is still pending after ``timeout`` seconds.
            BackgroundBackupError: some backups failed since the last flush; cleared by raising.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queue or self._running is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"background backups still pending after {timeout} s: "
                        f"{', '.join(self._pending_names())}"
                    )
                self._lock.wait(remaining)
            failures, self._failures = self._failures, {}
        if failures:
            raise BackgroundBackupError(failures)
        return self.status()

    def _pending_names(self) -> list[str]:
        names = list(self._queue)
        if self._running is not None:
            names.insert(0, self._running.name)
        return names

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the worker and release the target. Raises as `flush()` does."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        flushed = False
        try:
            self.flush(timeout)
            flushed = True
        finally:
            self._stop.set()
            with self._lock:
                self._lock.notify_all()
            # A worker stuck on the target after a flush timeout is not waited for twice.
            self._worker.join(timeout if flushed else 0)
            _unregister_exit_flush(self)
            if self._owns_target:
                self._target.close()

    def __repr__(self) -> str:
        return f"BackgroundBackup({self._target.url!r}, pending={len(self._queue)})"


# -- exit and SIGTERM flushing --------------------------------------------------------------

_live: weakref.WeakSet[BackgroundBackup] = weakref.WeakSet()
_previous_sigterm: Any = None
_hook_lock = threading.Lock()


def _flush_all_at_exit() -> None:
    for bg in list(_live):
        # At exit a failure is not raised: each name is reported below instead.
        with contextlib.suppress(Exception):
            bg.close(timeout=bg.exit_timeout)
        _report_at_exit(bg)


def _report_at_exit(bg: BackgroundBackup) -> None:
    """One line per name: committed, or not and why (and which version is safe instead)."""
    for name, status in sorted(bg.status().items()):
        last = f"version {status.last_version}" if status.last_version else "none from this run"
        if status.pending:
            log.error(
                "at exit: %s NOT committed: still being sent to %s after %.0f s; the last "
                "committed version is %s (flush() before exiting, or raise exit_timeout)",
                name, bg.target.url, bg.exit_timeout, last,
            )  # fmt: skip
        elif status.last_error is not None:
            log.error(
                "at exit: %s NOT committed: %s; the last committed version is %s",
                name, status.last_error, last,
            )  # fmt: skip
        else:
            log.info("at exit: %s committed as %s on %s", name, last, bg.target.url)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    log.warning("SIGTERM: flushing pending background backups before exiting")
    _flush_all_at_exit()
    signal.signal(signal.SIGTERM, _previous_sigterm)
    os.kill(os.getpid(), signal.SIGTERM)


def _register_exit_flush(bg: BackgroundBackup) -> None:
    global _previous_sigterm
    with _hook_lock:
        if not _live:
            atexit.register(_flush_all_at_exit)
            # Only take SIGTERM over from the default action, and only where we may.
            in_main = threading.current_thread() is threading.main_thread()
            if in_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        _live.add(bg)


def _unregister_exit_flush(bg: BackgroundBackup) -> None:
    global _previous_sigterm
    with _hook_lock:
        _live.discard(bg)
        if not _live:
            atexit.unregister(_flush_all_at_exit)
            if _previous_sigterm is not None and threading.current_thread() is (
                threading.main_thread()
            ):
                signal.signal(signal.SIGTERM, _previous_sigterm)
                _previous_sigterm = None
