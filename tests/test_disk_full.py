"""A full local disk, made real with RLIMIT_FSIZE in a child process: the kernel refuses the
write (EFBIG) exactly as a full disk refuses it (ENOSPC), mid-file.

Rows: the SQLite snapshot beside the source cannot be written; the local target's disk is full;
the restore destination's disk is full. Each ends in a clear error, leaves no temp file, and
changes nothing that was committed or already on disk.
"""

import json
import sqlite3
import subprocess
import sys

import pytest

from mlbackup import TargetError, backup, open_target, restore, run_doctor
from mlbackup.testing.contract import leftover_temp_files, tree_snapshot

LIMIT = 64 << 10  # bytes any one file may grow to in the child

CHILD = f"""
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))
import mlbackup
args = json.loads(sys.argv[1])
try:
    getattr(mlbackup, args.pop("call"))(*args.pop("args"), **args)
except mlbackup.MLBackupError as exc:
    print(json.dumps({{"error": type(exc).__name__, "message": str(exc)}}))
else:
    print(json.dumps({{"error": None}}))
"""


@pytest.fixture(autouse=True)
def count_the_fault(figures):
    figures.add("injected faults")  # one full disk per test


def run_with_a_full_disk(call, *args, **kwargs):
    spec = json.dumps({"call": call, "args": [str(a) for a in args], **kwargs})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, spec], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr  # a clear error, never a crash
    return json.loads(done.stdout)


def make_db(path, rows):
    with sqlite3.connect(path) as db:
        db.execute("create table if not exists t (x blob)")
        db.executemany("insert into t values (?)", [(b"r" * 1000,)] * rows)
    db.close()


def test_snapshot_of_a_database_on_a_full_disk(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    make_db(run / "study.db", 10)
    target = tmp_path / "t"
    backup(run, target=target, name="run")
    make_db(run / "study.db", 200)  # now far above the limit
    outcome = run_with_a_full_disk("backup", run, target=str(target), name="run")
    assert outcome["error"] == "SourceError"
    assert "could not snapshot the SQLite database" in outcome["message"]
    assert not list(run.glob(".mlbackup-snap-*"))
    assert open_target(target).versions("run") == [1]


def test_local_target_disk_full(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "small.txt").write_text("small")
    target = tmp_path / "t"
    backup(run, target=target, name="run")
    first = tree_snapshot(run)
    (run / "weights.bin").write_bytes(b"w" * (LIMIT * 2))
    outcome = run_with_a_full_disk("backup", run, target=str(target), name="run")
    assert outcome["error"] == "TargetError"
    assert "the disk is full; free space there" in outcome["message"]
    assert not leftover_temp_files(target)
    t = open_target(target)
    assert t.versions("run") == [1]
    restore("run", tmp_path / "v1", target=t)
    assert tree_snapshot(tmp_path / "v1") == first


@pytest.mark.parametrize("overwrite", [False, True])
def test_restore_onto_a_full_disk_places_nothing(tmp_path, overwrite):
    run = tmp_path / "run"
    run.mkdir()
    (run / "a.txt").write_text("a")
    (run / "weights.bin").write_bytes(b"w" * (LIMIT * 2))
    target = tmp_path / "t"
    backup(run, target=target, name="run")
    dest = tmp_path / "dest"
    if overwrite:
        dest.mkdir()
        (dest / "a.txt").write_text("mine")
    before = tree_snapshot(dest) if overwrite else None
    outcome = run_with_a_full_disk("restore", "run", dest, target=str(target), overwrite=overwrite)
    assert outcome["error"] == "DestinationError"
    assert "the disk is full" in outcome["message"] and "nothing was placed" in outcome["message"]
    if overwrite:
        assert tree_snapshot(dest) == before  # not even a.txt, which fitted, was replaced
    else:
        assert not dest.exists()
        assert not list(tmp_path.glob(".mlbackup-restore-*"))  # nor the folder it was built in
    restore("run", tmp_path / "roomy", target=target)  # with room, the same restore works
    assert tree_snapshot(tmp_path / "roomy") == tree_snapshot(run)


@pytest.fixture
def small_disk(tmp_path):
    """A real 20 MB filesystem (tmpfs; mounting it needs root, as on Colab and in CI here)."""
    import os

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("needs root to mount a 20 MB tmpfs")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _used(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_backup_that_fills_the_target_leaves_nothing_behind(small_disk, tmp_path):
    import os

    big = tmp_path / "big"
    big.mkdir()
    for i in range(30):  # 30 MB onto a 20 MB disk
        (big / f"shard{i:02}.bin").write_bytes(os.urandom(1 << 20))
    target = small_disk / "t"
    with pytest.raises(TargetError, match="disk is full"):
        backup(big, target=target, name="big")
    assert _used(small_disk) < 64 << 10, "uncommitted objects left on the full disk"
    assert not leftover_temp_files(target)
    small = tmp_path / "small"
    small.mkdir()
    (small / "model.bin").write_bytes(os.urandom(8 << 20))
    assert backup(small, target=target, name="small").version == 1  # the disk is usable
    report = run_doctor(str(target))
    assert not [f for f in report.findings if f.check == "leftovers"]


def test_doctor_reports_objects_no_version_lists_and_repair_removes_old_ones(tmp_path):
    import os
    import time

    run = tmp_path / "run"
    run.mkdir()
    (run / "a.bin").write_bytes(b"a" * 1000)
    target = tmp_path / "t"
    backup(run, target=target, name="run")
    t = open_target(target)
    orphan = t.backend.stored_path(".mlbackup/objects/" + "0" * 32)  # a killed run's object
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x" * 5000)
    report = run_doctor(str(target))
    (finding,) = [f for f in report.findings if f.check == "leftovers"]
    assert "1 object" in finding.message and "5.0 kB" in finding.message
    assert orphan.exists()  # too young to be sure no backup is writing it: kept
    old = time.time() - 7 * 3600
    os.utime(orphan, (old, old))
    run_doctor(str(target), repair=True)
    assert not orphan.exists()
    restore("run", tmp_path / "back", target=open_target(target))
    assert tree_snapshot(tmp_path / "back") == tree_snapshot(run)
