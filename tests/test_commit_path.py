"""The steady state of a callback: a process backing up a name whose previous version it
committed itself, and which keeps none of its files (a study.db after a trial). It sends its
files while it lists the versions, lists no objects before its commit, and commits only once
the listing shows its version still the newest; another writer's versions, retention, or bytes
deleted behind its back change nothing of what a run commits or reports."""

import pytest
from conftest import empty_store

from mlbackup import BackupStatus, backup, open_target, restore
from mlbackup.layout import object_key

STORES = ["file", "drive", "gdrive", "s3", "gs"]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_changed_file_is_committed_after_one_round_trip_more(s3_target, s3_proxy, tmp_path):
    """A study.db after a trial: its object goes up while the versions are listed, then the
    manifest; no manifest read and no object listing before the commit."""
    import urllib.parse

    db = _write(tmp_path / "study.db", b"trial 0" * 1000)
    for trial in range(1, 6):  # the callback's steady state: versions it committed itself
        backup(db, target=s3_target, name="study")
        _write(db, f"trial {trial}".encode() * 1000)
    s3_proxy.clear()
    result = backup(db, target=s3_target, name="study")
    assert result.version == 6
    log = list(s3_proxy.log)
    commit = next(i for i, r in enumerate(log) if r.method == "PUT" and "/manifests/" in r.path)
    before = log[:commit]
    assert sorted(r.method for r in before) == ["GET", "PUT"], before
    prefixes = sorted(
        urllib.parse.parse_qs(urllib.parse.urlsplit(r.path).query)["prefix"][0].split("/")[-2]
        for r in before
        if r.method == "GET"
    )
    assert prefixes == ["manifests"], prefixes
    assert "/objects/" in next(r for r in before if r.method == "PUT").path
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
def test_bytes_deleted_behind_its_back_are_put_back_and_said_so(request, kind, tmp_path):
    """The file was only touched (same bytes, new mtime), and its object deleted meanwhile:
    without a listing the run still finds it gone, sends it again and reports it healed."""
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    run = tmp_path / "run"
    run.mkdir()
    db = _write(run / "study.db", b"the same bytes")
    _write(run / "log.txt", b"trial 1")
    backup(run, target=target, name="study")
    stored = target.manifest("study").by_path()["study.db"].hash
    target.backend.delete(object_key(stored))
    _write(db, b"the same bytes")  # a new mtime
    _write(run / "log.txt", b"trial 2")
    result = backup(run, target=target, name="study")
    assert (result.status, result.version) == (BackupStatus.COPIED, 2)
    assert result.healed == ("study.db",) and result.lost == ()
    assert (result.files_sent, result.bytes_sent) == (2, len(b"the same bytes" + b"trial 2"))
    target.verify("study")
    target.verify("study", 1)  # its bytes are back for version 1 too
    _write(db, b"the same bytes")
    again = backup(run, target=target, name="study")
    assert (again.status, again.version, again.healed) == (BackupStatus.UNCHANGED, 2, ())


@pytest.mark.parametrize("kind", STORES)
def test_a_number_retention_freed_is_not_taken_again(request, kind, tmp_path):
    """Another writer commits versions 2 and 3 and keeps only the last: number 2 is free
    again, and the next version is still 4, the newest, which its own retention keeps."""
    url, options = empty_store(request, kind, tmp_path)
    ours, theirs = open_target(url, **options), open_target(url, **options)
    db = _write(tmp_path / "ours.db", b"ours 1")
    backup(db, target=ours, name="study")
    for data in (b"theirs 2", b"theirs 3"):
        backup(_write(tmp_path / "theirs.db", data), target=theirs, name="study", keep_last=1)
    assert ours.versions("study") == [3]
    result = backup(_write(db, b"ours 4"), target=ours, name="study", keep_last=1)
    assert (result.status, result.version) == (BackupStatus.COPIED, 4)
    assert ours.versions("study") == [4]
    restore("study", tmp_path / "newest.db", target=open_target(url, **options))
    assert (tmp_path / "newest.db").read_bytes() == b"ours 4"


@pytest.mark.parametrize("kind", STORES)
def test_a_dropped_own_version_is_not_the_base(request, kind, tmp_path, caplog):
    """Our version 1 was dropped by another writer's retention (and its objects swept): the
    run plans from the newest version, and reports nothing healed or lost of version 1."""
    from mlbackup.commit import collect_garbage

    url, options = empty_store(request, kind, tmp_path)
    ours, theirs = open_target(url, **options), open_target(url, **options)
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "keep.bin", b"kept")
    _write(run / "study.db", b"ours 1")
    backup(run, target=ours, name="study")
    other = tmp_path / "other"
    other.mkdir()
    _write(other / "study.db", b"theirs 2")
    backup(other, target=theirs, name="study", keep_last=1)
    collect_garbage(theirs, grace=-1)  # the sweep: version 1's objects are gone
    _write(run / "study.db", b"ours 3")
    result = backup(run, target=ours, name="study")
    assert (result.status, result.version) == (BackupStatus.COPIED, 3)
    assert (result.healed, result.lost, result.damaged_versions) == ((), (), ())
    assert "behind mlbackup's back" not in caplog.text
    ours.verify("study")
    restore("study", tmp_path / "back", target=open_target(url, **options))
    assert (tmp_path / "back" / "keep.bin").read_bytes() == b"kept"


