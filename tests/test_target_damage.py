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
