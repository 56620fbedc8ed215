"""kill -9 at every named point of the protocol, at instants picked by progress, and after the
k-th request, on every backend that runs in another process: the local folder, the Drive mount
(a temp folder), S3 (moto), GCS (the emulator) and the Drive API (the fake Drive).

Each trial: versions 1 and 2 are committed; the source changes (files edited, deleted, added);
a child process backing it up with keep_last=2 is SIGKILLed (by
:func:`mlbackup.testing.crash.run_backup_process`). Afterwards every committed version must
restore byte for byte, and the next backup must complete and be exact.
"""

import os
import random
import time

import pytest
from conftest import empty_store

from mlbackup import backup, open_target, restore
from mlbackup.crashpoints import POINTS
from mlbackup.testing.contract import tree_snapshot
from mlbackup.testing.crash import run_backup_process
from mlbackup.testing.fault_proxy import FaultProxy

STORES = ["file", "drive", "s3", "gs", "gdrive"]


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    """An empty target on each kind of store (unpacks as URL, options)."""
    return empty_store(request, request.param, tmp_path)


def open_store(store):
    url, options = store
    return open_target(url, **options)


def write_tree(root, generation):
    for i in range(12):
        path = root / f"d{i % 3}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 4 == 0 or generation == 0:
            path.write_bytes(f"gen{generation}-{i}".encode() * (100 + i))
    gone = root / "d0" / f"f{generation}.bin"
    if generation and gone.exists():
        gone.unlink()
    (root / f"new-{generation}.txt").write_text(f"added in {generation}")


@pytest.fixture
def committed(tmp_path, store):
    """A source with versions 1 and 2 committed, then changed again; returns snapshots."""
    src = tmp_path / "ckpt"
    target = store
    snapshots = {}
    for generation in (0, 1):
        write_tree(src, generation)
        backup(src, target=open_store(store), name="ckpt", keep_last=2)
        snapshots[generation + 1] = tree_snapshot(src)
    write_tree(src, 2)
    return src, target, snapshots


def check_all_versions(target, snapshots, tmp_path, label):
    t = open_store(target)
    for version in t.versions("ckpt"):
        dest = tmp_path / f"restore-{label}-v{version}"
        restore("ckpt", dest, target=t, version=version)
        assert tree_snapshot(dest) == snapshots[version], f"version {version} after {label}"
        t.verify("ckpt", version)
    return t.versions("ckpt")


@pytest.mark.parametrize(
    "point",
    [
        "after-put:1",
        "after-put:4",
        "before-commit",
        "after-commit",
        "during-browse:1",
        "during-browse:3",
        "during-retention",
    ],
)
def test_kill_at_named_point(committed, tmp_path, point, figures):
    src, target, snapshots = committed
    assert point.split(":")[0] in POINTS
    outcome = run_backup_process(src, *target, keep_last=2, at_point=point)
    assert outcome.killed
    figures.add(f"kill -9 trials: {store_kind(target)}")
    snapshots[3] = tree_snapshot(src)
    versions = check_all_versions(target, snapshots, tmp_path, "crash")
    committed_new = point.split(":")[0] in ("after-commit", "during-browse", "during-retention")
    assert versions[-1] == (3 if committed_new else 2)
    # The next run finishes the job.
    backup(src, target=open_store(target), name="ckpt", keep_last=2)
    versions = check_all_versions(target, snapshots, tmp_path, "recovery")
    assert versions == [2, 3]


@pytest.mark.parametrize("lines", range(13))  # with the 7 named points: 20 kills per store
def test_kill_at_progress_instants(committed, tmp_path, lines, figures):
    kill_then_recover(committed, tmp_path, figures, after_progress=lines)


@pytest.mark.parametrize("store", ["s3", "gs", "gdrive"], indirect=True)
@pytest.mark.parametrize("nth", [1, 3, 6, 10, 15])
def test_kill_after_the_kth_request(committed, tmp_path, nth, figures):
    """Killed right after the server acted on a request, before the client heard back."""
    spec = committed[1]
    with FaultProxy(spec.endpoint) as proxy:
        proxied = spec.through(proxy.endpoint_url)
        outcome = kill_then_recover(
            committed, tmp_path, figures, options=proxied, proxy=proxy, after_requests=nth
        )
    assert outcome.killed


def store_kind(target):
    return target.kind


def kill_then_recover(committed, tmp_path, figures, options=None, **kill):
    """Kill a backup as ``kill`` says; every kept version must restore, the next run finish."""
    src, target, snapshots = committed
    url = target.url
    outcome = run_backup_process(src, url, options or target.options, keep_last=2, **kill)
    assert outcome.killed or outcome.finished
    if outcome.killed:
        figures.add(f"kill -9 trials: {store_kind(target)}")
    snapshots[3] = tree_snapshot(src)
    check_all_versions(target, snapshots, tmp_path, "crash")
    backup(src, target=open_store(target), name="ckpt", keep_last=2)
    assert check_all_versions(target, snapshots, tmp_path, "recovery")[-1] == 3
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize("store", ["s3", "gs"], indirect=True)
def test_kill_mid_part_upload_leaves_no_half_object(store, tmp_path, figures):
    url, options = store
    options = {**options, "part_size": 5 << 20}
    big = tmp_path / "big" / "weights.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(12 << 20))
    first = big.read_bytes()
    backup(big.parent, target=open_target(url, **options), name="ckpt")
    big.write_bytes(os.urandom(12 << 20))
    outcome = run_backup_process(big.parent, url, options, at_point="after-part:1")
    assert outcome.killed
    figures.add(f"kill -9 trials: {store_kind(store)}")
    target = open_target(url, **options)
    for name in target.backend.list_dir("ckpt"):
        info = target.backend.info(f"ckpt/{name}")
        assert info is None or info.size == len(first)  # no 5 MiB prefix anywhere
    assert target.versions("ckpt") == [1]
    restore("ckpt", tmp_path / "v1", target=target)
    assert (tmp_path / "v1" / "weights.bin").read_bytes() == first
    backup(big.parent, target=target, name="ckpt")
    restore("ckpt", tmp_path / "v2", target=target)
    assert (tmp_path / "v2" / "weights.bin").read_bytes() == big.read_bytes()


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(30))
def test_kill_at_random_instants(committed, tmp_path, seed, figures):
    """30 more kills per store at seeded random instants within the backup's own duration
    (run with: pytest -m soak)."""
    src, target, _ = committed
    started = time.perf_counter()  # how long this backup takes here: a full one, as a bound
    backup(src, target=open_store(target), name="calibration")
    span = time.perf_counter() - started
    delay = random.Random(seed).uniform(0.0, span)
    kill_then_recover(committed, tmp_path, figures, after_seconds=delay)
