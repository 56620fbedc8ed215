"""Optuna studies on a real PostgreSQL server: consistent snapshots while workers write, and a
study put back into an empty database on a fresh machine."""

import sqlite3
from contextlib import closing

import optuna
import pytest
from study_workers import study_workers

from mlbackup import BackendUnavailableError, ConfigError, open_target, restore
from mlbackup.integrations.optuna import BackupCallback, resume_study, server_backup_name

optuna.logging.set_verbosity(optuna.logging.WARNING)
STEPS = 3


def objective(trial):
    x = trial.suggest_float("x", -5, 5)
    trial.suggest_int("layers", 1, 4)
    trial.suggest_categorical("act", ["relu", "tanh"])
    for step in range(STEPS):
        trial.report(x * x + step, step)
    trial.set_user_attr("worker", "w")
    return x * x


def worker(url, stop, ready):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="live", storage=url)
    ready.set()
    while not stop.is_set():
        study.optimize(objective, n_trials=1)


def unlinked_rows(db):
    """Rows of the trial tables whose trial is not in the snapshot."""
    with closing(sqlite3.connect(db)) as conn:
        return sum(
            conn.execute(
                f"SELECT COUNT(*) FROM {table} r LEFT JOIN trials t ON r.trial_id = t.trial_id "
                "WHERE t.trial_id IS NULL"
            ).fetchone()[0]
            for table in ("trial_params", "trial_values", "trial_intermediate_values")
        )


