"""Run one command and measure it: wall time, CPU seconds and peak memory of the process.

Every tool, ours included, runs as a child process so that all are measured the same way:
``os.wait4`` gives the child's CPU time; its peak memory is the kernel's ``VmHWM`` of the
child's own address space (read from ``/proc`` while it runs, and reported by our Python
children on exit). ``ru_maxrss`` is not used: on Linux it keeps the high-water mark of the
forked copy of the harness from before ``exec``. A Python child may also report the time of
just the call being measured, after its imports (``"seconds"`` in its last JSON line): that is
the in-process figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, the whole process
    cpu: float  # user + system seconds of the process
    rss_mb: float  # peak resident memory
    reported: float | None  # seconds the child reported for the measured call alone
    extra: dict[str, Any] = field(default_factory=dict)  # other figures the child reported

    @property
    def seconds(self) -> float:
        """The in-process time where the child reported one, else the process's wall time."""
        return self.reported if self.reported is not None else self.wall


class CommandFailed(RuntimeError):
    pass


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 1800,
) -> Sample:
    """Run ``argv`` to completion; raise :class:`CommandFailed` (with its output) on failure.

    The disk's dirty pages are written out first (untimed): otherwise one tool's writes are
    flushed during the next tool's run and charged to it (seen here as 0.4 s to 3 s for the
    same ``cp -a``).
    """
    os.sync()
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            cwd=cwd,
        )  # fmt: skip
        deadline = started + timeout
        peak_kb, polls = 0, 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise CommandFailed(f"{argv[0]} timed out after {timeout} s")
            if polls % 10 == 0:
                peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            polls += 1
            time.sleep(0.002)  # polling a child's exit; the 2 ms granularity is below noise
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv[:3])} ... exited {proc.returncode}:\n{text[-2000:]}")
    reported = _reported(text)
    seconds = reported.pop("seconds", None)
    peak_kb = max(peak_kb, int(reported.pop("vm_hwm_kb", 0)))
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(wall, cpu, peak_kb / 1024, seconds, reported)


def vm_hwm_kb(pid: int | str = "self") -> int:
    """The peak resident memory of process ``pid``'s address space, in KiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reported(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                return {}
            return found if isinstance(found, dict) else {}
    return {}
