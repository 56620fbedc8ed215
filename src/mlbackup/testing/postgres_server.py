"""A throwaway PostgreSQL server on loopback for tests: a real one, started from the binaries of
an installed PostgreSQL (Debian's ``postgresql`` package), in a temp folder of its own::

    with PostgresServer() as server:
        url = server.create_database("hpo")      # postgresql+psycopg2://postgres@127.0.0.1:PORT/hpo

``initdb`` refuses to run as root: as root, the cluster belongs to the unprivileged user
``nobody`` and both programs run as that user. The server listens on 127.0.0.1 and a free port,
its socket in the temp folder, and trusts every local connection (user ``postgres``, no
password). Stopping it removes the folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .loopback import LoopbackServer

__all__ = ["PostgresServer", "postgres_binaries"]


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    # Debian keeps them out of PATH, one folder per major version: take the newest.
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return Path(folders[-1]) if folders else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer(LoopbackServer):
    """A PostgreSQL cluster in a temp folder, serving on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        self.port = 0
        self._folder: Path | None = None
        self._bin: Path | None = None

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database (SQLAlchemy's form, psycopg2 driver)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> PostgresServer:
        """Create the cluster and start the server; returns ``self``."""
        self._bin = postgres_binaries()
        if self._bin is None:
            raise RuntimeError(
                "PostgreSQL is not installed (no initdb): apt-get install -y postgresql"
            )
        self._folder = Path(tempfile.mkdtemp(prefix="mlbackup-postgres-"))
        data = self._folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self._folder, "nobody")
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.port = _free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self._folder} -c fsync=off"
        log = self._folder / "server.log"
        self._run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self._folder is None:
            return
        data = self._folder / "data"
        if (data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        self.sql("postgres", f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (its connections are ended first)."""
        self.sql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def sql(self, database: str, statement: str) -> None:
        """Run one statement outside a transaction."""
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        engine = sqlalchemy.create_engine(
            self.database_url(database), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def _run(self, program: str, *args: str) -> None:
        assert self._bin is not None
        self._as_owner([str(self._bin / program), *args])

    def _as_owner(self, command: list[str]) -> None:
        """Run ``command`` as the cluster's owner: ``nobody`` when we are root."""
        if os.geteuid() == 0:
            command = ["runuser", "-u", "nobody", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(f"{command[-1]!r} failed: {done.stdout}{done.stderr}")
