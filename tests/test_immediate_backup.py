"""Every status of the standardized call, and what it leaves on the target."""

import os
from pathlib import Path

from mlbackup_drive import is_drive_path

import mlbackup.config
from mlbackup import (
    BackupConfig,
    BackupStatus,
    backup,
    immediate_backup_if_needed,
    is_on_mounted_store,
    is_on_target,
    load_config,
    open_target,
    restore_if_missing,
)
from mlbackup.results import RestoreStatus


def test_copied_then_unchanged(project, target_dir):
    out = project / "outputs" / "hpo" / "metrics.json"
    out.parent.mkdir(parents=True)
    out.write_text("{}")
    first = immediate_backup_if_needed(out, target=target_dir)
    assert first.status is BackupStatus.COPIED
    assert first.name == "outputs/hpo/metrics.json"
    assert (target_dir / "outputs" / "hpo" / "metrics.json").read_text() == "{}"
    second = immediate_backup_if_needed(out, target=target_dir)
    assert second.status is BackupStatus.UNCHANGED
    assert (second.version, second.files_sent, second.bytes_sent) == (1, 0, 0)


def test_disabled_by_argument_and_by_config(project, target_dir, monkeypatch):
    out = project / "model.onnx"
    out.write_bytes(b"x")
    r = immediate_backup_if_needed(out, target=target_dir, backup_enabled=False)
    assert r.status is BackupStatus.SKIPPED_DISABLED
    monkeypatch.setenv("MLBACKUP_ENABLED", "false")
    assert (
        immediate_backup_if_needed(out, target=target_dir).status is BackupStatus.SKIPPED_DISABLED
    )
    # The argument wins over the environment.
    r = immediate_backup_if_needed(out, target=target_dir, backup_enabled=True)
    assert r.status is BackupStatus.COPIED
    assert (target_dir / "model.onnx").read_bytes() == b"x"


def test_missing_path_is_skipped_not_raised(project, target_dir):
    r = immediate_backup_if_needed(project / "not-yet.db", target=target_dir)
    assert r.status is BackupStatus.SKIPPED_MISSING
    assert "not found" in r.reason
    assert not target_dir.exists()


def test_path_inside_the_target_is_skipped(project, target_dir):
    target = open_target(target_dir)
    inside = target_dir / "outputs" / "study.db"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"already there")
    assert is_on_target(inside, target)
    r = immediate_backup_if_needed(inside, target=target)
    assert r.status is BackupStatus.SKIPPED_ALREADY_ON_TARGET
    assert target.names() == []


def test_drive_path_is_skipped(project, target_dir, monkeypatch, tmp_path):
    mount = tmp_path / "drive"
    monkeypatch.setenv("MLBACKUP_DRIVE_MOUNT_ROOT", str(mount))
    on_drive = mount / "MyDrive" / "runs" / "model.onnx"
    on_drive.parent.mkdir(parents=True)
    on_drive.write_bytes(b"onnx")
    assert is_drive_path(on_drive) and is_on_mounted_store(on_drive)
    assert not is_drive_path(project) and not is_on_mounted_store(project)
    r = immediate_backup_if_needed(on_drive, target=target_dir)
    assert r.status is BackupStatus.SKIPPED_ALREADY_ON_TARGET
    assert not target_dir.exists()


def test_url_is_skipped(target_dir):
    r = immediate_backup_if_needed("gs://bucket/run/study.db", target=target_dir)
    assert r.status is BackupStatus.SKIPPED_ALREADY_ON_TARGET


def test_explicit_backup_of_a_drive_path_is_allowed(project, target_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MLBACKUP_DRIVE_MOUNT_ROOT", str(tmp_path / "drive"))
    on_drive = tmp_path / "drive" / "MyDrive" / "notes.txt"
    on_drive.parent.mkdir(parents=True)
    on_drive.write_text("copy me anyway")
    assert backup(on_drive, target=target_dir).status is BackupStatus.COPIED


def test_thousand_files_rerun_sends_zero_bytes(project, target_dir):
    folder = project / "outputs" / "shards"
    for i in range(1000):
        path = folder / f"part{i // 100}" / f"shard-{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(64))
    first = immediate_backup_if_needed(folder, target=target_dir)
    assert (first.files_sent, first.bytes_sent) == (1000, 64_000)
    again = immediate_backup_if_needed(folder, target=target_dir)
    assert again.status is BackupStatus.UNCHANGED
    assert (again.files_sent, again.bytes_sent) == (0, 0)


def test_touched_but_identical_file_is_not_resent(project, target_dir):
    out = project / "weights.bin"
    out.write_bytes(b"w" * 1000)
    immediate_backup_if_needed(out, target=target_dir)
    os.utime(out, ns=(1, 1))
    r = immediate_backup_if_needed(out, target=target_dir)
    assert r.status is BackupStatus.UNCHANGED
    assert r.bytes_sent == 0


def test_default_target_from_environment(project, tmp_path, monkeypatch):
    monkeypatch.setenv("MLBACKUP_TARGET", str(tmp_path / "env-target"))
    out = project / "a.txt"
    out.write_text("a")
    r = immediate_backup_if_needed(out)
    assert r.target == (tmp_path / "env-target").as_uri()
    assert (tmp_path / "env-target" / "a.txt").read_text() == "a"


def test_default_target_without_configuration_is_local_and_warns(project, caplog, monkeypatch):
    monkeypatch.setattr(mlbackup.config, "_warned_local_default", False)
    out = project / "a.txt"
    out.write_text("a")
    r = immediate_backup_if_needed(out)
    assert r.status is BackupStatus.COPIED
    expected = Path(os.environ["XDG_DATA_HOME"]) / "mlbackup" / "targets" / "project"
    assert r.target == expected.as_uri()
    assert "does NOT survive the loss of this machine" in caplog.text
    caplog.clear()
    immediate_backup_if_needed(out)
    assert "does NOT survive" not in caplog.text  # once per process


def test_default_target_is_the_drive_mount_when_mounted(project, tmp_path, monkeypatch):
    mount = tmp_path / "drive"
    (mount / "MyDrive").mkdir(parents=True)
    monkeypatch.setenv("MLBACKUP_DRIVE_MOUNT_ROOT", str(mount))
    url = load_config().target_url()
    assert url == "drive://mlbackup/project"  # the mount's backend: staged writes reported
    assert open_target(url).local_root == mount / "MyDrive" / "mlbackup" / "project"


def test_restore_if_missing_statuses(project, target_dir):
    out = project / "outputs" / "study.bin"
    config = BackupConfig(target=str(target_dir), source_root=project)
    assert restore_if_missing(out, config=config).status is RestoreStatus.SKIPPED_NO_BACKUP
    out.parent.mkdir()
    out.write_bytes(b"trials")
    immediate_backup_if_needed(out, config=config)
    assert restore_if_missing(out, config=config).status is RestoreStatus.SKIPPED_PRESENT
    out.unlink()
    restored = restore_if_missing(out, config=config)
    assert restored.status is RestoreStatus.RESTORED
    assert out.read_bytes() == b"trials"


def test_a_mistyped_path_is_skipped_with_a_log_line_that_shows_the_folder(tmp_path, caplog):
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "model.onnx").write_bytes(b"m")
    with caplog.at_level("INFO", logger="mlbackup"):
        result = immediate_backup_if_needed(
            tmp_path / "outputs" / "modle.onnx", target=tmp_path / "t"
        )
    assert result.status is BackupStatus.SKIPPED_MISSING
    assert "modle.onnx does not exist" in caplog.text and "model.onnx" in caplog.text
