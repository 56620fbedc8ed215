"""The retry policy: which backend calls are tried again, how often, how long apart.

Backends translate their store's failures into mlbackup errors; only
`BackendUnavailableError` (timeouts, resets, 5xx, 429/SlowDown) is retried,
with exponential backoff and full jitter, honouring ``Retry-After``, within an overall deadline:
a retry starts only if it could end in time, judged by how long the failed try took, so a
store that accepts connections and never answers ends an operation within the deadline (each
backend bounds one try by its clients' timeouts). Permanent errors (permissions, missing
bucket, bad input) raise at once.

Every backend operation goes through its backend's policy (see
`mlbackup.retrying_backend.RetryingBackend`, which also settles ambiguous retries).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import BackendUnavailableError

__all__ = ["RetryPolicy"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        attempts: tries per operation, the first included (1 disables retries).
        base_delay: the first backoff ceiling in seconds; it doubles per retry.
        max_delay: the largest single wait, ``Retry-After`` included.
        deadline: seconds an operation may take, its retries included: no retry starts
            that would end later, if it took as long as the try that just failed.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    deadline: float = 45.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay(self, retry: int, error: BackendUnavailableError) -> float:
        """Seconds to wait before retry number ``retry`` (1-based) after ``error``."""
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_delay)
        ceiling = min(self.base_delay * 2 ** (retry - 1), self.max_delay)
        return self.rng.uniform(0, ceiling)

    def call(
        self,
        fn: Callable[[], _T],
        what: str,
        on_retry: Callable[[BackendUnavailableError], _T | None] | None = None,
    ) -> _T:
        """Run ``fn``, retrying transient failures.

        ``on_retry`` runs before each retry and may settle the call by looking at the store
        (returning a result) instead of repeating ``fn``; ``None`` means "repeat".
        """
        started = self.clock()
        retry = 0
        while True:
            tried_at = self.clock()
            try:
                return fn()
            except BackendUnavailableError as exc:
                retry += 1
                wait = self.delay(retry, exc)
                now = self.clock()
                # A try that stalled until its timeout will likely stall again: only retry
                # if another try as long as this one still ends within the deadline.
                if (
                    retry >= self.attempts
                    or now + wait + (now - tried_at) - started > self.deadline
                ):
                    raise
                log.info("%s: transient failure, retry %d in %.1fs: %s", what, retry, wait, exc)
                self.sleep(wait)
            if on_retry is not None:
                settled = self._settle(on_retry, what)
                if settled is not None:
                    return settled

    def _settle(
        self, on_retry: Callable[[BackendUnavailableError], _T | None], what: str
    ) -> _T | None:
        try:
            return on_retry(BackendUnavailableError(what))
        except BackendUnavailableError:
            return None  # could not look either: repeat the call
