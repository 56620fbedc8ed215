"""Objects deleted behind mlbackup's back (a person tidying the Drive folder, a lifecycle rule,
a sync tool), on every backend: doctor names every version that no longer restores whole, and
the next backup puts back the bytes the source still holds and names those it cannot."""

import pytest
from conftest import empty_store

from mlbackup import BackupStatus, IntegrityError, backup, open_target, restore
from mlbackup.doctor import run_doctor
from mlbackup.layout import object_key
from mlbackup.testing.contract import tree_snapshot


def two_versions(target, tmp_path):
    """A checkpoint folder backed up twice: config.json in both versions, weights.bin changed."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"lr": 0.1}')
    (ckpt / "weights.bin").write_bytes(b"first weights")
    backup(ckpt, target=target, name="ckpt")
    (ckpt / "weights.bin").write_bytes(b"second weights")
    backup(ckpt, target=target, name="ckpt")
    return ckpt


@pytest.mark.parametrize("kind", ["file", "drive", "gdrive", "s3", "gs"])
def test_doctor_names_each_version_a_deleted_object_costs(request, kind, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    two_versions(target, tmp_path)
    assert run_doctor(url, options).damaged == {}

    def stored(version, path):
        return next(e.hash for e in target.manifest("ckpt", version).files if e.path == path)

    target.backend.delete(object_key(stored(1, "weights.bin")))  # only version 1 lists it
    report = run_doctor(url, options, write_test=False)
    assert report.damaged == {"ckpt": [1]} and not report.ok
    target.backend.delete(object_key(stored(2, "config.json")))  # both versions list it
    report = run_doctor(url, options, write_test=False)
    assert report.damaged == {"ckpt": [1, 2]}
    messages = [f.message for f in report.findings if f.check == "missing"]
    assert len(messages) == 2
    assert "version 1" in messages[0] and "2 of its 2 files" in messages[0]
    assert "version 2" in messages[1] and "(config.json)" in messages[1]


@pytest.mark.parametrize("kind", ["file", "drive", "gdrive", "s3", "gs"])
def test_the_next_backup_puts_back_what_the_source_still_holds(request, kind, tmp_path, caplog):
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    ckpt = two_versions(target, tmp_path)
    by_path = {e.path: e.hash for e in target.manifest("ckpt", 1).files}
    target.backend.delete(object_key(by_path["weights.bin"]))  # version 1's own bytes
    target.backend.delete(object_key(by_path["config.json"]))  # in both versions
    with pytest.raises(IntegrityError) as newest:
        target.verify("ckpt")
    assert newest.value.problems == ("config.json: missing from the target",)
    with pytest.raises(IntegrityError) as older:
        target.verify("ckpt", 1)
    assert [p.split(":")[0] for p in older.value.problems] == ["config.json", "weights.bin"]

    result = backup(ckpt, target=target, name="ckpt")
    assert (result.status, result.version) == (BackupStatus.UNCHANGED, 2)  # no new version
    assert result.healed == ("config.json",) and result.lost == ()
    assert "put back from the source: config.json" in caplog.text
    target.verify("ckpt")  # the newest restores whole again
    restore("ckpt", tmp_path / "back", target=target)
    assert tree_snapshot(tmp_path / "back") == tree_snapshot(ckpt)
    assert run_doctor(url, options, write_test=False).damaged == {"ckpt": [1]}
    with pytest.raises(IntegrityError, match=r"weights\.bin: missing"):
        target.verify("ckpt", 1)

    # The source changes before the next run: the bytes version 2 lists are gone for good.
    target.backend.delete(object_key(target.manifest("ckpt", 2).by_path()["weights.bin"].hash))
    (ckpt / "weights.bin").write_bytes(b"third weights")
    result = backup(ckpt, target=target, name="ckpt")
    assert result.version == 3 and result.healed == () and result.lost == ("weights.bin",)
    assert "does not restore them: weights.bin" in caplog.text


def test_the_command_line_says_what_it_put_back_and_what_is_lost(tmp_path, capsys):
    from mlbackup.cli import main

    out = tmp_path / "model.bin"
    out.write_bytes(b"weights")
    target = tmp_path / "target"
    assert main(["backup", str(out), "--to", str(target)]) == 0
    stored = open_target(target).manifest("model.bin").files[0].hash
    open_target(target).backend.delete(object_key(stored))
    capsys.readouterr()
    assert main(["backup", str(out), "--to", str(target)]) == 0
    assert "put back model.bin (its stored bytes were gone)" in capsys.readouterr().out
    open_target(target).backend.delete(object_key(stored))
    out.write_bytes(b"new weights")
    assert main(["backup", str(out), "--to", str(target)]) == 0
    assert "LOST model.bin: the stored bytes of its previous version" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["file", "drive", "gdrive", "s3", "gs"])
def test_restore_skips_a_newest_version_that_no_longer_restores(request, kind, tmp_path, caplog):
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    ckpt = two_versions(target, tmp_path)
    first = tmp_path / "first"
    restore("ckpt", first, target=target, version=1)
    newest = target.manifest("ckpt", 2).by_path()["weights.bin"].hash
    target.backend.delete(object_key(newest))  # only version 2 lists it

    result = restore("ckpt", tmp_path / "back", target=target)
    assert (result.version, result.skipped_versions) == (1, (2,))
    assert tree_snapshot(tmp_path / "back") == tree_snapshot(first)
    assert "restored version 1; skipped version 2, not whole any more" in caplog.text
    assert "weights.bin: missing from the target" in caplog.text
    with pytest.raises(IntegrityError, match="version 2"):  # asked for by number: no fallback
        restore("ckpt", tmp_path / "asked", target=target, version=2)
    assert not (tmp_path / "asked").exists()

    # With every version damaged, nothing is placed and the error names what it checked.
    target.backend.delete(object_key(target.manifest("ckpt", 1).by_path()["config.json"].hash))
    checked = r"no version .* restores whole \(checked versions 2, 1\)"
    with pytest.raises(IntegrityError, match=checked):
        restore("ckpt", tmp_path / "none", target=target)
    assert not (tmp_path / "none").exists() and ckpt.exists()


def test_restore_if_missing_restores_the_newest_whole_version_or_raises(tmp_path):
    from mlbackup import RestoreStatus, restore_if_missing

    out = tmp_path / "study.db"
    target = open_target(tmp_path / "target")
    for value in (b"one", b"two"):
        out.write_bytes(value)
        backup(out, target=target, name="study.db")
    out.unlink()
    target.backend.delete(object_key(target.manifest("study.db", 2).files[0].hash))
    result = restore_if_missing(out, target=target, name="study.db")
    assert (result.status, result.version, result.skipped_versions) == (
        RestoreStatus.RESTORED, 1, (2,),
    )  # fmt: skip
    assert out.read_bytes() == b"one"
    out.unlink()
    target.backend.delete(object_key(target.manifest("study.db", 1).files[0].hash))
    with pytest.raises(IntegrityError, match=r"no version of backup 'study\.db'"):
        restore_if_missing(out, target=target, name="study.db")  # never "nothing to restore"
    assert not out.exists()


def test_a_damaged_newest_manifest_is_skipped_too(tmp_path):
    target = open_target(tmp_path / "target")
    ckpt = two_versions(target, tmp_path)
    key = target.manifest_key_of("ckpt", 2)
    (tmp_path / "target" / key).write_bytes(b"{not json")
    result = restore("ckpt", tmp_path / "back", target=target)
    assert (result.version, result.skipped_versions) == (1, (2,))
    assert (tmp_path / "back" / "weights.bin").read_bytes() == b"first weights"
    assert ckpt.exists()


def test_a_spurious_404_does_not_make_restore_fall_back(request, tmp_path):
    """S3 answers 404 once for an object that is there: the listing shows it, so restore reads
    the newest version again instead of skipping it."""
    from mlbackup.testing.fault_proxy import FaultProxy

    spec = empty_store(request, "s3", tmp_path)
    with FaultProxy(spec.endpoint) as proxy:
        target = open_target(spec.url, **{**spec.options, "endpoint_url": proxy.endpoint_url})
        ckpt = two_versions(target, tmp_path)
        weights = object_key(target.manifest("ckpt", 2).by_path()["weights.bin"].hash)
        no_such_key = b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"
        proxy.log.clear()
        proxy.answer_matching(weights, 404, no_such_key)
        result = restore("ckpt", tmp_path / "back", target=target)
        # Read once (404), then again after the listing (a ranged read: 206).
        assert [r.status for r in proxy.log if weights in r.path] == [404, 206]
    assert (result.version, result.skipped_versions) == (2, ())
    assert tree_snapshot(tmp_path / "back") == tree_snapshot(ckpt)


def test_ls_and_status_mark_the_versions_that_no_longer_restore(tmp_path, capsys):
    from mlbackup.cli import main
    from mlbackup.status import backup_status

    target = open_target(tmp_path / "target")
    two_versions(target, tmp_path)
    target.backend.delete(object_key(target.manifest("ckpt", 1).by_path()["weights.bin"].hash))
    assert [i.missing_files for i in target.list("ckpt")] == [1, 0]
    assert [r.damaged_versions for r in backup_status(target)] == [[1]]
    assert main(["ls", "--from", str(tmp_path / "target")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert "DAMAGED: the bytes of 1 files are gone" in rows[1] and "DAMAGED" not in rows[2]
    assert main(["status", "--from", str(tmp_path / "target")]) == 0
    assert "DAMAGED ckpt version 1: it no longer restores whole" in capsys.readouterr().out
    assert main(["backup", str(tmp_path / "ckpt"), "--to", str(tmp_path / "target")]) == 0
    assert "DAMAGED version 1: it no longer restores whole" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["file", "drive", "gdrive", "s3", "gs"])
def test_doctor_repair_from_puts_back_what_a_local_copy_holds(request, kind, tmp_path):
    url, options = empty_store(request, kind, tmp_path)
    target = open_target(url, **options)
    ckpt = two_versions(target, tmp_path)
    v1 = target.manifest("ckpt", 1).by_path()
    target.backend.delete(object_key(v1["weights.bin"].hash))  # only version 1: "first weights"
    target.backend.delete(object_key(v1["config.json"].hash))  # in both versions
    copy = tmp_path / "copy"
    (copy / "nested").mkdir(parents=True)
    (copy / "nested" / "cfg.json").write_bytes((ckpt / "config.json").read_bytes())  # any name
    (copy / "other.txt").write_text('{"lr": 0.2}')  # the same size, other bytes: not stored

    report = run_doctor(url, options, write_test=False, repair_from=copy)
    assert report.put_back == 1 and report.damaged == {"ckpt": [1]}
    repaired = next(f.message for f in report.findings if f.message.startswith("put back"))
    assert "no copy there of 1 files: 'ckpt' version 1 weights.bin" in repaired
    target.verify("ckpt", 2)
    (copy / "w.bin").write_bytes(b"first weights")
    report = run_doctor(url, options, write_test=False, repair_from=copy)
    assert report.put_back == 1 and report.damaged == {} and report.ok
    target.verify("ckpt", 1)
    assert len(target.backend.list_dir(".mlbackup/objects")) == 3  # other.txt never stored


def test_doctor_repair_from_on_the_command_line(tmp_path, capsys):
    from mlbackup.cli import main

    out = tmp_path / "model.bin"
    out.write_bytes(b"weights")
    target = tmp_path / "target"
    assert main(["backup", str(out), "--to", str(target)]) == 0
    open_target(target).backend.delete(
        object_key(open_target(target).manifest("model.bin").files[0].hash)
    )
    assert main(["doctor", "--from", str(target), "--no-write-test"]) == 1
    assert "--repair-from FOLDER" in capsys.readouterr().out
    assert main(["doctor", "--from", str(target), "--repair-from", str(tmp_path / "nope")]) == 1
    assert "nothing repaired: " in capsys.readouterr().out
    assert main(["doctor", "--from", str(target), "--repair-from", str(tmp_path)]) == 0
    assert "put back 1 missing objects from" in capsys.readouterr().out
