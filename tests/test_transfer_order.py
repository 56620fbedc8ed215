"""Transfers start largest first: a large file started last would be the run's tail, one
worker busy while the others idle (measured on a store 20 ms away: the two 50 MB files of the
benchmark's tree began only once its 1,000 small files were sent)."""

from mlbackup import ProgressEvent, backup, open_target, restore


def _tree(root):
    sizes = {"a/one.bin": 10, "a/two.bin": 30, "m/mid.bin": 2000, "z/weights.bin": 50_000}
    for path, size in sizes.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(path.encode()[:1] * size)
    return sorted(sizes, key=sizes.__getitem__, reverse=True)


def _one_worker(url):
    target = open_target(url)
    target.backend.max_workers = 1  # one transfer at a time: the start order shows
    return target


def _files_in_order(events: list[ProgressEvent]) -> list[str]:
    done, order = 0, []
    for event in events:
        if event.files_done > done:
            done = event.files_done
            order.append(event.path)
    return order


def test_a_backup_sends_the_largest_files_first(tmp_path):
    largest_first = _tree(tmp_path / "run")
    events: list[ProgressEvent] = []
    result = backup(tmp_path / "run", target=_one_worker(str(tmp_path / "store")), name="run",
                    progress=events.append)  # fmt: skip
    assert result.files_sent == 4
    assert _files_in_order(events) == largest_first


def test_a_restore_fetches_the_largest_files_first(tmp_path):
    largest_first = _tree(tmp_path / "run")
    backup(tmp_path / "run", target=open_target(str(tmp_path / "store")), name="run")
    events: list[ProgressEvent] = []
    restore("run", tmp_path / "back", target=_one_worker(str(tmp_path / "store")),
            progress=events.append)  # fmt: skip
    assert _files_in_order(events) == largest_first
    for path in largest_first:
        assert (tmp_path / "back" / path).read_bytes() == (tmp_path / "run" / path).read_bytes()


def test_results_keep_the_items_order_whatever_starts_first():
    from mlbackup.parallel import map_in_threads

    started: list[str] = []

    def record(item: tuple[str, int]) -> str:
        started.append(item[0])
        return item[0].upper()

    items = [("a", 3), ("b", 50), ("c", 7), ("d", 50), ("e", 1)]
    for workers in (1, 3):
        started.clear()
        results = map_in_threads(record, items, workers, "t", size_of=lambda item: item[1])
        assert results == ["A", "B", "C", "D", "E"]
        if workers == 1:
            assert started == ["b", "d", "c", "a", "e"]  # ties keep their order


def test_a_failure_cancels_what_has_not_started_while_a_large_item_runs():
    """The largest item starts first and may run long: a small one's failure must not wait
    for it before the items not started yet are called off."""
    import threading

    import pytest

    from mlbackup.parallel import map_in_threads

    ran: list[int] = []
    never_set = threading.Event()

    def work(item: int) -> None:
        if item == 1000:
            never_set.wait(1.0)  # a long transfer, still running when the failure comes
        elif item == 999:
            raise ValueError("a small file failed")
        else:
            ran.append(item)

    items = [1000, 999, *range(50)]
    with pytest.raises(ValueError, match="small file failed"):
        map_in_threads(work, items, 2, "t", size_of=lambda item: item)
    assert len(ran) < 10, f"{len(ran)} of 50 ran after the failure"