@pytest.mark.slow(seconds=60)
def test_snapshots_while_four_workers_write_are_each_one_instant(
    postgres_database, tmp_path, figures
):
    url = postgres_database
    study = optuna.create_study(study_name="live", storage=url)
    target = tmp_path / "target"
    # While four workers write, a fifth backs the study up after each of its 30 trials, inline.
    callback = BackupCallback(target, storage=url, background=False)
    with study_workers(worker, url), callback:
        study.optimize(objective, n_trials=30, callbacks=[callback])
    opened = open_target(target)
    name = server_backup_name(url)
    versions = opened.versions(name)
    assert len(versions) == 30
    seen_complete = {}
    for version in versions:
        out = tmp_path / f"v{version}.db"
        restore(name, out, target=opened, version=version)
        assert unlinked_rows(out) == 0
        trials = optuna.load_study(study_name="live", storage=f"sqlite:///{out}").trials
        assert sorted(t.number for t in trials) == list(range(len(trials)))  # no gap
        complete = {t.number: t for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
        for trial in complete.values():
            assert trial.values == [pytest.approx(trial.params["x"] ** 2, rel=1e-12)]
            assert set(trial.params) == {"x", "layers", "act"}
            assert len(trial.intermediate_values) == STEPS
        # Each snapshot is a later instant: what was finished stays finished, unchanged.
        for number, value in seen_complete.items():
            assert complete[number].value == value
        seen_complete = {n: t.value for n, t in complete.items()}
        figures.add("study snapshots taken from a database server while workers wrote")
    assert len(seen_complete) > 30  # the other workers' trials are in it too


def test_a_fresh_machine_resumes_the_study_into_an_empty_database(
    postgres_server, postgres_database, tmp_path
):
    url = postgres_database
    target = tmp_path / "target"
    study = optuna.create_study(study_name="hpo", storage=url, direction="maximize")
    study.set_user_attr("dataset", "wikitext")
    study._storage.set_study_system_attr(study._study_id, "origin", "colab")

    with BackupCallback(target, storage=url, background=False) as callback:
        study.optimize(objective, n_trials=5, callbacks=[callback])
        running = study.ask()  # the machine dies during this trial
        running.suggest_float("x", -5, 5)
        callback(study, study.trials[-1])
    before = study.trials

    database = url.rsplit("/", 1)[1]
    postgres_server.drop_database(database)  # the server's disk is gone too
    postgres_server.create_database(database)
    resumed = resume_study("hpo", url, target=target)

    assert resumed.directions == study.directions
    assert resumed.user_attrs == {"dataset": "wikitext"}
    assert resumed._storage.get_study_system_attrs(resumed._study_id)["origin"] == "colab"
    after = resumed.trials
    assert [t.number for t in after] == [t.number for t in before]
    for old, new in zip(before[:5], after[:5], strict=True):
        assert (new.state, new.values, new.params) == (old.state, old.values, old.params)
        assert new.intermediate_values == old.intermediate_values
        assert new.user_attrs == old.user_attrs
        assert new.distributions == old.distributions
    assert after[5].state == optuna.trial.TrialState.FAIL  # nothing will ever finish it
    assert after[5].params == before[5].params

    resumed.optimize(objective, n_trials=2)
    assert [t.number for t in resumed.trials][-2:] == [6, 7]

    # A study the database holds is left alone: a running trial may be another worker's.
    live = resumed.ask()
    again = resume_study("hpo", url, target=target)
    assert again.trials[live.number].state == optuna.trial.TrialState.RUNNING


def test_a_database_without_consistent_snapshots_is_refused_up_front(tmp_path):
    with pytest.raises(ConfigError, match=r"oracle.*supported servers: postgresql://"):
        BackupCallback(tmp_path / "target", storage="oracle://scott:tiger-pass@db/hpo")
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql+psycopg2://optuna:s3cret-db-pass@127.0.0.1:1/hpo", "s3cret-db-pass"),
        ("postgresql+psycopg2://optuna:hunter2@127.0.0.1:1/hpo", "hunter2"),  # short
        (
            "postgresql+psycopg2://optuna:p%40ss-w%3Ard@127.0.0.1:1/hpo",
            "p@ss-w:rd",
        ),  # as SQLAlchemy logs it
        ("postgresql+psycopg2://optuna@127.0.0.1:1/hpo?password=in-the-query", "in-the-query"),
    ],
)
def test_the_password_of_a_database_url_never_reaches_a_log(tmp_path, caplog, url, password):
    import logging

    with caplog.at_level(logging.DEBUG):
        callback = BackupCallback(tmp_path / "target", storage=url, background=False)
        logging.getLogger("sqlalchemy").warning("connecting with %s", password)
        with pytest.raises(BackendUnavailableError, match="did not answer") as failed:
            callback._snapshot()  # no server there
        callback.close()
    assert password not in caplog.text
    assert password not in str(failed.value)
    assert list(tmp_path.rglob("*.partial")) == []


def test_workers_putting_one_study_back_at_once_all_go_on(
    postgres_server, postgres_database, tmp_path
):
    """Every worker of a fresh server runs resume_study at the same moment: one copies the
    study in, the others find it there."""
    import threading

    from mlbackup.integrations.study_database import load_study_database, snapshot_study_database

    study = optuna.create_study(study_name="hpo", storage=postgres_database)
    study.optimize(objective, n_trials=3)
    snapshot_study_database(postgres_database, tmp_path / "snap.db")
    fresh = postgres_server.create_database("fresh" + postgres_database[-8:])
    optuna.storages.RDBStorage(fresh)  # the schema, so the workers race on the study alone
    results, errors = [], []

    def load():
        try:
            results.append(load_study_database(tmp_path / "snap.db", fresh, "hpo"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(results) == [False, False, False, True]
    assert len(optuna.load_study(study_name="hpo", storage=fresh).trials) == 3


def test_a_missing_database_driver_is_named_with_the_fix(tmp_path):
    pytest.importorskip("psycopg2")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("psycopg is installed here")
    callback = BackupCallback(
        tmp_path / "t", storage="postgresql://u@127.0.0.1:1/x", background=False
    )
    with pytest.raises(
        ConfigError, match=r"driver postgresql:// needs is not installed \(psycopg\)"
    ):
        callback._snapshot()
    callback.close()
