"""A one-line progress bar for a terminal: files and bytes done, rate and time left.

It is a `ProgressCallback`, so it plugs into ``backup``, ``restore`` and the
CLI alike. Nothing is drawn for transfers shorter than ``delay``; the line is redrawn at most
every ``interval`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from .progress import ProgressEvent

__all__ = ["ProgressBar", "format_bytes", "format_duration"]


def format_bytes(n: float) -> str:
    """Bytes in the largest unit that keeps the number above 1.

    Examples:
        >>> format_bytes(999), format_bytes(1_500_000), format_bytes(3 * 1024**4)
        ('999 B', '1.5 MB', '3.3 TB')
    """
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``.

    Examples:
        >>> format_duration(7), format_duration(3725)
        ('0:07', '1:02:05')
    """
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class ProgressBar:
    """Draw transfer progress on ``stream`` (a terminal), one line rewritten in place.

    Args:
        stream: where to draw, usually ``sys.stderr``.
        delay: draw nothing until the transfer has run this long.
        interval: redraw at most this often.
        width: the bar's width in characters.
        clock: a monotonic clock (tests pass their own).

    Examples:
        >>> import sys
        >>> from mlbackup import ProgressEvent
        >>> bar = ProgressBar(sys.stderr)
        >>> event = ProgressEvent("ckpt", "w.bin", 1, 4, 50_000_000, 200_000_000)
        >>> print(bar.line(event, elapsed=2.0))
        ckpt [#####...............]  25%  1/4 files  50.0 MB/200.0 MB  25.0 MB/s  0:06 left
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        delay: float = 0.5,
        interval: float = 0.1,
        width: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._delay = delay
        self._interval = interval
        self._width = width
        self._clock = clock
        self._started = clock()
        self._last_draw: float | None = None
        self._last: ProgressEvent | None = None
        self._drawn_width = 0
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        # Events arrive from worker threads.
        with self._lock:
            self._last = event
            now = self._clock()
            if now - self._started < self._delay:
                return
            if self._last_draw is not None and now - self._last_draw < self._interval:
                return
            self._draw(event, now)

    def line(self, event: ProgressEvent, elapsed: float) -> str:
        """The text drawn for ``event`` after ``elapsed`` seconds."""
        fraction = min(event.bytes_done / event.bytes_total, 1.0) if event.bytes_total else 1.0
        filled = round(fraction * self._width)
        rate = event.bytes_done / elapsed if elapsed > 0 else 0.0
        left = (event.bytes_total - event.bytes_done) / rate if rate > 0 else None
        parts = [
            f"{event.name} [{'#' * filled}{'.' * (self._width - filled)}] {fraction:4.0%}",
            f"{event.files_done:,}/{event.files_total:,} files",
            f"{format_bytes(event.bytes_done)}/{format_bytes(event.bytes_total)}",
            f"{format_bytes(rate)}/s",
        ]
        if left is not None and event.bytes_done < event.bytes_total:
            parts.append(f"{format_duration(left)} left")
        return "  ".join(parts)

    def _draw(self, event: ProgressEvent, now: float) -> None:
        text = self.line(event, now - self._started)
        pad = " " * max(self._drawn_width - len(text), 0)  # wipe a longer previous line
        self._stream.write(f"\r{text}{pad}")
        self._stream.flush()
        self._drawn_width = len(text)
        self._last_draw = now

    def close(self) -> None:
        """Draw the final state (if anything was drawn) and end the line."""
        with self._lock:
            if self._last_draw is None:
                return
            if self._last is not None:
                self._draw(self._last, self._clock())
            self._stream.write("\n")
            self._stream.flush()
