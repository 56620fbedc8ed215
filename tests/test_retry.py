"""The retry policy on its own: what is retried, how long apart, and when it stops."""

import random

import pytest

from mlbackup.errors import BackendPermissionError, BackendUnavailableError
from mlbackup.retry import RetryPolicy


class Clock:
    def __init__(self):
        self.now = 0.0
        self.waits = []

    def sleep(self, seconds):
        self.waits.append(seconds)
        self.now += seconds


def policy(clock, **kwargs):
    return RetryPolicy(sleep=clock.sleep, clock=lambda: clock.now, rng=random.Random(7), **kwargs)


def flaky(failures, error=None):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= failures:
            raise error or BackendUnavailableError("503")
        return "done"

    return fn, calls


def test_transient_failures_are_retried_with_growing_jittered_waits():
    clock = Clock()
    fn, calls = flaky(3)
    assert policy(clock, attempts=4, base_delay=1.0).call(fn, "upload") == "done"
    assert len(calls) == 4
    ceilings = [1.0, 2.0, 4.0]
    assert all(0 <= w <= c for w, c in zip(clock.waits, ceilings, strict=True))


def test_attempts_bound_the_tries():
    clock = Clock()
    fn, calls = flaky(10)
    with pytest.raises(BackendUnavailableError):
        policy(clock, attempts=3).call(fn, "upload")
    assert len(calls) == 3


def test_no_retry_starts_past_the_deadline():
    clock = Clock()
    fn, calls = flaky(10, BackendUnavailableError("429", retry_after=10))
    with pytest.raises(BackendUnavailableError):
        policy(clock, attempts=100, deadline=25).call(fn, "upload")
    assert clock.waits == [10, 10]  # a third wait would end past 25 s
    assert len(calls) == 3


def test_retry_after_is_honoured_up_to_the_cap():
    clock = Clock()
    fn, _ = flaky(2, BackendUnavailableError("429", retry_after=90))
    policy(clock, max_delay=5).call(fn, "upload")
    assert clock.waits == [5, 5]


def test_permanent_errors_are_not_retried():
    clock = Clock()
    fn, calls = flaky(1, BackendPermissionError("denied"))
    with pytest.raises(BackendPermissionError):
        policy(clock).call(fn, "upload")
    assert len(calls) == 1 and clock.waits == []


def test_a_retry_can_be_settled_by_looking():
    clock = Clock()
    fn, calls = flaky(5)
    settled = policy(clock).call(fn, "write", on_retry=lambda _: "found it")
    assert settled == "found it" and len(calls) == 1


def test_a_try_that_stalled_is_not_repeated_past_the_deadline():
    """Each try stalls until the client's 20 s timeout: a second one would end past the 30 s
    deadline, so the first failure is final (a silent store fails fast, typed)."""
    clock = Clock()
    calls = []

    def stalls():
        calls.append(1)
        clock.now += 20.0
        raise BackendUnavailableError("read timeout")

    with pytest.raises(BackendUnavailableError):
        policy(clock, attempts=4, deadline=30.0).call(stalls, "list")
    assert len(calls) == 1 and clock.now <= 30.0


def test_the_default_deadline_ends_an_operation_within_a_minute():
    assert RetryPolicy().deadline < 60
