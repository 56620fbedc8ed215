"""PyTorch Lightning: a tiny real model trained on the CPU, each ModelCheckpoint file backed up,
and a fresh machine resuming from the newest one."""

import errno
import logging
import shutil

import pytest

from mlbackup import BackupConfig, open_target, restore
from mlbackup.integrations.lightning import BackupCheckpointCallback, resume_checkpoint
from mlbackup.testing.faulty_fs import faulty_target

# Lightning's advice about tiny runs (few batches, no logger, non-resumable loader) is noise here.
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning"
)


@pytest.fixture(scope="module")
def fit():
    """Train the tiny model (imported here, only where a test of this module runs)."""
    pytest.importorskip("torch")
    pytest.importorskip("lightning.pytorch")
    from lightning_tiny import fit

    return fit


@pytest.fixture
def config(tmp_path):
    return BackupConfig(source_root=tmp_path)


EVERY_SAVE = [
    "ckpt/epoch=0-step=2.ckpt",
    "ckpt/epoch=0-step=4.ckpt",
    "ckpt/epoch=0-step=6.ckpt",
    "ckpt/last.ckpt",
]


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_checkpoints_are_backed_up_and_a_fresh_machine_resumes_from_the_newest(
    tmp_path, config, background, fit
):
    ckpt = tmp_path / "ckpt"
    target = tmp_path / "target"
    assert resume_checkpoint(ckpt, target=target, config=config) is None
    with BackupCheckpointCallback(target, config=config, background=background) as backup:
        fit(ckpt, 6, backup)
    # save_top_k=1 left one step file on disk; the target holds what was saved.
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch=0-step=6.ckpt", "last.ckpt"]
    with open_target(str(target)) as opened:
        if background:  # a file save_top_k removed before its turn was skipped, not failed
            assert {"ckpt/epoch=0-step=6.ckpt", "ckpt/last.ckpt"} <= set(opened.names())
            assert set(opened.names()) <= set(EVERY_SAVE)
        else:
            assert opened.names() == EVERY_SAVE
            assert len(opened.versions("ckpt/last.ckpt")) == 3  # one per save
        for name in opened.names():
            opened.verify(name)
    assert backup.failures == {}
    restore("ckpt/last.ckpt", tmp_path / "check.ckpt", target=target)
    assert (tmp_path / "check.ckpt").read_bytes() == (ckpt / "last.ckpt").read_bytes()

    shutil.rmtree(ckpt)  # a fresh machine
    resume_from = resume_checkpoint(ckpt, target=target, config=config)
    assert resume_from == str(ckpt / "last.ckpt")
    again = resume_checkpoint(ckpt, target=target, config=config)
    assert again == resume_from  # the restored file counts as the backup, no second restore
    with BackupCheckpointCallback(target, config=config) as backup:
        resumed = fit(ckpt, 8, backup, ckpt_path=resume_from)
    assert resumed.steps_started == [6, 7]  # continued from step 6, not from scratch


def test_a_dead_store_never_stops_training(tmp_path, config, caplog, fit):
    ckpt = tmp_path / "ckpt"
    target, faults = faulty_target(tmp_path / "target")
    for opening in ("open", "open_unnamed"):  # every write refused
        faults.fail(opening, errno.EACCES, path_contains="/target/", times=1000)
    backup = BackupCheckpointCallback(target, config=config, background=False)
    with caplog.at_level(logging.ERROR, logger="mlbackup"), backup:
        fit(ckpt, 4, backup)
    assert (ckpt / "last.ckpt").is_file()  # training finished
    assert "ckpt/last.ckpt" in backup.failures
    assert "checkpoint ckpt/last.ckpt was not backed up" in caplog.text
