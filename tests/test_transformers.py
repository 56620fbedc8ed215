"""Hugging Face Trainer: a tiny real model trained on the CPU, its checkpoints backed up as they
are saved, and a fresh machine resuming from the newest one."""

import errno
import filecmp
import logging
import shutil

import pytest

from mlbackup import BackupConfig, open_target, restore
from mlbackup.integrations.transformers import BackupTrainerCallback, resume_checkpoint
from mlbackup.testing.faulty_fs import faulty_target


@pytest.fixture(scope="module")
def tiny():
    """The tiny model's module (imported here, only where a test of this module runs)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import transformers_tiny

    return transformers_tiny


@pytest.fixture
def config(tmp_path):
    return BackupConfig(source_root=tmp_path)


def test_each_checkpoint_and_the_final_model_are_backed_up_and_a_fresh_machine_resumes(
    tmp_path, config, tiny
):
    out = tmp_path / "outputs"
    target = tmp_path / "target"
    callback = BackupTrainerCallback(target, config=config)
    trainer = tiny.tiny_trainer(out, 6, [callback])
    assert resume_checkpoint(out, target=target, config=config) is None  # the first run
    trainer.train()
    callback.close()

    # Rotation kept only checkpoint-6 on disk; every checkpoint saved is on the target, whole.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6"]
    with open_target(str(target)) as opened:
        assert opened.names() == [
            "outputs/checkpoint-2",
            "outputs/checkpoint-4",
            "outputs/checkpoint-6",
            "outputs/final",
        ]
        for name in opened.names():
            opened.verify(name)
            files = {f.path for f in opened.manifest(name).files}
            assert "model.safetensors" in files
            if "checkpoint" in name:
                assert {"trainer_state.json", "optimizer.pt", "scheduler.pt"} <= files
    assert callback.failures == {}
    restored = tmp_path / "check"
    restore("outputs/checkpoint-6", restored, target=target)
    assert not filecmp.dircmp(out / "checkpoint-6", restored).diff_files

    # A fresh machine: the output folder is gone; the newest checkpoint comes back.
    shutil.rmtree(out)
    resume_from = resume_checkpoint(out, target=target, config=config)
    assert resume_from == str(out / "checkpoint-6")
    steps = tiny.StepCounter()
    resumed = tiny.tiny_trainer(out, 8, [BackupTrainerCallback(target, config=config), steps])
    resumed.train(resume_from_checkpoint=resume_from)
    assert steps.steps == [7, 8]  # continued from step 6, not from scratch


@pytest.mark.parametrize(
    "strategy",
    [
        {},
        {
            "save_strategy": "best",
            "eval_strategy": "steps",
            "eval_steps": 2,
            "metric_for_best_model": "loss",
        },
    ],
    ids=["every-2-steps", "best-only"],
)
def test_a_slow_store_still_gets_whole_checkpoints_despite_rotation(
    tmp_path, config, strategy, tiny
):
    # Each write to the store is slow, so a backup is still running when the next save comes
    # and rotation deletes its folder, unless the callback waits for it first.
    out = tmp_path / "outputs"
    target, faults = faulty_target(tmp_path / "target")
    faults.slow("open_unnamed", 0.05, path_contains="/target/")  # every object written
    with BackupTrainerCallback(target, config=config, final_dir=None) as callback:
        tiny.tiny_trainer(out, 6, [callback], **strategy).train()
    (kept,) = out.glob("checkpoint-*")
    expected = {p.name for p in kept.iterdir()}
    assert len(callback.sent) >= 2  # at least one save came while an earlier one was sent
    for name in callback.sent:
        manifest = target.manifest(name)
        assert {f.path for f in manifest.files} == expected
    assert callback.failures == {}


def test_a_newer_complete_local_checkpoint_wins_and_a_partial_one_is_ignored(
    tmp_path, config, tiny
):
    out = tmp_path / "outputs"
    target = tmp_path / "target"
    with BackupTrainerCallback(target, config=config, final_dir=None) as callback:
        tiny.tiny_trainer(out, 2, [callback]).train()
    (out / "checkpoint-9").mkdir()  # a save that died before writing trainer_state.json
    assert resume_checkpoint(out, target=target, config=config) == str(out / "checkpoint-2")
    newer = out / "checkpoint-4"
    shutil.copytree(out / "checkpoint-2", newer)
    assert resume_checkpoint(out, target=target, config=config) == str(newer)


def test_nothing_is_sent_when_backup_is_disabled(tmp_path, tiny):
    target = tmp_path / "target"
    config = BackupConfig(source_root=tmp_path, enabled=False)
    with BackupTrainerCallback(target, config=config) as callback:
        tiny.tiny_trainer(tmp_path / "outputs", 2, [callback]).train()
    assert (tmp_path / "outputs" / "checkpoint-2").is_dir()
    assert callback.sent == [] and open_target(str(target)).names() == []


def test_a_dead_store_never_stops_training(tmp_path, config, caplog, tiny):
    out = tmp_path / "outputs"
    target, faults = faulty_target(tmp_path / "target")
    for opening in ("open", "open_unnamed"):  # every write refused
        faults.fail(opening, errno.EACCES, path_contains="/target/", times=1000)
    callback = BackupTrainerCallback(target, config=config, final_dir=None)
    with caplog.at_level(logging.ERROR, logger="mlbackup"):
        tiny.tiny_trainer(out, 4, [callback]).train()
        callback.close()
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()  # training finished
    assert set(callback.failures) == {"outputs/checkpoint-2", "outputs/checkpoint-4"}
    assert "checkpoint outputs/checkpoint-4 was not backed up" in caplog.text
