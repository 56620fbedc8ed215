"""Disk and mount faults on the local folder and the Drive mount, through the real backend code.

Faults are injected by :class:`mlbackup.testing.faulty_fs.FaultyFS` around the backend's fsspec
filesystem. After every fault, the last committed version must still restore byte for byte, and
no half-written version may appear.
"""

import errno
import random
import threading

import pytest

from mlbackup import (
    BackendPermissionError,
    BackendUnavailableError,
    BackgroundBackup,
    MLBackupError,
    TargetError,
    backup,
    open_target,
    restore,
)
from mlbackup.retry import RetryPolicy
from mlbackup.testing.contract import leftover_temp_files, tree_snapshot
from mlbackup.testing.faulty_fs import faulty_target

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.0)


@pytest.fixture(params=["file", "drive"])
def url(request, tmp_path):
    if request.param == "file":
        return str(tmp_path / "target")
    request.getfixturevalue("drive_mount")
    return "drive://runs/faults"


@pytest.fixture
def upload(url):
    """The calls that write an object: a file with no name linked into place on the local
    folder, a temp file renamed into place on the Drive mount (FUSE has no unnamed files)."""
    if url.startswith("drive://"):
        return {"open": "open", "name": "mv"}
    return {"open": "open_unnamed", "name": "link_unnamed"}


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "ckpt"
    for i in range(6):
        path = root / f"d{i % 2}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([i]) * (1000 * (i + 1)))
    return root


@pytest.fixture
def committed(url, source, tmp_path):
    """Version 1 committed; the source then changed. Returns version 1's snapshot."""
    backup(source, target=open_target(url), name="ckpt")
    first = tree_snapshot(source)
    (source / "d0" / "f0.bin").write_bytes(b"changed" * 500)
    (source / "d1" / "f1.bin").unlink()
    (source / "new.txt").write_text("added")
    return first


def assert_only_version_1_and_it_restores(url, first, tmp_path):
    target = open_target(url)
    assert target.versions("ckpt") == [1]
    restore("ckpt", tmp_path / "restored-v1", target=target)
    assert tree_snapshot(tmp_path / "restored-v1") == first
    target.verify("ckpt")
    assert not leftover_temp_files(target.local_root), "temp files left behind"


def assert_next_backup_is_exact(url, source, tmp_path):
    target = open_target(url)
    backup(source, target=target, name="ckpt")
    restore("ckpt", tmp_path / "restored-next", target=target)
    assert tree_snapshot(tmp_path / "restored-next") == tree_snapshot(source)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("call", [1, 3])
def test_disk_full_at_the_target(url, source, committed, tmp_path, code, call, figures):
    target, faults = faulty_target(url, retry=FAST_RETRY)
    faults.fail("write", code, on_call=call)
    with pytest.raises(TargetError, match="disk is full; free space"):
        backup(source, target=target, name="ckpt")
    assert faults.count("write", faulted=True) == 1  # permanent: never retried
    figures.add("permanent errors injected")
    assert_only_version_1_and_it_restores(url, committed, tmp_path)
    assert_next_backup_is_exact(url, source, tmp_path)


def test_permission_denied_is_permanent(url, upload, source, committed, tmp_path, figures):
    target, faults = faulty_target(url, retry=FAST_RETRY)
    faults.fail(upload["open"], errno.EACCES, path_contains="/tmp/")
    with pytest.raises(BackendPermissionError, match="permission denied; make the folder"):
        backup(source, target=target, name="ckpt")
    assert faults.count(upload["open"], faulted=True) == 1
    figures.add("permanent errors injected")
    assert_only_version_1_and_it_restores(url, committed, tmp_path)


def test_a_moment_of_timeouts_is_retried(url, upload, source, committed, tmp_path):
    target, faults = faulty_target(url, retry=FAST_RETRY)
    faults.fail(upload["name"], errno.ETIMEDOUT, times=2)  # the policy allows 3 tries
    result = backup(source, target=target, name="ckpt")
    assert result.version == 2
    assert faults.count(upload["name"], faulted=True) == 2
    restore("ckpt", tmp_path / "v2", target=open_target(url))
    assert tree_snapshot(tmp_path / "v2") == tree_snapshot(source)


