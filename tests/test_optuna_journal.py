"""Optuna studies in a JournalFileBackend file: backed up as an append-only log (complete
records only) while workers write, and resumed on a fresh machine."""

import logging
import shutil

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from study_workers import (
    backups_while_they_run,
    each_version_holds_what_was_finished,
    study_workers,
)

from mlbackup import open_target, restore
from mlbackup.background import BackgroundBackup
from mlbackup.integrations.optuna import BackupCallback, resume_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def journal_study(path, **kwargs):
    return optuna.load_study(storage=JournalStorage(JournalFileBackend(str(path))), **kwargs)


def complete(study):
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def objective(trial):
    return (trial.suggest_float("x", -10, 10) - 2) ** 2


def worker(path, stop, ready):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = journal_study(path, study_name="live")
    study.optimize(objective, n_trials=2)
    ready.set()
    while not stop.is_set():
        study.optimize(objective, n_trials=1)


@pytest.mark.slow
def test_a_journal_four_workers_write_backed_up_50_times_restores_whole_each_time(
    tmp_path, figures
):
    journal = tmp_path / "journal.log"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    optuna.create_study(study_name="live", storage=storage)
    target = tmp_path / "target"
    with study_workers(worker, str(journal)), BackgroundBackup(target) as bg:
        submitted = backups_while_they_run(
            bg, journal, "journal.log", lambda p: complete(journal_study(p, study_name="live"))
        )

    def finished_in_version(version):
        out = tmp_path / f"v{version}.log"
        restore("journal.log", out, target=target, version=version)
        assert out.read_bytes().endswith(b"\n")  # complete records only
        figures.add("journal snapshots restored and replayed")
        return complete(journal_study(out, study_name="live"))

    checked = each_version_holds_what_was_finished(submitted, finished_in_version)
    assert len(open_target(target).versions("journal.log")) == len(checked) > 1


def test_a_fresh_machine_resumes_a_journal_study(tmp_path):
    machine = tmp_path / "machine"
    journal = machine / "outputs" / "journal.log"
    target = tmp_path / "target"
    study = resume_study("hpo", str(journal), target=target, direction="minimize")
    with BackupCallback(target, storage=str(journal), background=False) as callback:
        study.optimize(objective, n_trials=4, callbacks=[callback])
        study.ask().suggest_float("x", -10, 10)  # the machine dies during this trial
        callback(study, study.trials[-1])
    before = study.trials
    shutil.rmtree(machine)

    resumed = resume_study("hpo", str(journal), target=target, direction="minimize")
    after = resumed.trials
    assert [(t.number, t.params, t.values) for t in after] == [
        (t.number, t.params, t.values) for t in before
    ]
    assert after[4].state == optuna.trial.TrialState.FAIL
    resumed.optimize(objective, n_trials=2)
    assert [t.number for t in resumed.trials][-2:] == [5, 6]


def test_a_torn_last_record_is_cut_and_every_complete_one_kept(tmp_path, caplog):
    journal = tmp_path / "journal.log"
    study = resume_study("hpo", str(journal), target=tmp_path / "target")
    study.optimize(objective, n_trials=3)
    whole = journal.read_bytes()
    with open(journal, "ab") as f:  # a writer died in the middle of its next record
        f.write(b'{"op_code": 5, "worker_id": "dead", "trial_id": 3, "sta')
    with caplog.at_level(logging.WARNING, logger="mlbackup"):
        resumed = resume_study("hpo", str(journal), target=tmp_path / "target")
    assert complete(resumed) == 3
    kept = journal.read_bytes()
    assert kept.startswith(whole) and b'"dead"' not in kept  # (Optuna appends as it opens)
    assert "torn record" in caplog.text and "cut 55 bytes" in caplog.text
