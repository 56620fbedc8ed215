"""Background mode: coalescing, failures recorded not raised, flush and status."""

import threading
import uuid

import pytest

from mlbackup import BackupTarget, TargetError, open_target, restore
from mlbackup.background import BackgroundBackup, BackgroundBackupError
from mlbackup.testing.memory import MemoryBackend


class GatedBackend(MemoryBackend):
    """A memory backend whose uploads wait for the test to open a gate, and can be broken."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.uploading = threading.Event()
        self.uploads = 0
        self.broken = False

    def put_file(self, local_path, key):
        self.uploads += 1
        self.uploading.set()
        assert self.gate.wait(30)
        if self.broken:
            raise TargetError("the store refused the upload (test)")
        return super().put_file(local_path, key)


@pytest.fixture
def gated():
    backend = GatedBackend.from_url(f"memory://bg-{uuid.uuid4().hex}/run", {})
    return BackupTarget(backend)


def test_coalescing_sends_the_newest_state_far_fewer_times(gated, tmp_path):
    src = tmp_path / "study.txt"
    src.write_text("state 0")
    gated.backend.gate.clear()
    with BackgroundBackup(gated) as bg:
        futures = [bg.submit(src, "study.txt")]
        assert gated.backend.uploading.wait(30)  # the first upload is in flight, held
        for i in range(1, 100):
            src.write_text(f"state {i}")
            futures.append(bg.submit(src, "study.txt"))
        assert bg.status()["study.txt"].pending
        gated.backend.gate.set()
        bg.flush(timeout=60)
    assert gated.backend.uploads <= 2
    results = [f.result() for f in futures]
    assert results[-1] is results[1]  # 99 submissions coalesced into one job
    assert gated.backend.read_bytes("study.txt") == b"state 99"
    assert len(gated.versions("study.txt")) <= 2


def test_failures_never_raise_into_the_loop_but_at_flush(gated, tmp_path, caplog):
    src = tmp_path / "a.txt"
    src.write_text("a")
    gated.backend.broken = True
    bg = BackgroundBackup(gated)
    future = bg.submit(src, "a.txt")  # does not raise
    with pytest.raises(TargetError):
        future.result(timeout=30)
    status = bg.status()["a.txt"]
    assert status.failures == 1 and "refused" in status.last_error
    assert status.last_version is None
    bg.submit(src, "a.txt")
    with pytest.raises(BackgroundBackupError, match=r"a\.txt: the store refused"):
        bg.flush(timeout=30)
    assert caplog.text.count("background backup of a.txt failed") == 1  # warned once per kind
    gated.backend.broken = False
    bg.submit(src, "a.txt")
    bg.close(timeout=30)
    assert bg.status()["a.txt"].last_error is None
    assert bg.status()["a.txt"].last_version == 1


def test_a_path_removed_before_its_turn_is_skipped_only_when_missing_ok(gated, tmp_path):
    old, new = tmp_path / "epoch=0.ckpt", tmp_path / "epoch=1.ckpt"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    gated.backend.gate.clear()
    with BackgroundBackup(gated) as bg:
        bg.submit(new, "held.ckpt")
        assert gated.backend.uploading.wait(30)  # the worker is busy; the rest wait their turn
        rotated = bg.submit(old, "epoch=0.ckpt", missing_ok=True)
        bg.submit(old, "also-old.ckpt")
        old.unlink()  # the trainer's rotation removes it before the worker gets to it
        gated.backend.gate.set()
        with pytest.raises(BackgroundBackupError, match=r"also-old\.ckpt") as caught:
            bg.flush(timeout=30)
    assert list(caught.value.failures) == ["also-old.ckpt"]
    assert rotated.result().status.value == "skipped_missing"
    assert bg.status()["epoch=0.ckpt"].last_version is None
    assert not gated.versions("epoch=0.ckpt")


def test_strict_raises_from_the_next_submit(gated, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("a")
    gated.backend.broken = True
    bg = BackgroundBackup(gated, strict=True)
    with pytest.raises(TargetError):
        bg.submit(src, "a.txt").result(timeout=30)
    with pytest.raises(BackgroundBackupError):
        bg.submit(src, "a.txt")
    with pytest.raises(BackgroundBackupError):
        bg.close(timeout=30)


def test_status_reports_how_far_behind(gated, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("a")
    gated.backend.gate.clear()
    with BackgroundBackup(gated) as bg:
        bg.submit(src, "a.txt")
        assert gated.backend.uploading.wait(30)
        held = bg.status()["a.txt"]
        assert held.pending and held.behind_seconds >= 0 and held.last_version is None
        gated.backend.gate.set()
        done = bg.flush(timeout=30)["a.txt"]
    assert (done.pending, done.behind_seconds, done.last_version) == (False, 0.0, 1)


def test_flush_timeout_names_what_is_pending(gated, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("a")
    gated.backend.gate.clear()
    bg = BackgroundBackup(gated)
    bg.submit(src, "a.txt")
    with pytest.raises(TimeoutError, match=r"a\.txt"):
        bg.flush(timeout=0.05)
    gated.backend.gate.set()
    bg.close(timeout=30)


def test_pending_backups_are_flushed_at_interpreter_exit(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "out.txt"
    src.write_text("written just before exit")
    target = tmp_path / "target"
    code = (
        "import sys; from mlbackup.background import BackgroundBackup\n"
        "bg = BackgroundBackup(sys.argv[2]); bg.submit(sys.argv[1], 'out.txt')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(src), str(target)], check=True, timeout=60)
    assert (target / "out.txt").read_text() == "written just before exit"


def test_exit_reports_each_name_committed_or_not(tmp_path):
    """At exit one name is committed, one failed and one is stuck on a stalled target: each is
    reported."""
    import subprocess
    import sys

    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    code = """
