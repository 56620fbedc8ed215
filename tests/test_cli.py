"""The command line, in-process (main) and as a real process (python -m mlbackup)."""

import json
import subprocess
import sys

import pytest

from mlbackup.cli import main


def test_backup_ls_verify_restore(project, target_dir, capsys):
    out = project / "outputs" / "model"
    out.mkdir(parents=True)
    (out / "w.bin").write_bytes(b"w" * 100)
    assert main(["backup", "outputs/model", "--to", str(target_dir)]) == 0
    assert "outputs/model: copied, version 1, 1/1 files" in capsys.readouterr().out
    assert main(["backup", "outputs/model", "--to", str(target_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["bytes_sent"]) == ("unchanged", 0)

    assert main(["ls", "--from", str(target_dir)]) == 0
    assert "outputs/model" in capsys.readouterr().out
    assert main(["ls", "--from", str(target_dir), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(b["name"], b["version"], b["files"]) for b in listing["backups"]] == [
        ("outputs/model", 1, 1)
    ]
    assert main(["verify", "outputs/model", "--from", str(target_dir)]) == 0
    assert "1 files, 100 bytes verified" in capsys.readouterr().out

    dest = project / "restored"
    assert main(["restore", "outputs/model", "--from", str(target_dir), "--to", str(dest)]) == 0
    assert (dest / "w.bin").read_bytes() == b"w" * 100


def test_restore_defaults_to_the_name_under_the_current_folder(project, target_dir, capsys):
    (project / "a.txt").write_text("a")
    assert main(["backup", "a.txt", "--to", str(target_dir)]) == 0
    (project / "a.txt").unlink()
    assert main(["restore", "a.txt", "--from", str(target_dir)]) == 0
    assert (project / "a.txt").read_text() == "a"


def test_exit_codes(project, target_dir, capsys):
    assert main(["backup", "missing", "--to", str(target_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlbackup: error: ") and "does not exist" in err
    assert "Traceback" not in err
    assert main(["ls", "--from", "nosuch://x"]) == 2
    assert "no backend for URL scheme 'nosuch'" in capsys.readouterr().err
    assert main(["verify", "nothing", "--from", str(target_dir)]) == 1
    assert main(["ls", "--from", str(target_dir), "-o", "endpoint_url=http://x"]) == 2


def test_usage_error_exit_code_and_module_entry(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "mlbackup", "backup"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    ok = subprocess.run(
        [sys.executable, "-m", "mlbackup", "ls", "--from", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["backups"] == []


@pytest.mark.slow
def test_demo_runs_to_its_summary(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mlbackup", "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo finished: nothing was lost." in proc.stdout
    assert "the study now holds 17 trials (12 from before the loss)" in proc.stdout


@pytest.mark.parametrize("flags_first", [True, False], ids=["before the command", "after it"])
def test_global_flags_work_before_and_after_the_command(tmp_path, capsys, flags_first):
    argv = ["ls", "--from", str(tmp_path / "t")]
    argv = ["--json", *argv] if flags_first else [*argv, "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["backups"] == []


def test_doctor_on_a_mistyped_folder_neither_creates_it_nor_says_plain_ready(tmp_path, capsys):
    missing = tmp_path / "bakcups"
    main(["doctor", "--from", str(missing)])
    out = capsys.readouterr().out
    assert not missing.exists()
    assert "does not exist" in out and "ready, but read the warnings" in out


def test_restoring_from_a_folder_with_no_backups_says_so(tmp_path, capsys):
    assert main(["restore", "model.bin", "--from", str(tmp_path / "bakcups")]) == 1
    err = capsys.readouterr().err
    assert "holds no backups at all" in err and "does not exist" in err


@pytest.mark.slow
def test_the_demo_takes_storage_options_like_every_command(s3_server, s3_bucket, tmp_path, capsys):
    options = s3_server.storage_options()
    argv = ["demo", "--to", f"s3://{s3_bucket}/demo", "--workdir", str(tmp_path / "w"), "--json"]
    argv += [f"-o{k}={v}" for k, v in options.items()]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["byte_identical"] and summary["target"] == f"s3://{s3_bucket}/demo"
