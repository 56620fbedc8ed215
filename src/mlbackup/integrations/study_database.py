"""Optuna studies on a database server (PostgreSQL, MySQL): a consistent snapshot of the study
tables written as an Optuna SQLite database, and a study put back from one.

A snapshot reads every table in one read-only transaction with a single snapshot (PostgreSQL
``REPEATABLE READ``, MySQL ``WITH CONSISTENT SNAPSHOT``), so it shows the study as it was at one
instant while workers go on writing: never a trial whose parameters are there but not its row,
nor a finished trial without its values. ``optuna.copy_study`` reads trial by trial, each in a
transaction of its own, so it can mix instants. The snapshot opens with
``optuna.load_study(storage="sqlite:///...")`` on a machine with no server.

The tables are Optuna's own (``optuna.storages._rdb.models``): the schema every RDB storage of
the installed Optuna has.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "check_server_url",
    "is_server_url",
    "load_study_database",
    "snapshot_study_database",
]

#: How each server opens a read-only transaction whose reads all see one snapshot.
_SNAPSHOT_START = {
    "postgresql": ["START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"],
    "mysql": [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    ],
    "mariadb": [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    ],
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
    from ..redaction import register_secret

    register_secret(urlsplit(url).password)
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme not in _SNAPSHOT_START:
        supported = ", ".join(f"{name}://" for name in _SNAPSHOT_START)
        raise ConfigError(
            f"mlbackup cannot take a consistent snapshot of a {scheme!r} study database; "
            f"supported servers: {supported} (or SQLite: sqlite:///path/to/study.db)"
        )
    return scheme


def _engine(url: str) -> Any:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    return sqlalchemy.create_engine(url, poolclass=NullPool)


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

    ``dest`` is replaced whole (written beside it, then renamed), so a reader never sees half a
    snapshot.
    """
    import sqlalchemy

    dialect = check_server_url(url)
    final = Path(dest)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    partial.unlink(missing_ok=True)
    storage = _new_sqlite_storage(partial)
    source = _engine(url)
    trials = 0
    try:
        with source.connect() as conn, storage.engine.begin() as out:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # we open it ourselves
            for statement in _SNAPSHOT_START[dialect]:
                conn.exec_driver_sql(statement)
            try:
                theirs, ours = _schema_version(conn), _schema_version(out)
                if theirs != ours:
                    raise ConfigError(
                        f"the study database's schema is version {theirs} and this Optuna's "
                        f"is {ours}: run the same Optuna version as the workers (or "
                        "`optuna storage upgrade --storage URL`)"
                    )
                for table in _schema_tables():
                    rows = conn.execute(
                        sqlalchemy.select(table).order_by(*table.primary_key.columns)
                    ).mappings()
                    for batch in rows.partitions(_BATCH):
                        out.execute(table.insert(), [dict(row) for row in batch])
                        if table.name == "trials":
                            trials += len(batch)
            finally:
                conn.exec_driver_sql("COMMIT")  # ends the read-only transaction
    except BaseException:
        storage.engine.dispose()
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.dispose()
    storage.engine.dispose()
    os.replace(partial, final)
    return trials


def load_study_database(snapshot: str | os.PathLike[str], url: str, study_name: str) -> bool:
    """Copy study ``study_name`` from a SQLite snapshot into the database at ``url``, in one
    transaction; returns False if the database already holds a study of that name (it is left
    as it is) or the snapshot has none.

    Trials, parameters, values, intermediate values, attributes and directions come over; the
    ids are the database's own (other studies may be there), the trial numbers are kept.
    """
    import optuna
    import sqlalchemy

    tables = {t.name: t for t in _schema_tables()}
    studies, trials = tables["studies"], tables["trials"]
    storage = optuna.storages.RDBStorage(url)  # creates the schema in an empty database
    source = _engine(f"sqlite:///{snapshot}")
    try:
        with source.connect() as src, storage.engine.begin() as out:
            by_name = studies.c.study_name == study_name
            if out.execute(sqlalchemy.select(studies.c.study_id).where(by_name)).first():
                return False
            old = src.execute(sqlalchemy.select(studies).where(by_name)).mappings().first()
            if old is None:
                return False
            new_study = _inserted_id(out.execute(studies.insert().values(study_name=study_name)))
            for name in ("study_directions", "study_user_attributes", "study_system_attributes"):
                _copy_rows(src, out, tables[name], "study_id", {old["study_id"]: new_study})
            trial_ids: dict[int, int] = {}
            old_trials = src.execute(
                sqlalchemy.select(trials)
                .where(trials.c.study_id == old["study_id"])
                .order_by(trials.c.trial_id)
            ).mappings()
            for row in old_trials:
                values = {k: v for k, v in row.items() if k != "trial_id"}
                values["study_id"] = new_study
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
    finally:
        source.dispose()
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