import logging, sys
from mlbackup.background import BackgroundBackup
from mlbackup.testing.faulty_fs import faulty_target
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
target, faults = faulty_target(sys.argv[1])
bg = BackgroundBackup(target, exit_timeout=0.5)
bg.submit(sys.argv[2] + "/a.txt", "a.txt")
bg.submit(sys.argv[2] + "/missing.txt", "c.txt")  # fails for good: the file is gone
try:
    bg.flush()
except Exception:
    pass
faults.hold("open_unnamed", path_contains="/tmp/")  # the target stalls from here on, never released
bg.submit(sys.argv[2] + "/b.txt", "b.txt")
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "target"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "INFO at exit: a.txt committed as version 1 on file://" in done.stderr
    assert "ERROR at exit: b.txt NOT committed: still being sent" in done.stderr
    assert "the last committed version is none from this run" in done.stderr
    assert "ERROR at exit: c.txt NOT committed:" in done.stderr and "does not exist" in done.stderr


def test_prepare_writes_the_file_in_the_worker_and_its_failure_fails_the_backup(tmp_path):
    """How a database-server snapshot is taken: off the caller's thread, just before sending."""
    snapshot = tmp_path / "snapshot.db"
    threads = []

    def take_snapshot():
        threads.append(threading.current_thread().name)
        snapshot.write_text(f"state {len(threads)}")

    def broken():
        raise RuntimeError("the database server is down")

    with BackgroundBackup(tmp_path / "target") as bg:
        first = bg.submit(snapshot, "study.db", prepare=take_snapshot)
        bg.flush()
        assert first.result().status.value == "copied"
        assert threads == ["mlbackup-background"]
        failed = bg.submit(snapshot, "study.db", prepare=broken)
        with pytest.raises(BackgroundBackupError, match="database server is down"):
            bg.flush()
        assert isinstance(failed.exception(), RuntimeError)
    restore("study.db", tmp_path / "back.db", target=tmp_path / "target")
    assert (tmp_path / "back.db").read_text() == "state 1"
    assert open_target(tmp_path / "target").versions("study.db") == [1]
