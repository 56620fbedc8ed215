"""Sources that change while they are backed up, and two processes backing up one name.

The target is held mid-backup with :class:`~mlbackup.testing.faulty_fs.FaultyFS` while the test
changes the source, so the interleaving is exact (no sleeps, no luck).
"""

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlbackup import SourceMissingError, backup, open_target, restore
from mlbackup.testing.contract import tree_snapshot
from mlbackup.testing.crash import run_backup_process
from mlbackup.testing.faulty_fs import faulty_target

MiB = 1 << 20


def run_held(target, faults, source, while_held, **hold):
    """Back ``source`` up with the target held as ``hold`` says; run ``while_held`` meanwhile."""
    held = faults.hold(times=1, **hold)
    outcome = {}

    def run():
        try:
            outcome["result"] = backup(source, target=target, name="ckpt")
        except Exception as exc:  # handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    assert held.arrived.wait(timeout=30)
    while_held()
    held.release()
    worker.join(timeout=60)
    return outcome


def test_a_file_rewritten_while_it_is_sent_is_sent_again_never_mixed(tmp_path, caplog):
    src = tmp_path / "weights.bin"
    old, new = os.urandom(3 * MiB), os.urandom(3 * MiB)
    src.write_bytes(old)
    target, faults = faulty_target(tmp_path / "t")

    def rewrite_in_place():  # same inode, new bytes: a reader mid-file sees both
        with open(src, "r+b") as f:
            f.write(new)

    # Hold the second chunk written to the target: the first chunk holds the old bytes.
    with caplog.at_level(logging.INFO, logger="mlbackup"):
        outcome = run_held(target, faults, src, rewrite_in_place, method="write", on_call=2)
    assert "error" not in outcome, outcome
    restore("ckpt", tmp_path / "back.bin", target=open_target(tmp_path / "t"))
    assert (tmp_path / "back.bin").read_bytes() == new  # re-read in full, not old + new
    assert "changed while it was read; reading it again" in caplog.text


def tree_and_serial_target(tmp_path, folder, files):
    """A folder of ``files`` small files, and a held-able target sending one file at a time."""
    root = tmp_path / folder
    root.mkdir()
    for i in range(files):
        (root / f"f{i}.bin").write_bytes(bytes([i]) * 5000)
    target, faults = faulty_target(tmp_path / "t")
    # One upload at a time: f0 is held, the rest wait (files of one size start in scan order).
    target.backend.max_workers = 1
    return root, target, faults


#: Hold the local folder's object writes (files with no name, in its temp folder).
UPLOAD = {"method": "open_unnamed", "path_contains": "/tmp/"}


def test_a_tree_changing_during_a_folder_backup_commits_a_sound_version(tmp_path):
    root, target, faults = tree_and_serial_target(tmp_path, "ckpt", 6)

    rewritten_at = (root / "f4.bin").stat().st_mtime_ns + 10**10

    def change_tree():
        (root / "f5.bin").unlink()  # scanned, not yet sent: vanishes
        (root / "f4.bin").write_bytes(b"rewritten")  # not yet sent: the new bytes are taken
        os.utime(root / "f4.bin", ns=(rewritten_at, rewritten_at))  # ... with their own
        os.chmod(root / "f4.bin", 0o600)  # time and mode, not the scan's
        (root / "late.txt").write_text("added after the scan")  # the next backup's job

    outcome = run_held(target, faults, root, change_tree, **UPLOAD)
    result = outcome["result"]
    assert "f5.bin: vanished during the backup, left out" in result.skipped_entries
    restore("ckpt", tmp_path / "v1", target=open_target(tmp_path / "t"))
    restored = tree_snapshot(tmp_path / "v1")
    assert sorted(restored) == [f"f{i}.bin" for i in range(5)]
    assert restored["f4.bin"] == b"rewritten"
    f4 = (tmp_path / "v1" / "f4.bin").stat()
    assert (f4.st_mtime_ns, f4.st_mode & 0o777) == (rewritten_at, 0o600)
    second = backup(root, target=open_target(tmp_path / "t"), name="ckpt")
    restore("ckpt", tmp_path / "v2", target=open_target(tmp_path / "t"))
    assert tree_snapshot(tmp_path / "v2") == tree_snapshot(root)
    assert second.files_sent == 1  # only late.txt


def test_a_single_file_that_vanishes_mid_backup_commits_nothing(tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx" * 1000)
    target, faults = faulty_target(tmp_path / "t")
    outcome = run_held(target, faults, src, src.unlink, **UPLOAD)
    assert isinstance(outcome["error"], SourceMissingError)
    assert "vanished during the backup" in str(outcome["error"])
    assert open_target(tmp_path / "t").list() == []


def test_a_folder_removed_mid_backup_commits_nothing(tmp_path):
    root, target, faults = tree_and_serial_target(tmp_path, "checkpoint-4", 4)

    def rotate_away():
        for path in root.iterdir():
            path.unlink()
        root.rmdir()

    outcome = run_held(target, faults, root, rotate_away, **UPLOAD)
    assert isinstance(outcome["error"], SourceMissingError)
    assert "was removed during the backup; nothing was committed" in str(outcome["error"])
    assert open_target(tmp_path / "t").list() == []


@pytest.mark.parametrize("store", ["file", "s3"])
def test_two_processes_backing_up_one_name_at_once(tmp_path, store, request):
    """Both commit, one after the other; each version is exactly one writer's tree."""
    if store == "s3":
        server = request.getfixturevalue("s3_server")
        url, options = f"s3://{request.getfixturevalue('s3_bucket')}/two", server.storage_options()
    else:
        url, options = str(tmp_path / "t"), {}
    trees = []
    for writer in "ab":
        root = tmp_path / writer
        for i in range(20):
            path = root / f"d{i % 4}" / f"f{i}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{writer}{i}".encode() * 2000)
        trees.append(tree_snapshot(root))

    # Two backup processes at once (the crash driver's child, with nothing to kill it).
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda w: run_backup_process(tmp_path / w, url, options,
                                                              name="shared"), "ab"))  # fmt: skip
    assert [o.finished for o in outcomes] == [True, True]
    target = open_target(url, **options)
    assert target.versions("shared") == [1, 2]
    restored = []
    for version in (1, 2):
        restore("shared", tmp_path / f"v{version}", target=target, version=version)
        restored.append(tree_snapshot(tmp_path / f"v{version}"))
    assert sorted(map(str, restored)) == sorted(map(str, trees))
