"""The crash driver: run a backup in a child process and SIGKILL it at a chosen instant.

Instants (pick one):

- ``at_point``: a named point of the protocol (``"before-commit"``, ``"after-put:3"``, ...;
  see `mlbackup.crashpoints.POINTS`): the child kills itself there;
- ``after_progress``: after the child reported that many files sent;
- ``after_seconds``: at a time after the backup started (after the child's imports and the
  opening of the target; pick it with a seeded ``random.Random`` within the backup's duration);
- ``after_requests`` with ``proxy``: once the server has acted on the child's k-th request
  through a `FaultProxy`, before the child hears back.

Then check what a user would: every committed version restores byte for byte, and the next
backup finishes the job::

    outcome = run_backup_process(src, "s3://bucket/run", options, at_point="before-commit")
    assert outcome.killed
    target = open_target("s3://bucket/run", **options)
    assert target.versions("ckpt") == [1]          # the interrupted version never appears

Options must be picklable (they are passed to the child). The module also runs as a script,
``python -m mlbackup.testing.crash SPEC_JSON``, for a child of a program's own.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from os import PathLike
from typing import Any

from .fault_proxy import FaultProxy

__all__ = ["CrashOutcome", "run_backup_process"]


@dataclass(frozen=True)
class CrashOutcome:
    """How the child ended.

    Attributes:
        returncode: the child's exit status (``-9`` when killed).
        killed: it was SIGKILLed (else it finished before the instant came).
        files_sent: files it reported sent before it ended.
        finished: it printed its final line (the backup returned).
    """

    returncode: int
    killed: bool
    files_sent: int
    finished: bool


def run_backup_process(
    source: str | PathLike[str],
    url: str,
    options: dict[str, Any] | None = None,
    *,
    name: str = "ckpt",
    keep_last: int | None = None,
    at_point: str | None = None,
    after_progress: int | None = None,
    after_seconds: float | None = None,
    after_requests: int | None = None,
    proxy: FaultProxy | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> CrashOutcome:
    """Back ``source`` up to ``url`` as ``name`` in a child process, killed as asked."""
    if (after_requests is None) != (proxy is None):
        raise ValueError("after_requests and proxy go together")
    child_env = {**os.environ, **(env or {})}
    if at_point is not None:
        child_env["MLBACKUP_CRASH_AT"] = at_point
    spec: dict[str, Any] = {
        "source": str(source),
        "url": url,
        "options": options or {},
        "name": name,
        "keep_last": keep_last,
    }
    lines_from_child, lines_to_parent = _context().Pipe(duplex=False)
    proc = _context().Process(
        target=_forked_child, args=(spec, child_env, os.getcwd(), lines_to_parent), daemon=True
    )
    if proxy is not None and after_requests is not None:
        # Armed before the child starts, so the count is of the child's requests only.
        proxy.after_request(after_requests, lambda: _kill(proc))
    proc.start()
    lines_to_parent.close()  # the child holds the only writing end: its death ends the reading
    child = _Lines(lines_from_child, deadline=time.monotonic() + timeout)
    lines: list[str] = []
    if after_progress is not None:
        sent = 0
        while sent < after_progress and (line := child.readline()):
            lines.append(line)
            sent += line.startswith("sent ")
        _kill(proc)
    elif after_seconds is not None:
        while (line := child.readline()) and line != "ready":
            lines.append(line)
        proc.join(after_seconds)  # the kill instant is the experiment, not a synchronisation
        _kill(proc)
    while line := child.readline():
        lines.append(line)
    proc.join(max(0.0, child.deadline - time.monotonic()))
    if proc.exitcode is None:
        _kill(proc)
        proc.join()
        raise TimeoutError(f"the backup child ran past its {timeout} s")
    lines_from_child.close()
    finished = bool(lines) and lines[-1] == "done"
    sent = sum(1 for line in lines if line.startswith("sent "))
    returncode = proc.exitcode
    return CrashOutcome(returncode, returncode == -signal.SIGKILL, sent, finished)


#: Imported once into the fork server, so each child starts in milliseconds rather than paying
#: the cloud clients' imports (s3fs and gcsfs take 2 to 3 s here) on every trial. Each child is
#: still a process of its own, with its own memory, killed as any other.
_PRELOAD = [
    "mlbackup",
    "mlbackup.testing.crash",
    "mlbackup_local",
    "mlbackup_drive",
    "mlbackup_s3",
    "s3fs",
    "mlbackup_gcs",
    "gcsfs",
    "mlbackup_gdrive",
    "pydrive2.drive",
]


@functools.cache
def _context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)  # a module that is not installed is skipped
    return context


class _Lines:
    """The child's lines, read until it ends or the deadline passes."""

    def __init__(self, connection: Connection, deadline: float) -> None:
        self._connection = connection
        self.deadline = deadline

    def readline(self) -> str:
        """The next line, or ``""`` once the child has ended (or the deadline passed)."""
        try:
            if not self._connection.poll(max(0.0, self.deadline - time.monotonic())):
                return ""
            return self._connection.recv_bytes().decode()
        except (EOFError, OSError):
            return ""


def _kill(proc: multiprocessing.process.BaseProcess) -> None:
    # kill() signals unless an exit status was already read, and never reads one itself:
    # reading it here too (``exitcode``), from the proxy's thread, could race the main
    # thread's join for the one status the fork server sends.
    proc.kill()


def _forked_child(spec: dict[str, Any], env: dict[str, str], cwd: str, lines: Connection) -> None:
    # Forked from a server started earlier: take the environment and folder of this trial.
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    _child(spec, lambda line: lines.send_bytes(line.encode()))


def _child(spec: dict[str, Any], emit: Callable[[str], None]) -> None:
    from mlbackup import backup, open_target
    from mlbackup.progress import ProgressEvent

    def progress(event: ProgressEvent) -> None:
        emit(f"sent {event.path}")

    target = open_target(spec["url"], **spec["options"])
    emit("ready")
    backup(
        spec["source"],
        target=target,
        name=spec["name"],
        keep_last=spec["keep_last"],
        progress=progress,
    )
    emit("done")


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]), lambda line: print(line, flush=True))
