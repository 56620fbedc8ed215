"""The upload memory budget: what workers hold at once stays within it."""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from mlbackup.memory_budget import MemoryBudget


def test_workers_never_hold_more_than_the_budget():
    budget = MemoryBudget(30)
    lock = threading.Lock()
    state = {"now": 0, "most": 0}
    # Every worker waits inside its hold for all six to be inside. The budget admits three
    # shares, so that never happens and the barrier gives up (its timeout bounds the test, it
    # does not decide it); a budget that admitted all six would let them meet.
    all_inside = threading.Barrier(6, timeout=0.5)

    def work(_):
        with budget.hold(10):
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            with contextlib.suppress(threading.BrokenBarrierError):
                all_inside.wait()
            with lock:
                state["now"] -= 1

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(6)))
    assert all_inside.broken
    assert state["most"] == 3
    assert budget.peak == 30


def test_a_buffer_larger_than_the_budget_goes_alone():
    budget = MemoryBudget(10)
    with budget.hold(25):
        assert budget.peak == 25
    with budget.hold(5), budget.hold(5):
        assert budget.peak == 25


def test_parts_are_read_one_budget_share_at_a_time_into_reused_buffers(tmp_path):
    import hashlib

    from mlbackup.memory_budget import read_parts_reusing

    path = tmp_path / "f"
    path.write_bytes(b"a" * 10 + b"b" * 10 + b"c" * 4)
    budget = MemoryBudget(10)
    seen, buffers = [], set()
    hasher = hashlib.md5()
    for part in read_parts_reusing(budget, path, 10, hasher):
        seen.append(bytes(part))
        buffers.add(id(part))
        assert budget.peak == 10  # the next part waits for this one's share
    assert seen == [b"a" * 10, b"b" * 10, b"c" * 4]
    assert len(buffers) == 1  # one buffer, lent again for each part
    assert hasher.hexdigest() == hashlib.md5(path.read_bytes()).hexdigest()
    with budget.hold(10):  # everything was given back
        pass
