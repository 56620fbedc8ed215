"""The Colab Drive mount backend, against a temp folder standing in for /content/drive."""

import errno
import logging

import mlbackup_drive
import pytest

from mlbackup import (
    BackendUnavailableError,
    BackgroundBackup,
    BackupStatus,
    TargetError,
    TargetMissingError,
    backup,
    immediate_backup_if_needed,
    open_target,
    restore,
)
from mlbackup.retry import RetryPolicy
from mlbackup.testing.faulty_fs import faulty_target

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.0)


@pytest.fixture
def mount(drive_mount):
    return drive_mount


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "work" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(b"onnx" * 100)
    return path


def test_url_is_a_folder_of_my_drive(mount, model, tmp_path):
    target = open_target("drive://runs/exp1")
    assert target.url == "drive://runs/exp1"
    backup(model, target=target, name="model.onnx")
    folder = mount / "MyDrive" / "runs" / "exp1"
    assert (folder / ".mlbackup" / "objects").is_dir()
    # No browsable copy by default: it would take the file's size again from the quota.
    assert not (folder / "model.onnx").exists()
    restore("model.onnx", tmp_path / "back.onnx", target=target)
    assert (tmp_path / "back.onnx").read_bytes() == model.read_bytes()
    model.write_bytes(b"a new model")
    backup(model, target=open_target("drive://runs/exp1", browsable=True), name="model.onnx")
    assert (folder / "model.onnx").read_bytes() == b"a new model"  # a copy, when asked for


def test_unmounted_drive_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBACKUP_DRIVE_MOUNT_ROOT", str(tmp_path / "nothing-here"))
    with pytest.raises(TargetMissingError) as caught:
        open_target("drive://runs/exp1")
    message = str(caught.value)
    assert "not mounted" in message and "drive.mount(" in message
    assert "MLBACKUP_DRIVE_MOUNT_ROOT" in message and "gdrive://" in message


def test_bad_urls_are_refused(mount):
    for url in ("drive://runs/../../etc", "drive://runs//x", "drive://runs?x=1"):
        with pytest.raises(ValueError, match="drive"):
            open_target(url)


def test_backups_to_the_mount_are_reported_staged(mount, model, tmp_path):
    result = backup(model, target=open_target("drive://runs/exp1"), name="model.onnx")
    assert result.committed and result.staged
    assert result.to_dict()["staged"] is True
    local = backup(model, target=open_target(tmp_path / "local"), name="model.onnx")
    assert not local.staged
    with BackgroundBackup(open_target("drive://runs/exp1")) as background:
        model.write_bytes(b"v2")
        background.submit(model, name="model.onnx").result()
        assert background.status()["model.onnx"].staged


def test_a_source_already_on_the_mount_is_not_copied(mount):
    on_drive = mount / "MyDrive" / "outputs" / "study.db"
    on_drive.parent.mkdir(parents=True)
    on_drive.write_bytes(b"db")
    result = immediate_backup_if_needed(on_drive, target=open_target("drive://runs/exp1"))
    assert result.status is BackupStatus.SKIPPED_ALREADY_ON_TARGET
    assert not (mount / "MyDrive" / "runs").exists()


def test_a_dropped_mount_says_remount(mount, model):
    target, faults = faulty_target("drive://runs/exp1", retry=FAST_RETRY)
    # A FUSE mount that dropped answers every call with ENOTCONN.
    faults.fail("mv", errno.ENOTCONN, times=10)
    with pytest.raises(BackendUnavailableError, match=r"disconnected \(ENOTCONN\).*remount"):
        backup(model, target=target, name="model.onnx")
    assert faults.count("mv", faulted=True) == FAST_RETRY.attempts


def test_eio_on_the_mount_names_the_quota(mount, model):
    target, faults = faulty_target("drive://runs/exp1", retry=FAST_RETRY)
    faults.fail("mv", errno.EIO)
    with pytest.raises(TargetError, match="Drive quota is full"):
        backup(model, target=target, name="model.onnx")
    assert faults.count("mv") == 1  # permanent: not retried


def test_many_small_files_warn(mount, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(mlbackup_drive.DriveMountBackend, "many_files_warning", 5)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        (folder / f"f{i}.txt").write_text(str(i))
    with caplog.at_level(logging.WARNING):
        backup(folder, target=open_target("drive://runs/exp1"), name="many")
    assert "holds 6 files" in caplog.text and "slow with many small files" in caplog.text


def test_flush_is_a_no_op_off_colab():
    assert mlbackup_drive.flush() is False


def test_doctor_says_writes_are_staged(mount, capsys):
    from mlbackup.cli import main

    assert main(["doctor", "--from", "drive://runs/exp1"]) == 0
    assert "staged on this machine" in capsys.readouterr().out


def test_staged_backups_are_confirmed_through_the_drive_api(
    mount, model, drive_api, gdrive_options
):
    target = open_target("drive://runs/exp1")
    backup(model, target=target, name="model.onnx")
    api = gdrive_options
    pending = mlbackup_drive.unconfirmed(target, "model.onnx", **api)
    assert "model.onnx" in pending  # Drive has nothing yet
    # Drive's sync catches up: every file of the mount appears in My Drive, byte for byte.
    folders = {"": drive_api.root_id}
    my_drive = mount / "MyDrive"
    for path in sorted(my_drive.rglob("*")):
        rel = path.relative_to(my_drive)
        parent = folders[str(rel.parent) if str(rel.parent) != "." else ""]
        if path.is_dir():
            folders[str(rel)] = drive_api.add_file(parent, path.name, folder=True)
        elif ".mlbackup/tmp" not in str(rel):
            drive_api.add_file(parent, path.name, path.read_bytes())
    assert mlbackup_drive.unconfirmed(target, "model.onnx", **api) == []
