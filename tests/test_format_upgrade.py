"""Targets written by release 0.1.0 (storage format 1) after the upgrade.

``tests/fixtures/format1`` was written by 0.1.0 itself (``tests/fixtures/make_format1.py``):
three versions of a folder (a file changed, one deleted, one added, one appended to) and of an
appended log. Every version restores exactly after the upgrade; the next backup moves the
name to format 2 without sending the kept files again, and the old versions still restore.
"""

import base64
import json
import shutil
from pathlib import Path

import pytest

from mlbackup import backup, open_target, restore, run_doctor
from mlbackup.testing.contract import tree_snapshot

FIXTURE = Path(__file__).parent / "fixtures" / "format1"


def expected():
    doc = json.loads((FIXTURE / "expected.json").read_text())
    assert doc["mlbackup"] == "0.1.0"
    return doc["names"]


def decoded(snapshot):
    if isinstance(snapshot, str):
        return base64.b64decode(snapshot)
    return {k: None if v is None else base64.b64decode(v) for k, v in snapshot.items()}


def restored(target, name, version, dest):
    restore(name, dest, target=target, version=version)
    return dest.read_bytes() if dest.is_file() else tree_snapshot(dest)


@pytest.fixture
def old_target(tmp_path):
    copy = tmp_path / "target"
    shutil.copytree(FIXTURE / "target", copy)
    return copy


def test_every_format1_version_restores(old_target, tmp_path):
    target = open_target(old_target)
    for name, versions in expected().items():
        assert target.versions(name) == [int(v) for v in versions]
        for version, snapshot in versions.items():
            dest = tmp_path / "out" / name / version
            assert restored(target, name, int(version), dest) == decoded(snapshot)
            assert target.manifest(name, int(version)).format_version == 1


def test_next_backup_moves_the_name_to_format2(old_target, tmp_path):
    target = open_target(old_target)
    names = expected()
    source = tmp_path / "ckpt"
    restore("run/ckpt", source, target=target)
    (source / "config.json").write_text('{"layers": 4}')
    result = backup(source, target=target, name="run/ckpt")
    assert (result.version, result.files_sent) == (4, 1)
    assert result.bytes_sent == len('{"layers": 4}')  # the kept files were not sent again
    assert target.manifest("run/ckpt").format_version == 2
    restore("run/ckpt", tmp_path / "v4", target=target)
    assert tree_snapshot(tmp_path / "v4") == tree_snapshot(source)
    # The browsable tree now shows version 4, and the format-1 versions still restore.
    assert (old_target / "run" / "ckpt" / "config.json").read_text() == '{"layers": 4}'
    for version, snapshot in names["run/ckpt"].items():
        dest = tmp_path / "after" / version
        assert restored(target, "run/ckpt", int(version), dest) == decoded(snapshot)
    # And the log: appended to, once more.
    log = tmp_path / "train.log"
    restore("train.log", log, target=target)
    log.write_text(log.read_text() + "step 3\n")
    assert backup(log, target=target, name="train.log").version == 4
    for version, snapshot in names["train.log"].items():
        dest = tmp_path / "log" / version
        assert restored(target, "train.log", int(version), dest) == decoded(snapshot)


def test_retention_after_the_upgrade_keeps_what_kept_versions_need(old_target, tmp_path):
    target = open_target(old_target)
    source = tmp_path / "ckpt"
    restore("run/ckpt", source, target=target)
    (source / "new.txt").write_text("version 4")
    backup(source, target=target, name="run/ckpt", keep_last=2)
    assert target.versions("run/ckpt") == [3, 4]
    snapshot = expected()["run/ckpt"]["3"]
    assert restored(target, "run/ckpt", 3, tmp_path / "v3") == decoded(snapshot)
    assert restored(target, "run/ckpt", 4, tmp_path / "v4") == tree_snapshot(source)


def test_doctor_reports_the_format(old_target):
    report = run_doctor(str(old_target))
    formats = [f.message for f in report.findings if f.check == "format"]
    assert formats and "format 1" in formats[0], report.findings
