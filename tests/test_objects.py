"""Identical content is stored once per target, and the browsable tree costs (almost) no room.

Measured the way a user's disk or Drive quota sees it: on a local folder every distinct inode
under the target counts once (the browsable tree is hard links to the objects); on the Drive
API, the quota the fake Drive charges (the browsable tree is shortcuts).
"""

import os

import pytest

from mlbackup import backup, open_target, restore
from mlbackup.testing.contract import tree_snapshot, write_tree

KiB = 1 << 10


def checkpoints(root, count=10):
    """``count`` checkpoint folders of one run that share a tokenizer, a config and a vocab."""
    shared = {
        "tokenizer.json": b"t" * (200 * KiB),
        "config.json": b'{"hidden": 768}',
        "vocab.txt": b"v" * (300 * KiB),
    }
    folders = []
    for i in range(count):
        folder = write_tree(
            root / f"checkpoint-{i}", {**shared, "model.safetensors": os.urandom(100 * KiB)}
        )
        folders.append(folder)
    unique = count * 100 * KiB + sum(len(b) for b in shared.values())
    return folders, unique


def stored_bytes(folder):
    """Bytes the files under ``folder`` take, each inode counted once."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def test_checkpoints_sharing_files_are_stored_once_on_a_folder(tmp_path):
    folders, unique = checkpoints(tmp_path / "run")
    target = open_target(tmp_path / "target")
    for folder in folders:
        backup(folder, target=target, name=f"run/{folder.name}")
    assert stored_bytes(tmp_path / "target") <= 1.05 * unique
    for folder in folders:  # and the browsable tree shows every checkpoint
        assert tree_snapshot(tmp_path / "target" / "run" / folder.name) == tree_snapshot(folder)


def test_checkpoints_sharing_files_are_stored_once_on_drive(tmp_path, drive_api, gdrive_options):
    target = open_target("gdrive://root/runs", **gdrive_options)
    folders, unique = checkpoints(tmp_path / "run", count=4)
    for folder in folders:
        backup(folder, target=target, name=f"run/{folder.name}")
    assert drive_api.used_bytes() <= 1.05 * unique
    restore(f"run/{folders[-1].name}", tmp_path / "out", target=target)
    assert tree_snapshot(tmp_path / "out") == tree_snapshot(folders[-1])


@pytest.mark.slow
def test_a_1_gib_file_costs_its_size_once_with_its_browsable_copy(tmp_path):
    big = tmp_path / "model.bin"
    block = os.urandom(1 << 20)
    with big.open("wb") as f:
        for _ in range(1024):
            f.write(block)
    backup(big, target=tmp_path / "target", name="model.bin")
    assert (tmp_path / "target" / "model.bin").stat().st_size == 1 << 30  # browsable
    assert stored_bytes(tmp_path / "target") <= 1.1 * (1 << 30)


def test_the_browsable_tree_follows_many_changed_files(tmp_path):
    """Files rewritten in place (same size, new bytes) show their new bytes in the browsable
    tree after the next backup, however many are linked at once."""
    src = write_tree(tmp_path / "src", {f"a/f{i}.bin": os.urandom(1000) for i in range(40)})
    target = open_target(tmp_path / "target")
    backup(src, target=target, name="tree")
    for i in range(0, 40, 2):
        (src / "a" / f"f{i}.bin").write_bytes(os.urandom(1000))
    assert backup(src, target=target, name="tree").files_sent == 20
    assert tree_snapshot(tmp_path / "target" / "tree") == tree_snapshot(src)


def test_an_existing_object_reused_by_another_name_is_touched(tmp_path):
    """Reusing an object no version of this name lists resets its age, so that retention's
    grace period (which collects only objects untouched for that long) starts again."""
    from mlbackup.layout import object_key

    src = write_tree(tmp_path / "a", {"tokenizer.json": b"t" * 5000})
    target = open_target(tmp_path / "target")
    backup(src, target=target, name="first")
    key = object_key(target.manifest("first").files[0].hash)
    stored = target.backend.inner.stored_path(key)
    os.utime(stored, (0, 0))  # as old as it gets
    backup(src, target=target, name="second")
    assert stored.stat().st_mtime > 1e9
    assert target.backend.modified(key) > 1e9


def test_a_failed_backup_never_takes_back_an_object_another_writer_reuses(tmp_path):
    """Writer A creates an object, writer B finds it stored (and touches it), then A's backup
    fails: A's take-back must keep it, or B's version would lose its bytes."""
    from mlbackup import open_target

    src = tmp_path / "w.bin"
    src.write_bytes(b"shared weights" * 1000)
    a, b = open_target(tmp_path / "t"), open_target(tmp_path / "t")
    made = a.backend.put_object_hashing(src, lambda d: f".mlbackup/objects/{d}")
    reused = b.backend.put_object_hashing(src, lambda d: f".mlbackup/objects/{d}")
    assert not made.reused and reused.reused
    a.backend.withdraw(made.key)
    assert b.backend.info(made.key) is not None
    lone = tmp_path / "lone.bin"
    lone.write_bytes(b"only A has these")
    mine = a.backend.put_object_hashing(lone, lambda d: f".mlbackup/objects/{d}")
    a.backend.withdraw(mine.key)
    assert a.backend.info(mine.key) is None  # nobody else reuses it: taken back
