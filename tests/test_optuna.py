"""Optuna: the callback, the resume helper, and a study killed mid-run that resumes intact."""

import json
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing

import optuna
import pytest
from study_workers import (
    backups_while_they_run,
    each_version_holds_what_was_finished,
    study_workers,
)

from mlbackup import BackupConfig, open_target, restore
from mlbackup.background import BackgroundBackup
from mlbackup.integrations.optuna import BackupCallback, resume_study, sqlite_path

optuna.logging.set_verbosity(optuna.logging.WARNING)

CHILD = """
import json, sys
import optuna
from mlbackup.integrations.optuna import BackupCallback, resume_study
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage, target = sys.argv[1], sys.argv[2]
study = resume_study("hpo", storage, target=target,
                     sampler=optuna.samplers.RandomSampler(seed=1))
cb = BackupCallback(target, storage=storage)

def report(study, trial):
    cb.flush()  # so that "backed up" below is true when the parent reads it
    print(json.dumps({"number": trial.number, "value": trial.value, "params": trial.params}),
          flush=True)

study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=30,
               callbacks=[cb, report])
cb.close()
"""


def test_sqlite_path_forms():
    assert str(sqlite_path("sqlite:///a/b.db")) == "a/b.db"
    assert str(sqlite_path("sqlite:////abs/b.db")) == "/abs/b.db"
    assert str(sqlite_path("study.db")) == "study.db"
    with pytest.raises(ValueError, match="not a SQLite storage URL"):
        sqlite_path("postgresql://host/db")


@pytest.mark.slow
def test_killed_after_trial_17_resumes_with_the_first_17_intact(tmp_path):
    db = tmp_path / "run1" / "study.db"
    db.parent.mkdir()
    storage = f"sqlite:///{db}"
    target = tmp_path / "target"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, storage, str(target)], stdout=subprocess.PIPE, text=True
    )
    seen = []
    while len(seen) < 17:
        line = child.stdout.readline()
        assert line, "the child ended early"
        seen.append(json.loads(line))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL

    # A new machine: the local database is gone; the same path is restored and resumed.
    db.unlink()
    for sidecar in db.parent.glob("study.db-*"):
        sidecar.unlink()
    study = resume_study(
        "hpo", storage, target=target, sampler=optuna.samplers.RandomSampler(seed=2)
    )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 17
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for before, after in zip(seen, done[:17], strict=True):
        assert (after.number, after.value, after.params) == (
            before["number"],
            before["value"],
            before["params"],
        )
    with BackupCallback(target, storage=storage) as cb:
        while len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) < 30:
            study.optimize(lambda t: t.suggest_float("x", -5, 5) ** 2, n_trials=1, callbacks=[cb])
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 30


def test_sampler_state_round_trips(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    sampler_file = tmp_path / "sampler.pkl"
    target = tmp_path / "target"
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=3))
    with BackupCallback(target, storage=storage, sampler_path=sampler_file) as cb:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4, callbacks=[cb])
    (tmp_path / "study.db").unlink()
    sampler_file.unlink()
    resumed = resume_study(study.study_name, storage, target=target, sampler_path=sampler_file)
    assert isinstance(resumed.sampler, optuna.samplers.TPESampler)
    assert len(resumed.trials) == 4


def test_the_callback_sends_nothing_when_backup_is_disabled(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    target = tmp_path / "target"
    study = optuna.create_study(storage=storage)
    config = BackupConfig(source_root=tmp_path, enabled=False)
    with BackupCallback(target, storage=storage, config=config) as cb:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[cb])
    assert cb.backups_submitted == 0
    assert open_target(str(target)).names() == []


def worker(storage, stop, ready):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="live", storage=storage)
    n = 0
    while not stop.is_set():
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        n += 1
        if n == 2:
            ready.set()


def complete_trials(db):
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_live_study_under_four_writers(tmp_path, journal, figures):
    db = tmp_path / "study.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA journal_mode={journal}")
    storage = f"sqlite:///{db}"
    optuna.create_study(study_name="live", storage=storage)
    with study_workers(worker, storage), BackgroundBackup(tmp_path / "target") as bg:
        submitted = backups_while_they_run(bg, db, "study.db", complete_trials)

    def finished_in_version(version):
        out = tmp_path / f"v{version}.db"
        restore("study.db", out, target=tmp_path / "target", version=version)
        with closing(sqlite3.connect(out)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        figures.add("live SQLite snapshots restored and integrity-checked")
        return complete_trials(out)

    checked = each_version_holds_what_was_finished(submitted, finished_in_version)
    assert len(open_target(tmp_path / "target").versions("study.db")) == len(checked)


def test_resume_study_on_a_fresh_runtime_makes_the_study_folder(tmp_path, monkeypatch):
    """The README's first line, where outputs/hpo/ does not exist yet."""
    monkeypatch.chdir(tmp_path)
    study = resume_study(
        "hpo", "sqlite:///outputs/hpo/study.db", target=tmp_path / "t", direction="minimize"
    )
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=2)
    assert (tmp_path / "outputs" / "hpo" / "study.db").is_file()
