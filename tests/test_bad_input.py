"""Bad input gets a typed error that names the problem and the fix, and changes nothing."""

import contextlib
import json
import os
import shutil
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
    TargetError,
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


@pytest.mark.parametrize(
    "evil",
    ["../escaped.txt", "/tmp/abs.txt", "a/../../x", "nul\x00byte", "a//b", "a/./b", "..", "a/",
     "back\\slash", "a/b/.."],
)  # fmt: skip
def test_hostile_manifest_paths_write_nothing_outside(tmp_path, evil, figures):
    t = backup_with_edited_manifest(tmp_path, lambda files: [{**files[0], "path": evil}])
    before = tree_snapshot(tmp_path)
    with pytest.raises(UnsafePathError, match="unsafe path"):
        restore("ckpt", tmp_path / "dest", target=t)
    assert tree_snapshot(tmp_path) == before
    figures.add("hostile or damaged restores")


@pytest.mark.parametrize(
    "evil",
    [
        "../../../../home/u/.bashrc",
        "/etc/passwd",
        "0" * 31 + "/",
        "ABCDEF" * 5 + "00",
        "0" * 64,
        "0" * 31 + "\n",
    ],
    ids=["relative-path", "absolute", "slash", "uppercase", "another-algorithm", "newline"],
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


def replace_manifest(target, name, version, data):
    key = target.manifest_key_of(name, version)
    target.backend.delete(key)
    target.backend.write_new(key, data)


def test_a_deeply_nested_manifest_is_damage_not_a_crash(tmp_path, figures):
    t = backup_with_edited_manifest(tmp_path, lambda files: files)
    replace_manifest(t, "ckpt", 1, b'{"format": "mlbackup.manifest/2", "meta": ' + b"[" * 100_000)
    with pytest.raises(IntegrityError, match="unreadable"):
        restore("ckpt", tmp_path / "dest", target=t)
    figures.add("hostile or damaged restores")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *((f, v) for f in ("mtime_ns", "size", "mode") for v in (10**30, 1e30, True, "12")),
        ("size", -1),
        ("mode", -1),
        ("mode", 0o170644),
    ],
)
def test_out_of_range_numbers_in_a_manifest_are_damage(tmp_path, field, value, figures):
    t = backup_with_edited_manifest(tmp_path, lambda files: [{**files[0], field: value}])
    with pytest.raises(IntegrityError, match=field):
        restore("ckpt", tmp_path / "dest", target=t)
    assert not (tmp_path / "dest").exists()
    figures.add("hostile or damaged restores")


def test_a_manifest_too_large_to_load_is_refused_early(tmp_path, monkeypatch, figures):
    import mlbackup.manifest

    t = backup_with_edited_manifest(tmp_path, lambda files: files * 2000)
    monkeypatch.setattr(mlbackup.manifest, "MAX_MANIFEST_BYTES", 100_000)
    with pytest.raises(IntegrityError, match="larger than"):
        restore("ckpt", tmp_path / "dest", target=t)
    figures.add("hostile or damaged restores")


@pytest.mark.slow
def test_a_manifest_of_many_entries_is_read_quickly(tmp_path):
    """200,000 entries (a dataset folder): parsed and checked in seconds, not 25."""
    import time

    from mlbackup.manifest import FileEntry, Manifest

    entries = tuple(
        FileEntry(f"shard{i // 1000}/f{i}.bin", i, f"{i:032x}", 10**18, 0o644, f"{i}:1")
        for i in range(200_000)
    )
    data = Manifest("big", 1, "dir", "xxh128", entries).to_bytes()
    started = time.process_time()
    Manifest.from_bytes(data, where="test")
    assert time.process_time() - started < 5


def test_setuid_and_setgid_bits_are_not_restored(tmp_path, figures):
    t = backup_with_edited_manifest(tmp_path, lambda files: [{**files[0], "mode": 0o6755}])
    restore("ckpt", tmp_path / "dest", target=t)
    assert (tmp_path / "dest" / "ok.txt").stat().st_mode & 0o7777 == 0o755
    figures.add("hostile or damaged restores")


