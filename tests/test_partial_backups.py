"""A backup that leaves a file out for an error says so: it commits what it could, names each
file left out with why and the fix, sets ``partial`` (the API and ``--json``), and the CLI exits
23 (rsync's code for a partial transfer). Files left out by rule (symlinks, sockets,
credentials) do not make a backup partial.

Permissions do not bind root (Colab and this CI run as root), so an unreadable file is made by
``chmod 000`` and, for root, by the operating system's answer to opening it: PermissionError.
"""

import builtins
import json
import os

import pytest

from mlbackup import BackupStatus, backup, open_target, restore
from mlbackup.cli import main
from mlbackup.testing.contract import tree_snapshot


@pytest.fixture
def unreadable(monkeypatch):
    """make(path): the file can no longer be opened for reading by this process."""
    locked: set[str] = set()
    real_open, real_os_open = builtins.open, os.open

    def check(file):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in locked:
            raise PermissionError(13, "Permission denied", str(file))

    def fake_open(file, *args, **kwargs):
        check(file)
        return real_open(file, *args, **kwargs)

    def fake_os_open(path, *args, **kwargs):
        check(path)
        return real_os_open(path, *args, **kwargs)

    def make(path):
        path.chmod(0)
        locked.add(os.path.abspath(path))
        if os.geteuid() == 0:  # as the kernel answers an unprivileged user
            monkeypatch.setattr(builtins, "open", fake_open)
            monkeypatch.setattr(os, "open", fake_os_open)

    yield make
    for path in locked:
        os.chmod(path, 0o644)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "a.txt").write_text("a")
    (root / "b.bin").write_bytes(b"b" * 5000)
    return root


def test_a_file_never_readable_makes_the_backup_partial(tree, tmp_path, unreadable, figures):
    unreadable(tree / "b.bin")
    result = backup(tree, target=tmp_path / "t", name="run")
    figures.add("partial backups (files left out for an error)")
    assert result.status is BackupStatus.COPIED and result.partial
    (failed,) = result.failed_entries
    assert failed.startswith("b.bin: unreadable (Permission denied)")
    assert "chmod" in failed  # the fix
    assert result.to_dict()["partial"] is True
    restore("run", tmp_path / "back", target=open_target(tmp_path / "t"))
    assert tree_snapshot(tmp_path / "back") == {"a.txt": b"a"}


def test_a_changed_file_that_became_unreadable_is_not_unchanged(
    tree, tmp_path, unreadable, figures
):
    backup(tree, target=tmp_path / "t", name="run")
    (tree / "b.bin").write_bytes(b"new" * 3000)
    unreadable(tree / "b.bin")
    result = backup(tree, target=tmp_path / "t", name="run")
    figures.add("partial backups (files left out for an error)")
    assert result.status is not BackupStatus.UNCHANGED
    assert result.partial and result.failed_entries[0].startswith("b.bin: unreadable")


def test_the_cli_exits_23_on_a_partial_backup_and_json_says_so(
    tree, tmp_path, unreadable, capsys, monkeypatch, figures
):
    monkeypatch.setenv("MLBACKUP_TARGET", str(tmp_path / "t"))
    unreadable(tree / "b.bin")
    code = main(["backup", str(tree), "--name", "run", "--json"])
    figures.add("partial backups (files left out for an error)")
    assert code == 23
    out = json.loads(capsys.readouterr().out)
    assert out["partial"] is True and out["failed_entries"][0].startswith("b.bin: unreadable")


def test_the_cli_names_what_was_left_out_and_why(tree, tmp_path, unreadable, capsys, monkeypatch):
    monkeypatch.setenv("MLBACKUP_TARGET", str(tmp_path / "t"))
    unreadable(tree / "b.bin")
    assert main(["backup", str(tree), "--name", "run"]) == 23
    captured = capsys.readouterr()
    assert "PARTIAL" in captured.out and "b.bin: unreadable" in captured.out


def test_files_left_out_by_rule_do_not_make_a_backup_partial(tree, tmp_path):
    (tree / "link").symlink_to("a.txt")
    (tree / ".env").write_text("TOKEN=x")
    result = backup(tree, target=tmp_path / "t", name="run")
    assert not result.partial and len(result.skipped_entries) == 2


def test_doctor_says_beforehand_that_a_backup_would_be_partial(tree, tmp_path, monkeypatch):
    from mlbackup import run_doctor

    real_access = os.access
    locked = str(tree / "b.bin")
    monkeypatch.setattr(os, "access", lambda p, m: str(p) != locked and real_access(p, m))
    report = run_doctor(str(tmp_path / "t"), paths=[tree])
    problems = [f.message for f in report.findings if f.level == "problem"]
    assert any("b.bin: unreadable" in m and "partial" in m for m in problems)
    assert not report.ok
