"""kill -9 during a restore of a folder: the folder is either whole or not there, so the next
restore_if_missing() (the resume call) restores it again instead of resuming on half a tree."""

import os
import signal
import subprocess
import sys

import pytest

from mlbackup import RestoreStatus, backup, restore_if_missing
from mlbackup.crashpoints import RESTORE_POINTS
from mlbackup.testing.contract import tree_snapshot, write_tree

CHILD = """
import sys
from mlbackup import restore_if_missing
restore_if_missing(sys.argv[1], target=sys.argv[2], name="ckpt")
"""


@pytest.fixture
def backed_up(tmp_path):
    files = {f"layer{i % 3}/w{i}.bin": os.urandom(2000 + i) for i in range(8)}
    source = write_tree(tmp_path / "ckpt", files)
    (source / "empty").mkdir()
    target = tmp_path / "target"
    backup(source, target=target, name="ckpt")
    return source, target


@pytest.mark.parametrize("point", [f"{p}:{n}" for p in RESTORE_POINTS for n in (1, 5)])
def test_a_restore_killed_half_way_leaves_no_folder_and_the_next_one_is_whole(
    backed_up, tmp_path, point
):
    source, target = backed_up
    dest = tmp_path / "new-machine" / "outputs" / "ckpt"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(dest), str(target)],
        env={**os.environ, "MLBACKUP_CRASH_AT": point},
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert not dest.exists()  # not half a tree that the resume call would take as restored
    result = restore_if_missing(dest, target=target, name="ckpt")
    assert result.status is RestoreStatus.RESTORED
    assert tree_snapshot(dest) == tree_snapshot(source)
