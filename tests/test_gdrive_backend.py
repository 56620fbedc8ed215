"""The Drive API backend against the fake Drive: one file per key, duplicates, throttling,
quota, credentials. pydrive2 and google-api-python-client really talk HTTP to the fake."""

import json
import logging
import os
import sqlite3
import time

import mlbackup_gdrive
import pytest

from mlbackup import (
    BackendPermissionError,
    ConfigError,
    TargetMissingError,
    backup,
    immediate_backup_if_needed,
    open_target,
    restore,
    run_doctor,
)
from mlbackup.retry import RetryPolicy


@pytest.fixture
def options(gdrive_options):
    return gdrive_options


@pytest.fixture
def target(options):
    return open_target("gdrive://root/runs/exp1", **options)


def _grow(db, trial):
    with sqlite3.connect(db) as con:
        con.execute("create table if not exists trials (n integer, value real)")
        con.execute("insert into trials values (?, ?)", (trial, trial * 0.5))
    con.close()


@pytest.mark.slow
def test_twenty_backups_leave_one_drive_file_and_restore_the_newest(
    drive_api, target, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "outputs" / "study.db"
    db.parent.mkdir()
    for trial in range(20):
        _grow(db, trial)
        assert immediate_backup_if_needed(db, target=target).version == trial + 1
    assert len(drive_api.find_path("runs/exp1/outputs/study.db")) == 1
    db.unlink()
    restore("outputs/study.db", db, target=target)
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from trials").fetchone() == (20,)
    con.close()


def test_overwrite_updates_the_file_in_place(drive_api, target, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("one")
    target.backend.put_file(note, "note.txt")
    first = drive_api.find_path("runs/exp1/note.txt")
    note.write_text("two")
    target.backend.put_file(note, "note.txt")
    second = drive_api.find_path("runs/exp1/note.txt")
    assert [f.id for f in second] == [f.id for f in first]  # same ID, new content
    assert second[0].content == b"two"


def test_duplicates_made_elsewhere_are_read_newest_warned_and_repaired(
    drive_api, target, tmp_path, caplog
):
    folder = drive_api.add_file(drive_api.root_id, "runs", folder=True)
    exp = drive_api.add_file(folder, "exp1", folder=True)
    drive_api.add_file(exp, "config.json", b"old")
    time.sleep(0.01)  # Drive timestamps are in milliseconds; make "newest" unambiguous
    drive_api.add_file(exp, "config.json", b"new")
    target = open_target(target.url, **target.backend._options)
    with caplog.at_level(logging.WARNING):
        assert target.backend.read_bytes("config.json") == b"new"
    assert "exists 2 times on Drive" in caplog.text
    assert list(target.backend.duplicates()) == ["config.json"]
    assert target.backend.repair_duplicates() == 1
    assert [f.content for f in drive_api.find_path("runs/exp1/config.json")] == [b"new"]


def test_rate_limit_bursts_are_ridden_out(drive_api, options, tmp_path, monkeypatch):
    # Drive's own policy waits up to ~30 s for five failures; shorter waits, same logic.
    fast = RetryPolicy(attempts=6, base_delay=0.05)
    monkeypatch.setattr(mlbackup_gdrive.GDriveBackend, "retry_policy", fast)
    target = open_target("gdrive://root/runs/exp1", **options)
    model = tmp_path / "model.bin"
    model.write_bytes(b"m" * 5000)
    drive_api.fail_next(2, 429, "rateLimitExceeded", retry_after=1)
    drive_api.fail_next(2, 403, "userRateLimitExceeded")
    drive_api.fail_next(1, 503, "backendError")
    result = backup(model, target=target, name="model.bin")
    assert result.version == 1
    assert drive_api.failures_left == 0  # all five failures were met, and retried
    restore("model.bin", tmp_path / "back.bin", target=target)
    assert (tmp_path / "back.bin").read_bytes() == model.read_bytes()


def test_service_account_without_quota_fails_fast_and_says_what_to_do(drive_api, target, tmp_path):
    drive_api.service_account = True
    model = tmp_path / "model.bin"
    model.write_bytes(b"m" * 5000)
    started = time.monotonic()
    with pytest.raises(BackendPermissionError) as caught:
        backup(model, target=target, name="model.bin")
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "storageQuotaExceeded" in message and "service accounts have no storage quota" in message
    assert "shared drive" in message and "OAuth" in message


def test_full_quota_for_a_user(drive_api, tmp_path, google_token_server, gcs_key_file):
    drive_api.quota_bytes = 100
    model = tmp_path / "model.bin"
    model.write_bytes(b"m" * 5000)
    target = open_target(
        "gdrive://root/x",
        service_account_json=str(gcs_key_file),
        api_endpoint=drive_api.endpoint_url,
    )
    with pytest.raises(BackendPermissionError, match="quota"):
        backup(model, target=target, name="model.bin")


def test_rejected_key_fails_fast_naming_the_source(drive_api, options, google_token_server):
    with google_token_server.rejecting():
        started = time.monotonic()
        with pytest.raises(BackendPermissionError) as caught:
            open_target("gdrive://root/runs", **options)
        assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "Google rejected service-account key file" in message and "invalid_grant" in message


def test_key_from_an_environment_variable(drive_api, gcs_key_file, monkeypatch, tmp_path):
    monkeypatch.setenv("DRIVE_KEY", gcs_key_file.read_text())
    target = open_target(
        "gdrive://root/env",
        service_account_json_env="DRIVE_KEY",
        api_endpoint=drive_api.endpoint_url,
    )
    note = tmp_path / "n.txt"
    note.write_text("x")
    assert backup(note, target=target, name="n.txt").version == 1
    monkeypatch.delenv("DRIVE_KEY")
    with pytest.raises(ConfigError, match=r"\$DRIVE_KEY.*not set"):
        open_target("gdrive://root/env", service_account_json_env="DRIVE_KEY")


def test_missing_folder_id_and_missing_credentials(drive_api, options):
    with pytest.raises(TargetMissingError, match="folder ID"):
        open_target("gdrive://1NoSuchFolder/x", **options)
    with pytest.raises(ConfigError, match="no Drive credentials configured"):
        open_target("gdrive://root/x", api_endpoint=drive_api.endpoint_url)


def test_a_shared_folder_by_id(drive_api, options, tmp_path):
    shared = drive_api.add_file(drive_api.root_id, "team backups", folder=True)
    target = open_target(f"gdrive://{shared}/exp", **options)
    note = tmp_path / "n.txt"
    note.write_text("x")
    backup(note, target=target, name="n.txt")
    (browsable,) = drive_api.find_path("team backups/exp/n.txt")
    assert drive_api.files[browsable.shortcut_target].content == b"x"
    assert target.manifest("n.txt").files[0].ref == browsable.shortcut_target
    (manifest,) = drive_api.find_path("team backups/exp/.mlbackup/names/n.txt/manifests")
    assert [json.loads(f.content)["version"] for f in drive_api.children(manifest.id)] == [1]


def test_saved_oauth_token_for_headless_reuse(drive_api, google_token_server, tmp_path):
    from mlbackup.testing.gcs_server import saved_oauth_token

    saved = tmp_path / "drive-token.json"
    saved.write_text(json.dumps(saved_oauth_token(google_token_server.token_uri)))
    grants = google_token_server.grants
    target = open_target(
        "gdrive://root/user", credentials_file=str(saved), api_endpoint=drive_api.endpoint_url
    )
    assert google_token_server.grants == grants + 1  # the expired token was refreshed
    note = tmp_path / "n.txt"
    note.write_text("x")
    assert backup(note, target=target, name="n.txt").version == 1
    with (
        google_token_server.rejecting(),
        pytest.raises(BackendPermissionError, match="saved OAuth token"),
    ):
        open_target(
            "gdrive://root/user", credentials_file=str(saved), api_endpoint=drive_api.endpoint_url
        )


def test_doctor_finds_and_repairs_duplicates(drive_api, options, capsys):
    from mlbackup.cli import main

    exp = drive_api.add_file(
        drive_api.add_file(drive_api.root_id, "runs", folder=True), "exp1", folder=True
    )
    drive_api.add_file(exp, "a.txt", b"1")
    drive_api.add_file(exp, "a.txt", b"2")
    flags = [f"-o{key}={value}" for key, value in options.items()]
    assert main(["doctor", "--from", "gdrive://root/runs/exp1", *flags]) == 1
    out = capsys.readouterr().out
    assert "ok       reachable:" in out and "ok       credentials: a service account" in out
    assert "PROBLEM  duplicates: a.txt: 2 files with this name on the store" in out
    assert "--repair" in out
    assert main(["doctor", "--from", "gdrive://root/runs/exp1", *flags, "--repair", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repaired"] == 1
    assert len(drive_api.find_path("runs/exp1/a.txt")) == 1


def test_secrets_stay_out_of_reprs_pickles_errors_and_drive_files(
    drive_api, options, gcs_key_file, tmp_path
):
    import pickle

    from canary import assert_no_canary

    key_line = json.loads(gcs_key_file.read_text())["private_key"].splitlines()[5]
    target = open_target("gdrive://root/runs/exp1", **options)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "w.bin").write_bytes(b"weights")
    backup(tmp_path / "ckpt", target=target, name="ckpt")
    for text in (repr(target), repr(target.backend), target.url):
        assert_no_canary(text, [key_line])
    with pytest.raises(TypeError, match="cannot be pickled") as caught:
        pickle.dumps(target)
    assert_no_canary(str(caught.value), [key_line])
    for stored in drive_api.files.values():  # every file uploaded, manifests included
        assert_no_canary(bytes(stored.content).decode("latin-1"), [key_line])
    assert any(b'"files"' in bytes(f.content) for f in drive_api.files.values())


def test_another_tools_files_of_the_same_name_harm_no_version(drive_api, target, tmp_path):
    """Another tool adds a file of the same name beside a backed-up file, one in the trash
    and one in a duplicate objects folder, after every backup: every version still restores
    exactly, and the other tool's files are left as they were."""
    src = tmp_path / "notes.txt"
    sent, theirs = [], []
    for i in range(3):
        src.write_text(f"version {i} " * (i + 1))
        backup(src, target=target, name="notes.txt")
        sent.append(src.read_bytes())
        folder = drive_api.find_path("runs/exp1")[0].id
        theirs.append(drive_api.add_file(folder, "notes.txt", f"another tool {i}".encode()))
        trashed = drive_api.add_file(folder, "notes.txt", f"trashed {i}".encode())
        drive_api.files[trashed].trashed = True
        meta = drive_api.find_path("runs/exp1/.mlbackup")[0].id
        twin = drive_api.add_file(meta, "objects", folder=True)
        digest = target.manifest("notes.txt").files[0].hash
        drive_api.add_file(twin, digest, b"an impostor with our object's name")
    for version, data in enumerate(sent, start=1):
        dest = tmp_path / f"v{version}"
        restore("notes.txt", dest, target=target, version=version)
        assert dest.read_bytes() == data
        assert target.verify("notes.txt", version).files_checked == 1
    for i, file_id in enumerate(theirs):
        assert drive_api.files[file_id].content == f"another tool {i}".encode()
        assert not drive_api.files[file_id].trashed


def test_the_browsable_tree_is_shortcuts_that_take_no_quota(drive_api, target, tmp_path):
    """A large file costs its size once on Drive, with its browsable entry (a shortcut)."""
    big = tmp_path / "model.bin"
    big.write_bytes(os.urandom(8 << 20))
    backup(big, target=target, name="model.bin")
    assert drive_api.used_bytes() <= 1.1 * (8 << 20)
    (entry,) = drive_api.find_path("runs/exp1/model.bin")
    assert entry.mime_type == "application/vnd.google-apps.shortcut"
    assert target.backend.read_bytes("model.bin") == big.read_bytes()


def test_an_unlimited_workspace_account_has_no_limit_to_report(drive_api, options, target):
    """Drive v2 gives no total when the quota type is UNLIMITED: that is no limit, not 0 free."""
    drive_api.unlimited = True
    assert target.backend.free_bytes() is None
    report = run_doctor("gdrive://root/runs/exp1", options)
    (space,) = [f for f in report.findings if f.check == "space"]
    assert space.level == "ok" and "no size limit" in space.message
