"""Optuna: back a study up after every trial, and resume it on a fresh machine.

::

    from mlbackup.integrations.optuna import BackupCallback, resume_study

    study = resume_study("hpo", storage="sqlite:///outputs/hpo/study.db", target=URL)
    with BackupCallback(URL, storage="sqlite:///outputs/hpo/study.db") as backup_cb:
        study.optimize(objective, n_trials=200, callbacks=[backup_cb])

Optuna is imported only when these are used (``pip install "mlbackup[optuna]"``).
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..api import TargetArg, immediate_backup_if_needed, open_target_for, restore_if_missing
from ..background import BackgroundBackup
from ..closing import ClosingContext
from ..config import BackupConfig, load_config
from ..errors import ConfigError
from ..sources import APPEND_LOG_SUFFIXES
from ..target import BackupTarget
from .study_database import (
    check_server_url,
    is_server_url,
    load_study_database,
    snapshot_study_database,
)

if TYPE_CHECKING:
    import optuna

__all__ = [
    "BackupCallback",
    "BucketJournalBackend",
    "cut_torn_tail",
    "is_journal_path",
    "resume_study",
    "server_backup_name",
    "sqlite_path",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: the class subclasses Optuna's, and Optuna is optional.
    if name == "BucketJournalBackend":
        from .bucket_journal import BucketJournalBackend

        return BucketJournalBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .bucket_journal import BucketJournalBackend


def sqlite_path(storage: str | Path) -> Path:
    """The database file behind an Optuna SQLite storage URL (or a plain path).

    Examples:
        >>> sqlite_path("sqlite:///outputs/hpo/study.db")
        PosixPath('outputs/hpo/study.db')
        >>> sqlite_path("sqlite:////content/study.db")
        PosixPath('/content/study.db')
    """
    text = str(storage)
    if "://" not in text:
        return Path(text)
    parts = urlsplit(text)
    if not parts.scheme.startswith("sqlite") or parts.netloc:
        raise ConfigError(
            f"{text!r} is not a SQLite storage URL; mlbackup backs up SQLite studies "
            "(storage='sqlite:///path/to/study.db')"
        )
    # sqlite:///rel.db -> path "/rel.db" (relative); sqlite:////abs.db -> "//abs.db" (absolute)
    path = unquote(parts.path)[1:]
    if not path:
        raise ConfigError(f"{text!r} names no database file")
    return Path(path)


def is_journal_path(storage: object) -> bool:
    """Whether ``storage`` names the file of an Optuna ``JournalFileBackend`` (by its suffix:
    ``.log``, ``.jsonl`` or ``.journal``), which is backed up as an append-only log.

    Examples:
        >>> is_journal_path("outputs/hpo/journal.log"), is_journal_path("sqlite:///study.db")
        (True, False)
    """
    return (
        isinstance(storage, (str, Path))
        and "://" not in str(storage)
        and (Path(storage).suffix in APPEND_LOG_SUFFIXES)
    )


def server_backup_name(storage: str) -> str:
    """The name on the target of the snapshots of a study on a database server: its
    database's name, as a SQLite file.

    Examples:
        >>> server_backup_name("postgresql://optuna:secret@db.internal:5432/hpo")
        'hpo.db'
    """
    database = urlsplit(storage).path.strip("/")
    return f"{database or 'study'}.db"


def _sqlite_url(storage: str | Path) -> str:
    text = str(storage)
    return text if "://" in text else f"sqlite:///{text}"


class BackupCallback(ClosingContext):
    """An Optuna callback backing the study database up after every ``every_n_trials`` trials.

    In background mode (the default) the call returns at once and a worker sends the newest
    state; failures never interrupt ``study.optimize`` and are raised by `flush()` or
    `close()`. Use it as a context manager, or call `close()` after optimizing. With
    backup disabled (the ``enabled`` setting), it sends nothing.

    Args:
        target: a [`BackupTarget`][mlbackup.BackupTarget], URL or folder; default: the configured
            one.
        storage: the study's storage: a SQLite URL (or the database path), the path of a
            ``JournalFileBackend`` file (``.log``: its complete records are sent, only what
            was appended where the store can), or a database server
            (``postgresql://...``, ``mysql+pymysql://...``), whose study tables are read in one
            snapshot and backed up as an Optuna SQLite database (see
            `mlbackup.integrations.study_database`).
        every_n_trials: back up after every N-th finished trial.
        background: send from a worker thread (True) or inline (False).
        name: the database's name on the target; default: its path relative to the source root
            (for a server, `server_backup_name()`).
        sampler_path: if given, the study's sampler is pickled there and backed up with the
            database, so a resumed study samples reproducibly (see `resume_study()`).
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        keep_last: versions kept; default: the configured value.

    Examples:
        >>> import tempfile, optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> work = tempfile.mkdtemp()
        >>> storage = f"sqlite:///{work}/study.db"
        >>> study = optuna.create_study(storage=storage)
        >>> with BackupCallback(f"{work}/backups", storage=storage) as cb:
        ...     study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[cb])
        >>> cb.backups_submitted
        3
    """

    def __init__(
        self,
        target: TargetArg = None,
        storage: str | Path = "sqlite:///study.db",
        *,
        every_n_trials: int = 1,
        background: bool = True,
        name: str | None = None,
        sampler_path: str | Path | None = None,
        config: BackupConfig | None = None,
        keep_last: int | None = None,
    ) -> None:
        if every_n_trials < 1:
            raise ConfigError(f"every_n_trials must be at least 1, got {every_n_trials}")
        self.server_url = str(storage) if is_server_url(storage) else None
        if self.server_url is not None:
            check_server_url(self.server_url)  # a kind we cannot snapshot fails here, not later
            # Snapshots are written here, then backed up under the database's name.
            self._snapshots = tempfile.TemporaryDirectory(prefix="mlbackup-study-")
            self.db_path = Path(self._snapshots.name) / "study.db"
            name = name or server_backup_name(self.server_url)
        else:
            self.db_path = sqlite_path(storage)
        self.sampler_path = Path(sampler_path) if sampler_path is not None else None
        self.every_n_trials = every_n_trials
        self.name = name
        self.backups_submitted = 0
        self._config = config or load_config()
        self._keep_last = keep_last
        self._finished = 0
        self._target, self._owns_target = open_target_for(
            target, self._config, reach=not background
        )
        self._background = (
            BackgroundBackup(self._target, config=self._config, keep_last=keep_last)
            if background
            else None
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self._config.enabled:  # as immediate_backup_if_needed skips
            return
        self._finished += 1
        if self._finished % self.every_n_trials:
            return
        if self.sampler_path is not None:
            _save_sampler(study.sampler, self.sampler_path)
        snapshot = self._snapshot if self.server_url is not None else None
        paths: list[tuple[Path, str | None, Any]] = [(self.db_path, self.name, snapshot)]
        if self.sampler_path is not None:
            paths.append((self.sampler_path, None, None))
        for path, name, prepare in paths:
            if self._background is not None:
                self._background.submit(path, name, prepare=prepare)
            else:
                if prepare is not None:
                    prepare()
                immediate_backup_if_needed(
                    path, target=self._target, name=name, config=self._config,
                    keep_last=self._keep_last,
                )  # fmt: skip
        self.backups_submitted += 1

    def _snapshot(self) -> None:
        assert self.server_url is not None
        snapshot_study_database(self.server_url, self.db_path)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for pending backups; raise any failure since the last flush."""
        if self._background is not None:
            self._background.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush and stop the worker."""
        try:
            if self._background is not None:
                self._background.close(timeout)
        finally:
            if self._owns_target:
                self._target.close()
            if self.server_url is not None:
                self._snapshots.cleanup()


def _save_sampler(sampler: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(pickle.dumps(sampler))
    temp.replace(path)  # a crash never leaves a half-written pickle at ``path``


def resume_study(
    study_name: str,
    storage: str | Path = "sqlite:///study.db",
    *,
    target: TargetArg = None,
    name: str | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    sampler_path: str | Path | None = None,
    config: BackupConfig | None = None,
    **create_study_kwargs: Any,
) -> optuna.Study:
    """Restore a study's database if it is missing, and return the study ready to continue.

    On a fresh machine the database comes back from its newest backup; trials the dead machine
    left RUNNING are marked FAIL (nothing will ever finish them); then
    ``optuna.create_study(..., load_if_exists=True)`` returns the study, so the first run and
    every resumed run use the same line.

    With the path of a ``JournalFileBackend`` file (``outputs/hpo/journal.log``), the journal is
    restored the same way and the study opened on ``JournalStorage``; a journal whose last
    record is torn (a writer died mid-write) keeps every complete record and loses the torn
    tail, with a warning.

    With a database server's URL (``postgresql://...``), a study the database lacks is copied
    in from the newest snapshot `BackupCallback` backed up (its RUNNING trials marked FAIL);
    a study the database holds is left as it is, running trials and all (other workers may be
    running them).

    Args:
        study_name: the study's name.
        storage: its storage: a SQLite URL (or the database path), a journal file's path, or
            a database server's URL.
        target: a [`BackupTarget`][mlbackup.BackupTarget], URL or folder; default: the configured
            one.
        name: the database's name on the target; default: its path relative to the source root.
        sampler: the sampler to use when no pickled one is restored.
        sampler_path: where `BackupCallback` pickled the sampler; restored and unpickled
            if present (only unpickle files you wrote yourself).
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.
        **create_study_kwargs: passed to ``optuna.create_study`` (``direction``, ...).

    Examples:
        >>> import tempfile, optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> work = tempfile.mkdtemp()
        >>> study = resume_study("s", f"sqlite:///{work}/study.db", target=f"{work}/backups")
        >>> len(study.trials)
        0
    """
    import optuna

    cfg = config or load_config()
    if is_server_url(storage):
        return _resume_on_server(
            study_name, str(storage), target, name, sampler, sampler_path, cfg, create_study_kwargs
        )
    journal = is_journal_path(storage)
    db = Path(storage) if journal else sqlite_path(storage)
    opened, owned = open_target_for(target, cfg)
    try:
        restore_if_missing(db, target=opened, name=name, config=cfg)
        sampler = _restored_sampler(sampler_path, opened, cfg) or sampler
    finally:
        if owned:
            opened.close()
    # On a fresh runtime with nothing to restore, the study's folder may not exist yet (the
    # notebook makes it later): SQLite would fail with "unable to open database file".
    db.parent.mkdir(parents=True, exist_ok=True)
    rdb: optuna.storages.BaseStorage
    if journal:
        from optuna.storages.journal import JournalFileBackend

        cut_torn_tail(db)
        rdb = optuna.storages.JournalStorage(JournalFileBackend(str(db)))
    else:
        rdb = optuna.storages.RDBStorage(_sqlite_url(storage))
    study = optuna.create_study(
        study_name=study_name,
        storage=rdb,
        sampler=sampler,
        load_if_exists=True,
        **create_study_kwargs,
    )
    _fail_running(study, rdb)
    return study


def cut_torn_tail(journal: str | Path) -> int:
    """Cut a journal file after its last complete record (line); returns the bytes cut.

    A writer that died mid-write leaves a torn record, which Optuna cannot read; every
    complete record before it is kept.
    """
    path = Path(journal)
    if not path.is_file():
        return 0
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Look back for the last newline, a block at a time (records are small).
        end, block = size, 1 << 16
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            found = f.read(end - start).rfind(b"\n")
            if found >= 0:
                end = start + found + 1
                break
            end = start
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    logging.getLogger("mlbackup").warning(
        "journal %s ended in a torn record (a writer died mid-write): cut %d bytes after its "
        "last complete record",
        path,
        size - end,
    )
    return size - end


def _restored_sampler(
    sampler_path: str | Path | None, target: BackupTarget, cfg: BackupConfig
) -> Any:
    """The sampler `BackupCallback` pickled at ``sampler_path``, restored if missing; None
    without one."""
    if sampler_path is None:
        return None
    restore_if_missing(sampler_path, target=target, config=cfg)
    if not Path(sampler_path).exists():
        return None
    return pickle.loads(Path(sampler_path).read_bytes())  # noqa: S301 - our own file


def _fail_running(study: optuna.Study, rdb: optuna.storages.BaseStorage) -> None:
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        rdb.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)


def _resume_on_server(
    study_name: str,
    storage: str,
    target: TargetArg,
    name: str | None,
    sampler: optuna.samplers.BaseSampler | None,
    sampler_path: str | Path | None,
    cfg: BackupConfig,
    create_study_kwargs: dict[str, Any],
) -> optuna.Study:
    import optuna

    check_server_url(storage)
    rdb = optuna.storages.RDBStorage(storage)
    opened, owned = open_target_for(target, cfg)
    try:
        if study_name not in {s.study_name for s in rdb.get_all_studies()}:
            with tempfile.TemporaryDirectory(prefix="mlbackup-study-") as folder:
                snapshot = Path(folder) / "study.db"
                backup_name = name or server_backup_name(storage)
                restore_if_missing(snapshot, target=opened, name=backup_name, config=cfg)
                if snapshot.exists():
                    # RUNNING trials come over as FAIL, inside the copy's own transaction.
                    load_study_database(snapshot, storage, study_name)
        sampler = _restored_sampler(sampler_path, opened, cfg) or sampler
    finally:
        if owned:
            opened.close()
    return optuna.create_study(
        study_name=study_name,
        storage=rdb,
        sampler=sampler,
        load_if_exists=True,
        **create_study_kwargs,
    )
