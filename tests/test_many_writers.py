"""Many writers of one name, no shared lock (storage format 2).

Two writer processes with separate lock folders and source folders (two "machines") back up
to one name on the same store at the same moments: first each its own tree, then both the
same tree. Every round both backups succeed, and every version restores byte for byte to the
tree of the writer that committed it, right after its round and after all rounds. On one
machine, three spellings of one folder are one lock.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import empty_store
from writer_child import tree_for

from mlbackup import open_target, restore
from mlbackup.testing.contract import tree_snapshot

ROUNDS = 20
CHILD = Path(__file__).with_name("writer_child.py")


def start_writer(url, options, workdir, writer, lock_dir=None):
    workdir.mkdir(parents=True)
    args = [sys.executable, str(CHILD), url, json.dumps(options), "ckpt", str(workdir), writer]
    return subprocess.Popen(
        [*args, str(lock_dir)] if lock_dir else args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def restores_to(target, version, files, dest):
    restore("ckpt", dest, target=target, version=version)
    return tree_snapshot(dest) == tree_snapshot_of(files)


def tree_snapshot_of(files):
    folders = {}
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folders["/".join(parts[:i]) + "/"] = None
    return {**folders, **files}


@pytest.mark.slow(seconds=25)
@pytest.mark.parametrize("kind", ["file", "drive", "s3", "gs", "gdrive"])
def test_two_machines_back_up_one_name_at_once(request, kind, tmp_path, figures):
    url, options = empty_store(request, kind, tmp_path)
    writers = {w: start_writer(url, options, tmp_path / w, w) for w in ("a", "b")}
    committed = {}  # version -> the files it must restore to
    target = open_target(url, **options)
    try:
        for round_ in range(ROUNDS):
            same = round_ >= ROUNDS // 2
            for proc in writers.values():
                proc.stdin.write(f"{round_} {'same' if same else 'own'}\n")
                proc.stdin.flush()
            answers = {w: json.loads(proc.stdout.readline()) for w, proc in writers.items()}
            # Commits first: a writer finding the tree unchanged may have found the other's.
            for writer, answer in sorted(
                answers.items(), key=lambda a: a[1]["status"] == "unchanged"
            ):
                assert "error" not in answer, f"round {round_}, writer {writer}: {answer}"
                files = tree_for(writer, round_, same)
                if answer["status"] == "unchanged":
                    # The other writer committed this very tree first: nothing to add.
                    assert same and committed.get(answer["version"]) == files, answer
                    continue
                assert answer["version"] not in committed, "two writers got one version"
                committed[answer["version"]] = files
                dest = tmp_path / "now" / f"v{answer['version']}"
                assert restores_to(target, answer["version"], files, dest), (
                    f"version {answer['version']} (writer {writer}, round {round_})"
                )
    finally:
        for proc in writers.values():
            proc.stdin.close()
            proc.wait(timeout=60)
    assert sorted(committed) == target.versions("ckpt") == list(range(1, len(committed) + 1))
    assert len(committed) > ROUNDS  # at least each own tree of both writers
    for version, files in committed.items():
        dest = tmp_path / "after" / f"v{version}"
        assert restores_to(target, version, files, dest), f"version {version} after all rounds"
        assert target.verify("ckpt", version).files_checked == len(files)
    figures.add("versions committed by concurrent writers of one name", len(committed))


def test_three_spellings_of_one_folder_are_one_lock(tmp_path, drive_mount):
    real = tmp_path / "real" / "target"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    spellings = [str(real), str(tmp_path / "link"), str(real / ".." / "target")]
    keys = {open_target(s).backend.lock_key for s in spellings}
    assert len(keys) == 1, keys
    mounted = drive_mount / "MyDrive" / "runs" / "t"
    mounted.mkdir(parents=True)
    keys = {open_target(s).backend.lock_key for s in ("drive://runs/t", str(mounted))}
    assert len(keys) == 1, keys


def test_three_spellings_writing_at_once_all_commit(tmp_path, figures):
    """Writers on one machine through three spellings (one lock folder): all commit, in turn,
    and every version restores exactly."""
    real = tmp_path / "real" / "target"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    spellings = [str(real), str(tmp_path / "link"), str(real / ".." / "target")]
    procs = {
        f"w{i}": start_writer(spelling, {}, tmp_path / f"w{i}", f"w{i}", tmp_path / "locks")
        for i, spelling in enumerate(spellings)
    }
    committed = {}
    try:
        for round_ in range(5):
            for proc in procs.values():
                proc.stdin.write(f"{round_} own\n")
                proc.stdin.flush()
            for writer, proc in procs.items():
                answer = json.loads(proc.stdout.readline())
                assert "error" not in answer, answer
                committed[answer["version"]] = tree_for(writer, round_, False)
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait(timeout=60)
    target = open_target(real)
    assert sorted(committed) == target.versions("ckpt") == list(range(1, 16))
    for version, files in committed.items():
        assert restores_to(target, version, files, tmp_path / "out" / f"v{version}")
    figures.add("versions committed by concurrent writers of one name", len(committed))


def test_another_writers_file_of_the_same_size_and_time_is_read(tmp_path):
    """Two writers' files with one size and one mtime (the kernel's clock ticks in
    milliseconds, so writers at the same moment get them): the second writer's bytes are
    what its version holds, not the first one's."""
    from mlbackup import backup
    from mlbackup.testing.contract import write_tree

    a = write_tree(tmp_path / "a", {"f.bin": b"a" * 100})
    b = write_tree(tmp_path / "b", {"f.bin": b"b" * 100})
    stamp = (a / "f.bin").stat().st_mtime_ns
    os.utime(b / "f.bin", ns=(stamp, stamp))
    target = open_target(tmp_path / "target")
    backup(a, target=target, name="n")
    assert backup(b, target=target, name="n").version == 2
    restore("n", tmp_path / "v2", target=target, version=2)
    assert (tmp_path / "v2" / "f.bin").read_bytes() == b"b" * 100
    # The same writer again, nothing changed: not read at all.
    assert backup(b, target=target, name="n").files_sent == 0