@pytest.mark.parametrize("where", ["object", "objects folder", "manifests folder"])
def test_a_symlink_planted_in_the_target_is_never_followed(tmp_path, where, figures):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    target_dir = tmp_path / "target"
    backup(folder, target=target_dir)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text("PRIVATE")
    t = open_target(target_dir)
    (entry,) = t.manifest("ckpt").files
    stored = t.backend.stored_path(f".mlbackup/objects/{entry.hash}")
    if where == "object":
        stored.unlink()
        stored.symlink_to(secret / "id_rsa")
    elif where == "objects folder":
        shutil.rmtree(stored.parent)
        stored.parent.symlink_to(secret)
        (secret / entry.hash).write_text("ok")  # even with the right bytes there
    else:
        manifests = target_dir / ".mlbackup" / "names" / "ckpt" / "manifests"
        shutil.move(manifests, secret / "manifests")
        manifests.symlink_to(secret / "manifests")
    with pytest.raises((IntegrityError, UnsafePathError, TargetError)):
        restore("ckpt", tmp_path / "dest", target=open_target(target_dir))
    (folder / "ok.txt").write_text("changed")
    with contextlib.suppress(MLBackupError):  # it may commit: just never outside the target
        backup(folder, target=open_target(target_dir))
    assert sorted(p.name for p in secret.iterdir()) == sorted(
        ["id_rsa", *([entry.hash] if where == "objects folder" else [])]
        + (["manifests"] if where == "manifests folder" else [])
    )
    figures.add("hostile or damaged restores")


def test_a_name_folder_that_decodes_to_dot_dot_is_skipped_and_reported(tmp_path, caplog):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    backup(folder, target=tmp_path / "target")
    (tmp_path / "target" / ".mlbackup" / "names" / "%2E%2E").mkdir()
    t = open_target(tmp_path / "target")
    with caplog.at_level("WARNING", logger="mlbackup"):
        assert [i.name for i in t.list()] == ["ckpt"]
    assert "%2E%2E" in caplog.text


SA_KEY = json.dumps(
    {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n", "x": "y"}
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
NEAR_MISSES = {
    "SA_KEY.JSON": SA_KEY,
    "sa.json.bak": SA_KEY,
    "keyfile": SA_KEY,
    "big-sa.json": SA_KEY[:-1] + ', "pad": "' + "x" * 20_000 + '"}',
    "sa-utf16.json": SA_KEY.encode("utf-16"),
    "key.pem": PEM,
    "server.key": PEM,
    ".envrc": "export TOKEN=x",
    "prod.env": "TOKEN=x",
    ".aws/config": "[default]\naws_secret_access_key = abc\n",
    ".kube/config": "apiVersion: v1\nusers: []\n",
    ".s3cfg": "[default]\naccess_key = a\nsecret_key = b\n",
    ".boto": "[Credentials]\naws_access_key_id = a\n",
    ".npmrc": "//registry.npmjs.org/:_authToken=npm_abc\n",
    ".huggingface/token": "hf_abcdef",
    "home/.cache/huggingface/token": "hf_abcdef",
    "secrets.toml": 'api_key = "x"\n',
}


def test_credential_near_misses_are_left_out_too(tmp_path):
    run = tmp_path / "run"
    for rel, content in NEAR_MISSES.items():
        path = run / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (run / "config.json").write_text(json.dumps({"hidden_size": 8, "vocab": ["a"] * 10}))
    (run / "notes.txt").write_text("the secret to good training is patience")
    (run / "model.key.bin").write_bytes(b"\0" * 100)
    (run / ".aws" / "config.txt").write_text("region = us-east-1")
    result = backup(run, target=tmp_path / "t", name="run")
    reasons = "\n".join(result.skipped_entries)
    missed = [rel for rel in NEAR_MISSES if f"{rel}: looks like a credential" not in reasons]
    assert missed == []
    restore("run", tmp_path / "back", target=open_target(tmp_path / "t"))
    kept = sorted(str(p.relative_to(tmp_path / "back")) for p in (tmp_path / "back").rglob("*"))
    assert [k for k in kept if (tmp_path / "back" / k).is_file()] == [
        ".aws/config.txt", "config.json", "model.key.bin", "notes.txt"
    ]  # fmt: skip
