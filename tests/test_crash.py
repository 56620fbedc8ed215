"""kill -9 at every named point of the protocol, and at instants picked by progress.

Each trial: versions 1 and 2 are committed; the source changes (files edited, deleted, added);
a child process backing it up with keep_last=2 is SIGKILLed. Afterwards every committed version
must restore byte for byte, and the next backup must complete and be exact.
"""

import os
import signal
import subprocess
import sys

import pytest

from mlbackup import backup, open_target, restore
from mlbackup.crashpoints import POINTS
from mlbackup.testing.contract import tree_snapshot

CHILD = """
import sys
from mlbackup import backup
def progress(event):
    print(event.path, flush=True)
backup(sys.argv[1], target=sys.argv[2], name="ckpt", keep_last=2, progress=progress)
print("done", flush=True)
"""


def write_tree(root, generation):
    for i in range(12):
        path = root / f"d{i % 3}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 4 == 0 or generation == 0:
            path.write_bytes(f"gen{generation}-{i}".encode() * (100 + i))
    gone = root / "d0" / f"f{generation}.bin"
    if generation and gone.exists():
        gone.unlink()
    (root / f"new-{generation}.txt").write_text(f"added in {generation}")


@pytest.fixture
def committed(tmp_path):
    """A source with versions 1 and 2 committed, then changed again; returns snapshots."""
    src = tmp_path / "ckpt"
    target = tmp_path / "target"
    snapshots = {}
    for generation in (0, 1):
        write_tree(src, generation)
        backup(src, target=target, name="ckpt", keep_last=2)
        snapshots[generation + 1] = tree_snapshot(src)
    write_tree(src, 2)
    return src, target, snapshots


def run_child(src, target, env_extra=None, kill_after_lines=None):
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(src), str(target)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    if kill_after_lines is not None:
        for _ in range(kill_after_lines):
            if not proc.stdout.readline():
                break
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def check_all_versions(target, snapshots, tmp_path, label):
    t = open_target(target)
    for version in t.versions("ckpt"):
        dest = tmp_path / f"restore-{label}-v{version}"
        restore("ckpt", dest, target=t, version=version)
        assert tree_snapshot(dest) == snapshots[version], f"version {version} after {label}"
        t.verify("ckpt", version)
    return t.versions("ckpt")


@pytest.mark.parametrize(
    "point",
    [
        "after-displace:1",
        "after-displace:3",
        "after-put:1",
        "after-put:4",
        "before-commit",
        "after-commit",
        "during-retention",
    ],
)
def test_kill_at_named_point(committed, tmp_path, point):
    src, target, snapshots = committed
    assert point.split(":")[0] in POINTS
    code, _ = run_child(src, target, {"MLBACKUP_CRASH_AT": point})
    assert code == -signal.SIGKILL
    snapshots[3] = tree_snapshot(src)
    versions = check_all_versions(target, snapshots, tmp_path, "crash")
    committed_new = point in ("after-commit", "during-retention")
    assert versions[-1] == (3 if committed_new else 2)
    # The next run finishes the job.
    backup(src, target=target, name="ckpt", keep_last=2)
    versions = check_all_versions(target, snapshots, tmp_path, "recovery")
    assert versions == [2, 3]


@pytest.mark.parametrize("lines", [0, 1, 2, 5, 8, 11])
def test_kill_at_progress_instants(committed, tmp_path, lines):
    src, target, snapshots = committed
    code, _ = run_child(src, target, kill_after_lines=lines)
    assert code in (-signal.SIGKILL, 0)
    snapshots[3] = tree_snapshot(src)
    check_all_versions(target, snapshots, tmp_path, "crash")
    backup(src, target=target, name="ckpt", keep_last=2)
    assert check_all_versions(target, snapshots, tmp_path, "recovery")[-1] == 3