def test_timeouts_past_the_budget_end_in_a_transient_error(url, source, committed, tmp_path):
    target, faults = faulty_target(url, retry=FAST_RETRY)
    faults.fail("info", errno.ETIMEDOUT, times=1000)
    with pytest.raises(BackendUnavailableError, match="ETIMEDOUT"):
        backup(source, target=target, name="ckpt")
    assert_only_version_1_and_it_restores(url, committed, tmp_path)


@pytest.mark.parametrize("method", ["link", "write"])
def test_failure_while_committing_the_manifest(url, source, committed, tmp_path, method):
    target, faults = faulty_target(url, retry=FAST_RETRY)
    faults.fail(method, errno.EIO, path_contains="" if method == "link" else "/tmp/")
    if method == "write":
        # Only the manifest write fails: skip the data writes that come first.
        faults.clear()
        writes_before_commit = 2  # f0 changed and new.txt added
        faults.fail("write", errno.EIO, on_call=writes_before_commit + 1)
    with pytest.raises(TargetError):
        backup(source, target=target, name="ckpt")
    assert_only_version_1_and_it_restores(url, committed, tmp_path)
    assert_next_backup_is_exact(url, source, tmp_path)


@pytest.mark.parametrize("which", ["first object", "second object", "manifest"])
def test_a_silently_truncated_write_is_caught(url, upload, source, committed, tmp_path, which):
    target, faults = faulty_target(url, retry=FAST_RETRY)
    if which == "manifest":
        calls_before = 2 if upload["open"] == "open" else 0  # the two objects' temp files
        faults.truncate_writes(2, on_call=calls_before + 1)
    else:
        call = 1 if which == "first object" else 2
        faults.truncate_writes(2, on_call=call, method=upload["open"])
    with pytest.raises(TargetError, match="short write"):
        backup(source, target=target, name="ckpt")
    assert_only_version_1_and_it_restores(url, committed, tmp_path)
    assert_next_backup_is_exact(url, source, tmp_path)


#: 12 seeds in every run, 200 more in the soak tier (pytest -m soak).
SEEDS = [*range(12), *(pytest.param(seed, marks=pytest.mark.soak) for seed in range(12, 212))]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_never_lose_a_committed_version(url, source, committed, tmp_path, seed):
    """Seeded random EIO/ETIMEDOUT/ENOSPC on every kind of call: each backup either commits
    an exact version or raises a typed error, and committed versions always restore."""
    rng = random.Random(seed)
    target, faults = faulty_target(url, retry=FAST_RETRY, seed=seed)
    methods = ("open", "open_unnamed", "link_unnamed", "write", "mv", "info", "link", "ls")
    for method in (*methods, "cat_file", "rm_file"):
        code = rng.choice([errno.EIO, errno.ETIMEDOUT, errno.ENOSPC])
        faults.fail_randomly(method, code, probability=0.04)
    expected = {1: committed}
    for round_ in range(4):
        (source / f"round-{round_}.txt").write_text(f"round {round_}")
        try:
            result = backup(source, target=target, name="ckpt")
        except MLBackupError:
            continue
        expected[result.version] = tree_snapshot(source)
    clean = open_target(url)
    for version in clean.versions("ckpt"):
        dest = tmp_path / f"v{version}"
        restore("ckpt", dest, target=clean, version=version)
        assert tree_snapshot(dest) == expected[version], f"version {version} (seed {seed})"


