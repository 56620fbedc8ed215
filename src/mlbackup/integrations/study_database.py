"""Optuna studies on a database server (PostgreSQL, MySQL): a consistent snapshot of the study
tables written as an Optuna SQLite database, and a study put back from one.

A snapshot reads every table in one read-only transaction with a single snapshot (PostgreSQL
``REPEATABLE READ``, MySQL ``WITH CONSISTENT SNAPSHOT``), so it shows the study as it was at one
instant while workers go on writing: never a trial whose parameters are there but not its row,
nor a finished trial without its values. ``optuna.copy_study`` reads a study in several
queries at ``READ COMMITTED``, so it can mix instants. Rows are streamed (a server-side cursor
on PostgreSQL), a thousand at a time. The snapshot opens with
``optuna.load_study(storage="sqlite:///...")`` on a machine with no server.

The tables are Optuna's own (``optuna.storages._rdb.models``): the schema every RDB storage of
the installed Optuna has.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import BackendUnavailableError, ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "check_server_url",
    "is_server_url",
    "load_study_database",
    "snapshot_study_database",
]

#: How each server's transaction is made read-only with one snapshot for all its reads: the
#: connection's isolation level (REPEATABLE READ), the execution options, and statements sent
#: first inside the transaction.
_MYSQL_START = ["START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"]
_SNAPSHOT_START: dict[str, tuple[dict[str, Any], list[str]]] = {
    "postgresql": ({"postgresql_readonly": True}, []),
    "mysql": ({}, _MYSQL_START),
    "mariadb": ({}, _MYSQL_START),
}

#: Rows copied per batch: bounds memory whatever the study's size.
_BATCH = 1000


def is_server_url(storage: object) -> bool:
    """Whether ``storage`` is the URL of a study on a database server (not SQLite).

    Examples:
        >>> is_server_url("postgresql://optuna@db.internal/hpo")
        True
        >>> is_server_url("sqlite:///study.db"), is_server_url("outputs/study.db")
        (False, False)
    """
    if not isinstance(storage, str) or "://" not in storage:
        return False
    scheme = urlsplit(storage).scheme.split("+")[0]
    return scheme not in ("sqlite", "file", "")


def check_server_url(url: str) -> str:
    """The server kind of ``url`` (``"postgresql"``, ``"mysql"``, ...); raises
    [`ConfigError`][mlbackup.ConfigError] for one mlbackup cannot snapshot consistently. Its
    password, if any, is hidden from every log record from now on."""
    _hide_password(url)
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme not in _SNAPSHOT_START:
        supported = ", ".join(f"{name}://" for name in _SNAPSHOT_START)
        raise ConfigError(
            f"mlbackup cannot take a consistent snapshot of a {scheme!r} study database; "
            f"supported servers: {supported} (or SQLite: sqlite:///path/to/study.db)"
        )
    return scheme


def _hide_password(url: str) -> None:
    from urllib.parse import parse_qs, unquote

    from ..redaction import register_secret

    parts = urlsplit(url)
    found = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    for password in found:
        for form in {password, unquote(password)}:  # SQLAlchemy logs the decoded form
            register_secret(form, min_length=1)


def _engine(url: str) -> Any:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        return sqlalchemy.create_engine(url, poolclass=NullPool)
    except ModuleNotFoundError as exc:
        scheme = urlsplit(url).scheme
        raise ConfigError(
            f"the database driver {scheme}:// needs is not installed ({exc.name}): install it, "
            "or name an installed one in the URL (postgresql+psycopg2://..., "
            "mysql+pymysql://...)"
        ) from exc


def _schema_tables() -> list[Any]:
    from optuna.storages._rdb import models

    # version_info and alembic_version are written by RDBStorage for the file it creates;
    # heartbeats belong to the processes of the server's workers, not to the study.
    skip = {"version_info", "trial_heartbeats"}
    return [t for t in models.BaseModel.metadata.sorted_tables if t.name not in skip]


def _schema_version(conn: Connection) -> str | None:
    version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if version is None else str(version)


def _new_sqlite_storage(path: Path) -> Any:
    """An empty Optuna SQLite database at ``path`` (Optuna creates the schema)."""
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{path}")


def snapshot_study_database(url: str, dest: str | os.PathLike[str]) -> int:
    """Write every study of the database at ``url`` to ``dest`` as an Optuna SQLite database,
    read in one snapshot; returns the number of trials in it.

    ``dest`` is replaced whole (written beside it under a name of its own, then renamed), so
    a reader never sees half a snapshot, and two snapshots at once do not mix.

    Raises:
        BackendUnavailableError: the server could not be reached or dropped the connection
            (worth another try).
        ConfigError: a server kind without consistent snapshots, or a schema other than this
            Optuna's.
    """
    import tempfile

    import sqlalchemy

    dialect = check_server_url(url)
    options, first_statements = _SNAPSHOT_START[dialect]
    final = Path(dest)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=final.name + ".", suffix=".partial")
    os.close(fd)
    partial = Path(name)
    partial.unlink()  # Optuna creates the database file itself
    storage = source = None
    trials = 0
    try:
        storage = _new_sqlite_storage(partial)
        source = _engine(url)
        with _unavailable_as_such(url), source.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ", **options)
            with conn.begin(), storage.engine.begin() as out:
                for statement in first_statements:
                    conn.exec_driver_sql(statement)
                _check_same_schema(conn, out, "the study database")
                streaming = conn.execution_options(stream_results=True, yield_per=_BATCH)
                for table in _schema_tables():
                    rows = streaming.execute(
                        sqlalchemy.select(table).order_by(*table.primary_key.columns)
                    ).mappings()
                    for batch in rows.partitions(_BATCH):
                        out.execute(table.insert(), [dict(row) for row in batch])
                        if table.name == "trials":
                            trials += len(batch)
        storage.engine.dispose()
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        if storage is not None:
            storage.engine.dispose()
        if source is not None:
            source.dispose()
    return trials


def _check_same_schema(theirs: Connection, ours: Connection, what: str) -> None:
    their_version, our_version = _schema_version(theirs), _schema_version(ours)
    if their_version != our_version:
        raise ConfigError(
            f"{what}'s schema is revision {their_version} and this Optuna's is {our_version}: "
            "use an Optuna whose schema is the same (or `optuna storage upgrade --storage URL`)"
        )


@contextlib.contextmanager
def _unavailable_as_such(url: str) -> Iterator[None]:
    """A server that cannot be reached, or that drops the connection, as
    `BackendUnavailableError` (retried with backoff by background backups)."""
    import sqlalchemy.exc

    try:
        yield
    except sqlalchemy.exc.OperationalError as exc:
        host = urlsplit(url).hostname or "localhost"
        raise BackendUnavailableError(
            f"the study database on {host} did not answer ({type(exc.orig).__name__}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}); the next backup "
            "tries again"
        ) from exc


def load_study_database(snapshot: str | os.PathLike[str], url: str, study_name: str) -> bool:
    """Copy study ``study_name`` from a SQLite snapshot into the database at ``url``, in one
    transaction; returns False if the database already holds a study of that name (it is left
    as it is; also when another worker put it back at the same moment) or the snapshot has
    none.

    Trials, parameters, values, intermediate values, attributes and directions come over; the
    ids are the database's own (other studies may be there), the trial numbers are kept. A
    trial the snapshot shows RUNNING comes over as FAIL, in the same transaction: the machine
    that ran it is gone, and no live worker's trial is ever touched.
    """
    import datetime

    import optuna
    import sqlalchemy
    import sqlalchemy.exc

    tables = {t.name: t for t in _schema_tables()}
    studies, trials = tables["studies"], tables["trials"]
    storage = source = None
    try:
        storage = optuna.storages.RDBStorage(url)  # creates the schema in an empty database
        source = _engine(f"sqlite:///{snapshot}")
        with source.connect() as src, storage.engine.begin() as out:
            _check_same_schema(src, out, f"the snapshot {snapshot}")
            by_name = studies.c.study_name == study_name
            if out.execute(sqlalchemy.select(studies.c.study_id).where(by_name)).first():
                return False
            old = src.execute(sqlalchemy.select(studies).where(by_name)).mappings().first()
            if old is None:
                return False
            try:
                inserted = out.execute(studies.insert().values(study_name=study_name))
            except sqlalchemy.exc.IntegrityError:  # another worker restored it just now
                return False
            new_study = _inserted_id(inserted)
            for name in ("study_directions", "study_user_attributes", "study_system_attributes"):
                _copy_rows(src, out, tables[name], "study_id", {old["study_id"]: new_study})
            trial_ids: dict[int, int] = {}
            old_trials = src.execute(
                sqlalchemy.select(trials)
                .where(trials.c.study_id == old["study_id"])
                .order_by(trials.c.trial_id)
            ).mappings()
            ended = datetime.datetime.now()
            for row in old_trials:
                values = {k: v for k, v in row.items() if k != "trial_id"}
                values["study_id"] = new_study
                if values["state"] == optuna.trial.TrialState.RUNNING:
                    values["state"] = optuna.trial.TrialState.FAIL
                    values["datetime_complete"] = ended
                inserted = out.execute(trials.insert().values(**values))
                trial_ids[row["trial_id"]] = _inserted_id(inserted)
            for name in (
                "trial_user_attributes",
                "trial_system_attributes",
                "trial_params",
                "trial_values",
                "trial_intermediate_values",
            ):
                _copy_rows(src, out, tables[name], "trial_id", trial_ids)
    except sqlalchemy.exc.IntegrityError:
        return False  # the commit met another worker's restore of the same study
    finally:
        if source is not None:
            source.dispose()
        if storage is not None:
            storage.engine.dispose()
    return True


def _inserted_id(result: Any) -> int:
    return int(result.inserted_primary_key[0])


def _copy_rows(src: Connection, out: Connection, table: Any, key: str, ids: dict[int, int]) -> None:
    """Copy ``table``'s rows whose ``key`` is in ``ids``, that column mapped, new row ids."""
    import sqlalchemy

    if not ids:
        return
    own_id = {column.name for column in table.primary_key.columns}
    for chunk in _chunks(sorted(ids), _BATCH):
        rows = src.execute(sqlalchemy.select(table).where(table.c[key].in_(chunk))).mappings()
        batch = []
        for row in rows:
            values = {k: v for k, v in row.items() if k not in own_id}
            values[key] = ids[row[key]]
            batch.append(values)
        if batch:
            out.execute(table.insert(), batch)


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
