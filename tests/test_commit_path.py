"""The steady state of a callback: a process backing up a name whose previous version it
committed itself. Where commits are create-only it starts from that version without listing
the versions, and a run that keeps none of its files lists no objects either before the
commit; another writer's newer version, or bytes deleted behind its back, change nothing of
what a run commits."""

import pytest
from conftest import empty_store

from mlbackup import BackupStatus, backup, open_target, restore
from mlbackup.layout import object_key

STORES = ["file", "s3", "gs"]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_changed_file_is_committed_with_two_requests(s3_target, s3_proxy, tmp_path):
    """A study.db after a trial: its object and its manifest, nothing read before."""
    db = _write(tmp_path / "study.db", b"trial 0" * 1000)
    for trial in range(1, 6):  # past the direct path's warm-up
        backup(db, target=s3_target, name="study")
        _write(db, f"trial {trial}".encode() * 1000)
    s3_proxy.clear()
    result = backup(db, target=s3_target, name="study")
    assert result.version == 6
    commit = next(
        i for i, r in enumerate(s3_proxy.log) if r.method == "PUT" and "/manifests/" in r.path
    )
    until_commit = [(r.method, r.path.split("/")[-2]) for r in s3_proxy.log[: commit + 1]]
    assert until_commit == [("PUT", "objects"), ("PUT", "manifests")], until_commit
    restore("study", tmp_path / "back.db", target=s3_target)
    assert (tmp_path / "back.db").read_bytes() == db.read_bytes()


@pytest.mark.parametrize("kind", STORES)
def test_another_writers_version_in_between_takes_the_next_number(request, kind, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    ours, theirs = open_target(url, **options), open_target(url, **options)
    db = _write(tmp_path / "ours.db", b"ours 1")
    backup(db, target=ours, name="study")
    backup(_write(tmp_path / "theirs.db", b"theirs 2"), target=theirs, name="study")
    result = backup(_write(db, b"ours 3"), target=ours, name="study")
    assert (result.status, result.version) == (BackupStatus.COPIED, 3)
    for version, data in {1: b"ours 1", 2: b"theirs 2", 3: b"ours 3"}.items():
        restore("study", tmp_path / f"v{version}", target=ours, version=version)
        assert (tmp_path / f"v{version}").read_bytes() == data
    # And the next run starts from version 3 again.
    assert backup(_write(db, b"ours 4"), target=ours, name="study").version == 4


@pytest.mark.parametrize("kind", STORES)
def test_an_unchanged_source_after_another_writer_is_the_newest_again(request, kind, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    ours, theirs = open_target(url, **options), open_target(url, **options)
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "weights.bin", b"ours")
    backup(run, target=ours, name="ckpt")
    other = tmp_path / "other"
    other.mkdir()
    _write(other / "weights.bin", b"theirs")
    backup(other, target=theirs, name="ckpt")
    result = backup(run, target=ours, name="ckpt")  # nothing changed here since version 1
    assert (result.status, result.version) == (BackupStatus.COPIED, 3)
    restore("ckpt", tmp_path / "newest", target=open_target(url, **options))
    assert (tmp_path / "newest" / "weights.bin").read_bytes() == b"ours"
    assert backup(run, target=ours, name="ckpt").status is BackupStatus.UNCHANGED


@pytest.mark.parametrize("kind", STORES)
def test_bytes_deleted_behind_its_back_are_never_reused_unchecked(request, kind, tmp_path):
    """The file was only touched (same bytes, new mtime), and its object deleted meanwhile:
    without a listing the run must not list that object in its version unchecked."""
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    db = _write(tmp_path / "study.db", b"the same bytes")
    backup(db, target=target, name="study")
    target.backend.delete(object_key(target.manifest("study").files[0].hash))
    _write(db, b"the same bytes")  # a new mtime
    result = backup(db, target=target, name="study")
    assert result.status is BackupStatus.UNCHANGED
    target.verify("study")  # the newest restores whole again
    restore("study", tmp_path / "back.db", target=open_target(url, **options))
    assert (tmp_path / "back.db").read_bytes() == b"the same bytes"
