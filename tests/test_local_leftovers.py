"""Temp files that killed runs left in a local target are removed by the next write, once a
day old; a temp file another process is writing right now is never touched."""

import logging
import os
import time

from mlbackup import backup, open_target, restore
from mlbackup.testing.contract import leftover_temp_files

DAY = 24 * 3600


def aged(path, data: bytes, seconds: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_the_next_write_removes_day_old_temp_files_and_nothing_else(tmp_path, caplog):
    target_root = tmp_path / "target"
    run = tmp_path / "run"
    run.mkdir()
    (run / "weights.bin").write_bytes(b"v1")
    backup(run, target=target_root, name="run")
    tmp = target_root / ".mlbackup" / "tmp"
    stale = [
        aged(tmp / "put-old-layout", b"x" * 1000, DAY + 60),
        aged(tmp / "7" / "put-killed", b"y" * 2000, 3 * DAY),
    ]
    live = aged(tmp / "7" / "put-being-written", b"z", 60)

    (run / "weights.bin").write_bytes(b"v2")
    with caplog.at_level(logging.INFO, logger="mlbackup"):
        assert backup(run, target=target_root, name="run").version == 2

    assert not any(p.exists() for p in stale)
    assert leftover_temp_files(target_root) == [live]
    assert "removed 2 temp files (3000 bytes)" in caplog.text
    restore("run", tmp_path / "back", target=open_target(target_root))
    assert (tmp_path / "back" / "weights.bin").read_bytes() == b"v2"
