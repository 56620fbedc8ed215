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

Options must be JSON-serialisable (they are passed to the child on its command line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
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
    started: list[subprocess.Popen[str]] = []
    if proxy is not None and after_requests is not None:
        # Armed before the child starts, so the count is of the child's requests only.
        proxy.after_request(after_requests, lambda: _kill(started[0]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlbackup.testing.crash", json.dumps(spec)],
        env=child_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    assert proc.stdout is not None
    lines: list[str] = []
    if after_progress is not None:
        sent = 0
        while sent < after_progress and (line := proc.stdout.readline()):
            lines.append(line)
            sent += line.startswith("sent ")
        _kill(proc)
    elif after_seconds is not None:
        while (line := proc.stdout.readline()) and line.strip() != "ready":
            lines.append(line)
        try:  # the kill instant is the experiment, not a synchronisation
            proc.wait(timeout=after_seconds)
        except subprocess.TimeoutExpired:
            _kill(proc)
    rest, _ = proc.communicate(timeout=timeout)
    lines += rest.splitlines()
    finished = bool(lines) and lines[-1].strip() == "done"
    sent = sum(1 for line in lines if line.startswith("sent "))
    return CrashOutcome(proc.returncode, proc.returncode == -signal.SIGKILL, sent, finished)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def _child(spec: dict[str, Any]) -> None:
    from mlbackup import backup, open_target
    from mlbackup.progress import ProgressEvent

    def progress(event: ProgressEvent) -> None:
        print(f"sent {event.path}", flush=True)

    target = open_target(spec["url"], **spec["options"])
    print("ready", flush=True)
    backup(
        spec["source"],
        target=target,
        name=spec["name"],
        keep_last=spec["keep_last"],
        progress=progress,
    )
    print("done", flush=True)


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