@pytest.mark.parametrize("kind", STORES)
def test_a_touched_file_matching_the_newest_is_no_new_version(request, kind, tmp_path):
    """Another writer's newest version holds our bytes again: a run that only touched the
    file makes no new version."""
    url, options = empty_store(request, kind, tmp_path)
    ours, theirs = open_target(url, **options), open_target(url, **options)
    db = _write(tmp_path / "ours.db", b"same")
    backup(db, target=ours, name="study")
    backup(_write(tmp_path / "theirs.db", b"other"), target=theirs, name="study")
    backup(_write(tmp_path / "theirs.db", b"same"), target=theirs, name="study")
    result = backup(_write(db, b"same"), target=ours, name="study")  # a new mtime
    assert (result.status, result.version) == (BackupStatus.UNCHANGED, 3)


@pytest.mark.parametrize("kind", STORES)
def test_a_changed_file_whose_old_bytes_are_gone_is_reported_lost(request, kind, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "a.bin", b"a 1")
    _write(run / "study.db", b"db 1")
    backup(run, target=target, name="study")
    target.backend.delete(object_key(target.manifest("study").by_path()["a.bin"].hash))
    _write(run / "a.bin", b"a 2")
    _write(run / "study.db", b"db 2")
    result = backup(run, target=target, name="study")
    assert (result.version, result.lost, result.healed) == (2, ("a.bin",), ())
    assert result.damaged_versions == (1,)


def test_planning_again_sends_nothing_twice(s3_server, s3_bucket, s3_proxy, tmp_path):
    """Another writer's version came since ours: the run, which sent its file while it
    listed the versions, plans again from that one without sending the object again, and
    reports the bytes it sent."""
    options = s3_server.storage_options(endpoint_url=s3_proxy.endpoint_url)
    ours = open_target(f"s3://{s3_bucket}/run", **options)
    theirs = open_target(f"s3://{s3_bucket}/run", **options)
    db = _write(tmp_path / "ours.db", b"ours 1")
    backup(db, target=ours, name="study")
    backup(_write(tmp_path / "theirs.db", b"theirs 2"), target=theirs, name="study")
    s3_proxy.clear()
    result = backup(_write(db, b"ours 3 " * 100), target=ours, name="study")
    assert (result.status, result.version, result.bytes_sent) == (BackupStatus.COPIED, 3, 700)
    sent = [r for r in s3_proxy.log if r.method == "PUT" and "/objects/" in r.path]
    assert len(sent) == 1, sent
    restore("study", tmp_path / "v3.db", target=ours)
    assert (tmp_path / "v3.db").read_bytes() == b"ours 3 " * 100


def test_a_run_that_planned_again_and_failed_leaves_nothing(tmp_path, monkeypatch):
    """Interrupted in its second plan (before any commit): what its first one sent is taken
    back too, as a run that failed leaves nothing behind."""
    import mlbackup.engine

    url = str(tmp_path / "store")
    ours, theirs = open_target(url), open_target(url)
    db = _write(tmp_path / "ours.db", b"ours 1")
    backup(db, target=ours, name="study")
    backup(_write(tmp_path / "theirs.db", b"theirs 2"), target=theirs, name="study")
    real_send_all = mlbackup.engine._send_all
    calls = []

    def interrupted_the_second_time(transfer, todo):
        calls.append(transfer)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_send_all(transfer, todo)

    monkeypatch.setattr(mlbackup.engine, "_send_all", interrupted_the_second_time)
    before = ours.stored_objects()
    _write(db, b"ours 3")
    with pytest.raises(KeyboardInterrupt):
        backup(db, target=ours, name="study")
    assert len(calls) == 2, "it planned again"
    assert ours.stored_objects() == before  # what the first plan sent was taken back


def test_a_replan_never_reuses_an_object_it_only_found(tmp_path, monkeypatch):
    """The first plan found a touched file's object still there (of our version, which the
    other writer's retention dropped); a sweep collects it before the second plan, which must
    not list it unchecked."""
    import mlbackup.engine
    from mlbackup.commit import collect_garbage

    url = str(tmp_path / "store")
    ours, theirs = open_target(url), open_target(url)
    db = _write(tmp_path / "ours.db", b"same bytes")
    backup(db, target=ours, name="study")
    backup(_write(tmp_path / "theirs.db", b"theirs"), target=theirs, name="study", keep_last=1)
    real_send_all = mlbackup.engine._send_all
    calls = []

    def swept_after_the_first_plan(transfer, todo):
        sent = real_send_all(transfer, todo)
        calls.append(transfer)
        if len(calls) == 1:
            assert collect_garbage(theirs, grace=-1) >= 1  # our version 1's object goes
        return sent

    monkeypatch.setattr(mlbackup.engine, "_send_all", swept_after_the_first_plan)
    result = backup(_write(db, b"same bytes"), target=ours, name="study")  # only touched
    assert len(calls) == 2 and (result.status, result.version) == (BackupStatus.COPIED, 3)
    ours.verify("study")  # its object is there: sent again, not reused unchecked


def test_a_failed_listing_after_the_commit_fails_nothing(tmp_path, monkeypatch, caplog):
    from mlbackup.errors import TargetError

    target = open_target(tmp_path / "store")
    db = _write(tmp_path / "study.db", b"trial 1")
    backup(db, target=target, name="study")

    def unlistable():
        raise TargetError("the listing failed")

    monkeypatch.setattr(target, "stored_objects", unlistable)
    result = backup(_write(db, b"trial 2"), target=target, name="study")
    assert (result.status, result.version) == (BackupStatus.COPIED, 2)
    assert "could not list the objects" in caplog.text
