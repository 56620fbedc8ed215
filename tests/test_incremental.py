"""Change detection on a 5,000-file tree: only what changed is sent, on any machine."""

import os
import random

from mlbackup import BackupStatus, backup, open_target


def test_five_thousand_files(tmp_path):
    root = tmp_path / "ckpt"
    rng = random.Random(5)
    files = []
    for i in range(5000):
        path = root / f"layer{i % 50:02d}" / f"shard{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1, 2048)))
        files.append(path)
    target_dir = tmp_path / "target"
    first = backup(root, target=target_dir, name="ckpt")
    assert first.files_sent == 5000

    second = backup(root, target=target_dir, name="ckpt")
    assert second.status is BackupStatus.UNCHANGED
    assert (second.files_sent, second.bytes_sent) == (0, 0)

    changed = rng.sample(files, 50)
    changed_bytes = 0
    for path in changed:
        data = rng.randbytes(rng.randint(1, 2048))
        path.write_bytes(data)
        os.utime(path, ns=(0, rng.randint(1, 10**18)))  # whatever the clock, the stat differs
        changed_bytes += len(data)
    third = backup(root, target=target_dir, name="ckpt")
    assert (third.version, third.files_sent, third.bytes_sent) == (2, 50, changed_bytes)

    # A fresh machine keeps no local state: the target's manifest alone says nothing changed.
    fresh = open_target(target_dir)
    fourth = backup(root, target=fresh, name="ckpt")
    assert (fourth.status, fourth.files_sent, fourth.bytes_sent) == (BackupStatus.UNCHANGED, 0, 0)


def test_one_folder_however_it_is_named_is_one_writer(tmp_path, monkeypatch):
    """The folder named by its absolute path, relative to the working directory, or through
    a symlink is the same writer: an unchanged file is trusted on its size and mtime, not
    read again (reading every byte of a large checkpoint because ``cd`` differed is slow)."""
    import mlbackup.engine

    root = tmp_path / "work" / "ckpt"
    for i in range(20):
        (root / f"f{i}.bin").parent.mkdir(parents=True, exist_ok=True)
        (root / f"f{i}.bin").write_bytes(os.urandom(100 + i))
    (tmp_path / "link").symlink_to(root)
    target = tmp_path / "target"
    backup(root, target=target, name="ckpt")
    hashed = []
    real_hash = mlbackup.engine.hash_file_and_prefix
    monkeypatch.setattr(
        mlbackup.engine,
        "hash_file_and_prefix",
        lambda path, *a, **k: hashed.append(path) or real_hash(path, *a, **k),
    )
    monkeypatch.chdir(tmp_path / "work")
    for named in ("ckpt", "./ckpt/", "../link", str(root)):
        again = backup(named, target=target, name="ckpt")
        assert again.status is BackupStatus.UNCHANGED, named
        assert hashed == [], f"{named!r}: {len(hashed)} files read again"
