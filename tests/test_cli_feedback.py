"""What a person sees: status, doctor, progress on a terminal, errors in a line or two."""

import io
import json
import os
import pty
import subprocess
import sys

import mlbackup_drive
import pytest

from mlbackup import ProgressEvent, backup
from mlbackup.cli import main
from mlbackup.progress_bar import ProgressBar
from mlbackup.testing.fault_proxy import FaultProxy

S3_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


def s3_args(options):
    return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]


@pytest.fixture
def outputs(project):
    folder = project / "outputs" / "ckpt"
    folder.mkdir(parents=True)
    for i in range(12):
        (folder / f"shard-{i}.bin").write_bytes(os.urandom(50_000))
    return folder


# -- status ---------------------------------------------------------------------------------


def test_status_lists_each_name_with_its_freshness(project, outputs, target_dir, capsys):
    (project / "study.db").write_bytes(b"db")
    backup(outputs, target=target_dir)
    backup(project / "study.db", target=target_dir)
    (project / "study.db").write_bytes(b"db2")
    backup(project / "study.db", target=target_dir)

    assert main(["status", "--from", str(target_dir)]) == 0
    text = capsys.readouterr().out
    assert "outputs/ckpt" in text and "600.0 kB" in text and "s ago" in text
    assert main(["status", "--from", str(target_dir), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["backups"]}
    assert rows["study.db"]["version"] == 2 and rows["study.db"]["versions"] == 2
    assert rows["outputs/ckpt"]["files"] == 12 and rows["outputs/ckpt"]["state"] == "committed"
    assert 0 <= rows["study.db"]["age_seconds"] < 60


def test_status_on_the_drive_mount_says_staged_until_drive_confirms(
    drive_mount, project, drive_api, google_token_server, gcs_key_file, capsys
):
    (project / "model.onnx").write_bytes(b"onnx" * 10)
    backup(project / "model.onnx", target="drive://runs")
    assert main(["status", "--from", "drive://runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backups"][0]["state"] == "staged"

    confirm = ["--confirm", f"service_account_json={gcs_key_file}"]
    confirm += ["--confirm", f"api_endpoint={drive_api.endpoint_url}"]
    assert main(["status", "--from", "drive://runs", "--json", *confirm]) == 0
    row = json.loads(capsys.readouterr().out)["backups"][0]
    assert row["state"] == "unconfirmed" and "model.onnx" in row["unconfirmed"]
    assert main(["status", "--from", "drive://runs", *confirm]) == 0
    assert "unconfirmed" in capsys.readouterr().out


# -- doctor ---------------------------------------------------------------------------------


def test_doctor_on_a_healthy_folder(outputs, target_dir, capsys):
    target_dir.mkdir(parents=True, exist_ok=True)  # a folder that exists (none is ever made)
    assert main(["doctor", str(outputs), "--from", str(target_dir)]) == 0
    text = capsys.readouterr().out
    assert "ok       write: a test object was written and deleted" in text
    assert "ok       credentials: none needed: accepted" in text
    assert "outputs/ckpt: 12 files" in text and text.rstrip().endswith("ready")
    assert main(["doctor", "--from", str(target_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["free_bytes"] > 0
    assert not list(target_dir.rglob("doctor-*"))  # the test write left nothing behind


def test_doctor_warns_of_many_small_files_on_the_drive_mount(
    drive_mount, outputs, monkeypatch, capsys
):
    monkeypatch.setattr(mlbackup_drive.DriveMountBackend, "many_files_warning", 10)
    assert main(["doctor", str(outputs), "--from", "drive://runs"]) == 0  # warnings only
    text = capsys.readouterr().out
    assert "warning  layout:" in text and "holds 12 files" in text and ".tar" in text
    assert "warning  staged:" in text


def test_doctor_finds_credentials_that_cannot_write(s3_server, s3_bucket, capsys):
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.refuse_writes(403, S3_DENIED, {"Content-Type": "application/xml"})
        options = s3_server.storage_options(endpoint_url=proxy.endpoint_url)
        code = main(["doctor", "--from", f"s3://{s3_bucket}/runs", *s3_args(options)])
    text = capsys.readouterr().out
    assert code == 1
    assert "ok       credentials: the key/secret options: accepted" in text
    assert "PROBLEM  write: a test write failed:" in text and "denied" in text.lower()
    assert "ok       space: the store reports no size limit" in text
    assert s3_server.storage_options()["secret"] not in text


def test_doctor_on_an_unreachable_store_is_one_problem(capsys):
    code = main(["doctor", "--from", "s3://bucket/x", "-o", "endpoint_url=http://127.0.0.1:9"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[1].startswith("  PROBLEM  reachable:") and len(lines) == 3


def test_doctor_sees_a_service_account_with_no_drive_storage(
    drive_api, google_token_server, gcs_key_file, capsys
):
    options = ["-o", f"service_account_json={gcs_key_file}"]
    options += ["-o", f"api_endpoint={drive_api.endpoint_url}"]
    assert main(["doctor", "--from", "gdrive://root/runs", "--json", *options]) == 0
    assert json.loads(capsys.readouterr().out)["free_bytes"] == 15 << 30  # a user's My Drive
    drive_api.service_account = True  # as Drive answers a service account: no quota at all
    assert main(["doctor", "--from", "gdrive://root/runs", "--json", *options]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["credentials"].startswith("a service account, from service-account key file")
    (space,) = [f for f in report["findings"] if f["check"] == "space"]
    assert space["level"] == "problem" and "owns no storage" in space["message"]


# -- progress -------------------------------------------------------------------------------


def on_a_terminal(args, cwd):
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, stdout, terminal)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlbackup", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    stdout = proc.stdout.read().decode()
    return proc.wait(timeout=60), stdout, seen.decode()


@pytest.mark.slow
def test_a_slow_transfer_draws_a_progress_bar_on_a_terminal_only(
    project, outputs, s3_server, s3_bucket
):
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.latency = 0.1  # about 1.5 s for the twelve files
        options = s3_server.storage_options(endpoint_url=proxy.endpoint_url)
        url = f"s3://{s3_bucket}/progress"
        code, stdout, terminal = on_a_terminal(
            ["backup", "outputs/ckpt", "--to", url, *s3_args(options)], project
        )
        assert code == 0, terminal
        assert "outputs/ckpt: copied, version 1, 12/12 files" in stdout
        assert "\r" in terminal and "12/12 files" in terminal and "100%" in terminal
        assert "kB/s" in terminal or "MB/s" in terminal
        (outputs / "shard-0.bin").write_bytes(b"changed")
        code, _, terminal = on_a_terminal(
            ["backup", "outputs/ckpt", "--to", url, "--quiet", *s3_args(options)], project
        )
        assert code == 0 and terminal == ""
        piped = subprocess.run(
            [sys.executable, "-m", "mlbackup", "restore", "outputs/ckpt", "--from", url,
             "--to", str(project / "back"), *s3_args(options)],
            capture_output=True, text=True, cwd=project,
        )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""  # as slow as the backup, but stderr is not a terminal


def test_the_bar_waits_throttles_and_ends_its_line():
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar(out, delay=0.5, interval=0.1, clock=lambda: now[0])
    event = ProgressEvent("ckpt", "a", 1, 10, 10, 100)
    bar(event)
    assert out.getvalue() == ""  # a quick transfer draws nothing
    now[0] = 1.0
    bar(ProgressEvent("ckpt", "b", 2, 10, 20, 100))
    now[0] = 1.05
    bar(ProgressEvent("ckpt", "c", 3, 10, 30, 100))  # within the interval: not drawn
    assert out.getvalue().count("\r") == 1 and "2/10 files" in out.getvalue()
    now[0] = 2.0
    bar.close()
    assert out.getvalue().endswith("\n") and "3/10 files" in out.getvalue()


# -- errors ---------------------------------------------------------------------------------


def test_an_unexpected_error_is_two_lines_and_a_traceback_only_with_debug(
    project, monkeypatch, capsys
):
    (project / "a.txt").write_text("a")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("mlbackup.cli.backup", broken)
    assert main(["backup", "a.txt", "--to", str(project / "t")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "mlbackup: error: RuntimeError: boom",
        "mlbackup: this looks like a bug; rerun with --debug for the traceback and report it",
    ]
    assert main(["backup", "a.txt", "--to", str(project / "t"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_json_mode_reports_errors_as_json_too(project, capsys):
    assert main(["backup", "missing", "--to", str(project / "t"), "--json"]) == 1
    captured = capsys.readouterr()
    error = json.loads(captured.out)
    assert error["type"] == "SourceMissingError" and error["exit_code"] == 1
    assert "does not exist" in captured.err