def test_a_stalled_target_never_holds_up_the_training_loop(url, upload, source, tmp_path):
    target, faults = faulty_target(url)
    stalled = faults.hold(upload["open"], path_contains="/tmp/")  # every upload blocks
    steps_done = 0
    with BackgroundBackup(target) as background:
        for step in range(50):
            (source / "step.txt").write_text(str(step))
            background.submit(source, name="ckpt")  # returns at once: the target is stalled
            steps_done += 1
        assert steps_done == 50
        assert background.status()["ckpt"].last_version is None
        stalled.release()
        background.flush()
        assert background.status()["ckpt"].last_version is not None
    restore("ckpt", tmp_path / "restored", target=open_target(url))
    assert tree_snapshot(tmp_path / "restored") == tree_snapshot(source)


def test_concurrent_calls_are_logged_once_each(tmp_path):
    target, faults = faulty_target(tmp_path / "t")
    threads = [threading.Thread(target=target.backend.info, args=(f"k{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert faults.count("info") == 8


def test_temp_files_are_private_while_a_backup_runs(tmp_path):
    """The SQLite snapshot beside the source is 0600, and the object being written on the
    target has no name at all until it is complete (a file with no name, then a link)."""
    import sqlite3
    import stat

    run = tmp_path / "run"
    run.mkdir()
    with sqlite3.connect(run / "study.db") as db:
        db.execute("create table t (x)")
    db.close()
    target, faults = faulty_target(tmp_path / "target")
    upload = faults.hold("link_unnamed")  # written in full, not named yet
    worker = threading.Thread(target=backup, args=(run,), kwargs={"target": target})
    worker.start()
    assert upload.arrived.wait(timeout=30)
    snapshots = list(run.glob(".mlbackup-snap-*"))
    modes = [stat.S_IMODE(p.stat().st_mode) for p in snapshots]
    on_target = [p for p in (tmp_path / "target").rglob("*") if p.is_file()]
    upload.release()
    worker.join()
    assert modes == [0o600]
    assert on_target == []
    assert not list(run.glob(".mlbackup-snap-*"))  # and gone afterwards


def test_a_killed_write_leaves_nothing_on_the_target(tmp_path):
    """A write interrupted before its object is named leaves no file behind (the unnamed
    file goes with its descriptor), so no temp file is left for a later run to sweep."""
    (tmp_path / "model.bin").write_bytes(b"w" * 100_000)
    target, faults = faulty_target(tmp_path / "target", retry=FAST_RETRY)
    faults.fail("link_unnamed", errno.EIO)
    with pytest.raises(TargetError):
        backup(tmp_path / "model.bin", target=target, name="model")
    left = [p for p in (tmp_path / "target").rglob("*") if p.is_file()]
    assert left == []


def test_restore_temp_files_are_private_until_placed(tmp_path):
    import stat

    (tmp_path / "secret.bin").write_bytes(b"weights")
    backup(tmp_path / "secret.bin", target=open_target(tmp_path / "t"), name="secret.bin")
    target, faults = faulty_target(tmp_path / "t")
    download = faults.hold("open", path_contains=".mlbackup/objects/")
    dest = tmp_path / "back" / "secret.bin"
    dest.parent.mkdir()
    worker = threading.Thread(target=restore, args=("secret.bin", dest), kwargs={"target": target})
    worker.start()
    assert download.arrived.wait(timeout=30)
    temps = list(dest.parent.glob(".mlbackup-restore-*"))
    modes = [stat.S_IMODE(p.stat().st_mode) for p in temps]
    download.release()
    worker.join()
    assert modes == [0o600]
    assert dest.read_bytes() == b"weights"


def test_durable_false_skips_the_flush_and_still_commits(tmp_path, monkeypatch):
    import mlbackup_local

    synced = []
    monkeypatch.setattr(mlbackup_local, "_syncfs", lambda fd: synced.append(fd) or True)
    (tmp_path / "a.txt").write_text("a")
    backup(tmp_path / "a.txt", target=open_target(tmp_path / "fast", durable=False), name="a")
    assert synced == []
    backup(tmp_path / "a.txt", target=open_target(tmp_path / "safe"), name="a")
    assert len(synced) == 1  # the default flushes once per commit
    restore("a", tmp_path / "back.txt", target=open_target(tmp_path / "fast"))
    assert (tmp_path / "back.txt").read_text() == "a"
