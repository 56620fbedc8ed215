"""Bad input gets a typed error that names the problem and the fix, and changes nothing."""

import json
import os
import socket
import sys

import pytest

from mlbackup import (
    BackupStatus,
    ConfigError,
    DestinationNotEmptyError,
    IntegrityError,
    MLBackupError,
    SourceMissingError,
    UnknownBackendError,
    UnsafePathError,
    backup,
    open_target,
    restore,
)
from mlbackup.testing.contract import tree_snapshot


def test_missing_extra_names_it(monkeypatch):
    # As on a machine without the s3 extra: s3fs cannot be imported.
    monkeypatch.setitem(sys.modules, "s3fs", None)
    for module in ("mlbackup_s3", "mlbackup_s3.backend"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(UnknownBackendError) as caught:
        open_target("s3://bucket/run")
    assert 'pip install "mlbackup[s3]"' in str(caught.value)


def test_unknown_scheme_lists_backends():
    with pytest.raises(UnknownBackendError) as caught:
        open_target("nosuch://x")
    message = str(caught.value)
    assert "installed: " in message and "file" in message and "s3" in message
    with pytest.raises(UnknownBackendError, match="check the URL"):
        open_target("nosuch://x")


def test_unknown_option_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown option.*endpoint_url.*valid options: durable"):
        open_target(tmp_path, endpoint_url="http://x")


def test_missing_path_raises_and_writes_nothing(tmp_path):
    target = tmp_path / "target"
    with pytest.raises(SourceMissingError, match="does not exist"):
        backup(tmp_path / "nope", target=target)
    assert not target.exists()


def test_backup_of_the_target_itself_is_refused(tmp_path):
    target = tmp_path / "target"
    (target / "x").mkdir(parents=True)
    with pytest.raises(ConfigError, match="inside the backup target"):
        backup(target / "x", target=target)


@pytest.mark.parametrize("name", ["../up", "/abs", "a//b", "a/./b", ".mlbackup/x", "", "a\\b"])
def test_invalid_names(tmp_path, name):
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(ConfigError):
        backup(src, target=tmp_path / "target", name=name)
    assert not (tmp_path / "target").exists()


def test_overlapping_names_are_refused(tmp_path):
    folder = tmp_path / "outputs"
    (folder / "hpo").mkdir(parents=True)
    (folder / "hpo" / "study.db").write_text("x")
    target = tmp_path / "target"
    backup(folder, target=target, name="outputs")
    with pytest.raises(ConfigError, match="overlaps the existing backup 'outputs'"):
        backup(folder / "hpo" / "study.db", target=target, name="outputs/hpo/study.db")


def test_non_empty_destination_is_refused_unchanged(tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(b"new")
    target = tmp_path / "target"
    backup(src, target=target)
    dest = tmp_path / "dest.onnx"
    dest.write_bytes(b"mine")
    with pytest.raises(DestinationNotEmptyError, match="overwrite=True"):
        restore("model.onnx", dest, target=target)
    assert dest.read_bytes() == b"mine"


def backup_with_edited_manifest(tmp_path, edit_files):
    """Back a one-file folder up, then replace its manifest's file list with
    ``edit_files(files)``, as someone with write access to the target could."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    backup(folder, target=tmp_path / "target")
    t = open_target(tmp_path / "target")
    key = t.manifest_key_of("ckpt", 1)
    doc = json.loads(t.backend.read_bytes(key))
    doc["files"] = edit_files(doc["files"])
    t.backend.delete(key)
    t.backend.write_new(key, json.dumps(doc).encode())
    return t


@pytest.mark.parametrize("evil", ["../escaped.txt", "/tmp/abs.txt", "a/../../x", "nul\x00byte"])
def test_hostile_manifest_paths_write_nothing_outside(tmp_path, evil, figures):
    t = backup_with_edited_manifest(tmp_path, lambda files: [{**files[0], "path": evil}])
    before = tree_snapshot(tmp_path)
    with pytest.raises(UnsafePathError, match="unsafe path"):
        restore("ckpt", tmp_path / "dest", target=t)
    assert tree_snapshot(tmp_path) == before
    figures.add("hostile or damaged restores")


@pytest.mark.parametrize(
    "evil",
    ["../../../../home/u/.bashrc", "/etc/passwd", "0" * 31 + "/", "ABCDEF" * 5 + "00", "0" * 64],
    ids=["relative-path", "absolute", "slash", "uppercase", "another-algorithm"],
)
def test_a_hash_that_is_not_a_hash_is_refused(tmp_path, evil, figures):
    """A manifest's hash names an object, so anything but a digest of its algorithm is
    refused on read, and the next backup writes nothing outside the target."""
    t = backup_with_edited_manifest(tmp_path, lambda files: [{**files[0], "hash": evil}])
    with pytest.raises(IntegrityError, match="is not a xxh128 digest"):
        t.verify("ckpt")
    with pytest.raises(IntegrityError):
        restore("ckpt", tmp_path / "dest", target=t)
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "target")}
    (tmp_path / "ckpt" / "ok.txt").write_text("changed")
    with pytest.raises(IntegrityError):
        backup(tmp_path / "ckpt", target=t)
    assert {p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "target")} == (
        outside
    )
    figures.add("hostile or damaged restores")


def test_restore_never_writes_through_a_symlink(tmp_path, figures):
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.txt").write_text("data")
    target = tmp_path / "target"
    backup(folder, target=target)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        restore("ckpt", dest, target=target, overwrite=True)
    assert list(outside.iterdir()) == []
    figures.add("hostile or damaged restores")


def test_symlinks_and_special_files_are_skipped_and_reported(tmp_path):
    folder = tmp_path / "tree"
    folder.mkdir()
    (folder / "real.txt").write_text("real")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the tree")
    (folder / "link-out").symlink_to(secret)
    (folder / "dangling").symlink_to(tmp_path / "missing")
    (folder / "loop").symlink_to(folder)
    os.mkfifo(folder / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    try:
        result = backup(folder, target=tmp_path / "target")
    finally:
        sock.close()
    assert result.status is BackupStatus.COPIED
    assert result.files_total == 1
    skipped = "\n".join(result.skipped_entries)
    for name in ("link-out", "dangling", "loop", "fifo", "sock"):
        assert name in skipped
    restore("tree", tmp_path / "out", target=tmp_path / "target")
    assert tree_snapshot(tmp_path / "out") == {"real.txt": b"real"}


def test_credential_files_in_a_tree_are_left_out_and_reported(tmp_path, caplog):
    run = tmp_path / "run"
    (run / ".aws").mkdir(parents=True)
    (run / ".aws" / "credentials").write_text("[default]\naws_secret_access_key=x")
    (run / ".env").write_text("TOKEN=x")
    (run / ".env.example").write_text("TOKEN=")
    (run / ".netrc").write_text("machine x password y")
    (run / "sa.json").write_text(json.dumps({"type": "service_account", "private_key": "k"}))
    (run / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (run / "model.bin").write_bytes(b"weights")
    target = open_target(tmp_path / "t")
    result = backup(run, target=target, name="run")
    restore("run", tmp_path / "back", target=target)
    kept = sorted(p.name for p in (tmp_path / "back").rglob("*") if p.is_file())
    assert kept == [".env.example", "config.json", "model.bin"]
    reasons = "\n".join(result.skipped_entries)
    for rel in (".aws/credentials", ".env", ".netrc", "sa.json"):
        assert f"{rel}: looks like a credential" in reasons
    assert "service-account key" in reasons and "include_credential_files" in reasons
    assert "skipped sa.json: looks like a credential" in caplog.text


def test_credential_files_can_be_included_on_purpose(tmp_path):
    from mlbackup import load_config

    run = tmp_path / "run"
    run.mkdir()
    (run / ".env").write_text("TOKEN=x")
    config = load_config(environ={"MLBACKUP_INCLUDE_CREDENTIAL_FILES": "1"})
    result = backup(run, target=open_target(tmp_path / "t"), name="run", config=config)
    assert result.skipped_entries == ()
    assert result.files_total == 1


@pytest.mark.parametrize(
    "entries",
    [
        # a "symlink" entry pointing outside, then a file through it
        [{"path": "link", "symlink": "../outside"}, {"path": "link/planted.txt"}],
        # a file, then a file "inside" that file
        [{"path": "a"}, {"path": "a/planted.txt"}],
        # the same path twice
        [{"path": "twice.txt"}, {"path": "twice.txt"}],
    ],
)
def test_hostile_manifest_entries_write_nothing_outside(tmp_path, entries, figures):
    t = backup_with_edited_manifest(tmp_path, lambda files: [{**files[0], **e} for e in entries])
    (tmp_path / "outside").mkdir()
    before = tree_snapshot(tmp_path)
    with pytest.raises(MLBackupError) as caught:
        restore("ckpt", tmp_path / "dest", target=t)
    assert "inconsistent" in str(caught.value) and caught.value.problems  # refused up front
    after = tree_snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("dest")} == before
    assert not any(os.path.islink(p) for p in (tmp_path / "dest").rglob("*"))
    figures.add("hostile or damaged restores")


def test_an_unreadable_folder_is_skipped_and_reported_not_fatal(tmp_path, monkeypatch):
    import mlbackup.sources

    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    (tree / "locked" / "x.txt").write_text("x")
    (tree / "ok.txt").write_text("ok")
    real_scandir = os.scandir

    def scandir(path):  # as an unprivileged user sees a folder without read permission
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(mlbackup.sources.os, "scandir", scandir)
    result = backup(tree, target=tmp_path / "t", name="tree")
    assert result.status is BackupStatus.COPIED and result.files_total == 1
    assert result.partial
    assert result.failed_entries[0].startswith("locked/: unreadable folder (Permission denied)")
