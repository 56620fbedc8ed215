"""``sqlitestore://``: mlbackup backups kept in one SQLite database file.

An example of a third-party backend plugin, written against :class:`mlbackup.Backend` directly
(no fsspec). It is installed like any plugin (``pip install ./examples/sqlite_backend``) and
found through its entry point; mlbackup's contract suite runs over it unchanged.

URL: ``sqlitestore:///absolute/path/backups.db``. Each object is one row; SQLite transactions
give the atomic writes the backup protocol asks for: ``put_file`` and ``move`` replace a row in
one transaction, and ``write_new`` is a plain ``INSERT`` that a second writer cannot win twice.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar
from urllib.parse import unquote, urlsplit

from mlbackup import Backend, BackendUnavailableError, ConfigError, ObjectInfo, TargetError

__all__ = ["SQLiteStoreBackend"]

_CHUNK = 1 << 20
_SCHEMA = "CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, md5 TEXT, data BLOB)"


class _BlobReader(io.RawIOBase):
    """A stored object as a readable stream, read in place (never loaded whole)."""

    def __init__(self, blob: sqlite3.Blob, release: Any) -> None:
        self._blob = blob
        self._release = release

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._blob.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._blob.close()
            self._release()
        super().close()


class SQLiteStoreBackend(Backend):
    """Backups in one SQLite database file."""

    hash_name: ClassVar[str] = "md5"
    max_workers: ClassVar[int] = 4
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {"timeout": (int, float)}

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> SQLiteStoreBackend:
        checked = cls.check_options(options)
        parts = urlsplit(url)
        if parts.scheme != "sqlitestore" or parts.netloc or not parts.path.endswith(".db"):
            raise ConfigError(
                f"{url!r} is not a sqlitestore URL; use sqlitestore:///absolute/path/backups.db"
            )
        return cls(Path(unquote(parts.path)), timeout=float(checked.get("timeout", 30.0)))

    @property
    def url(self) -> str:
        return f"sqlitestore://{self.path}"

    # -- connections: one per thread, since the engine sends from several ----------------

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a committed backup survives power loss
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise BackendUnavailableError(f"{what} in {self.url}: {exc}; retrying") from exc
            raise TargetError(f"{what} in {self.url} failed: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise TargetError(
                f"{what} in {self.url} failed: {exc}; is this file an sqlitestore database?"
            ) from exc

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        db = self._db()
        with self._errors(what):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def check(self) -> None:
        if not self.path.parent.is_dir():
            raise ConfigError(f"{self.path.parent} does not exist; create it or fix the URL")
        with self._errors("open"):
            self._db().execute(_SCHEMA)

    # -- the operations the protocol needs -------------------------------------------------

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        size = local_path.stat().st_size
        digest = hashlib.md5()
        with self._transaction(f"write {key!r}") as db, open(local_path, "rb") as src:
            db.execute(
                "INSERT OR REPLACE INTO objects (key, md5, data) VALUES (?, '', zeroblob(?))",
                (key, size),
            )
            (rowid,) = db.execute("SELECT rowid FROM objects WHERE key = ?", (key,)).fetchone()
            with db.blobopen("objects", "data", rowid) as blob:
                written = 0
                while chunk := src.read(min(_CHUNK, size - written)):
                    blob.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
            if written != size or src.read(1):
                raise TargetError(f"{local_path} changed size while it was stored as {key!r}")
            db.execute("UPDATE objects SET md5 = ? WHERE rowid = ?", (digest.hexdigest(), rowid))
        return ObjectInfo(key, size, digest.hexdigest())

    def open_read(self, key: str) -> BinaryIO:
        db = self._db()
        with self._errors(f"read {key!r}"):
            row = db.execute("SELECT rowid FROM objects WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise FileNotFoundError(f"{key!r} is not in {self.url}")
            # A read transaction pins this version of the row until the reader is closed.
            reader = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            reader.execute("BEGIN")
            try:
                blob = reader.blobopen("objects", "data", row[0], readonly=True)
            except BaseException:
                reader.close()
                raise
        return io.BufferedReader(_BlobReader(blob, reader.close), _CHUNK)

    def info(self, key: str) -> ObjectInfo | None:
        with self._errors(f"look up {key!r}"):
            row = (
                self._db()
                .execute("SELECT length(data), md5 FROM objects WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else ObjectInfo(key, row[0], row[1] or None)

    def list_dir(self, prefix: str) -> list[str]:
        start = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        with self._errors(f"list {prefix!r}"):
            # Keys sort bytewise, so one range scan finds everything under the prefix.
            rows = self._db().execute(
                "SELECT key FROM objects WHERE key >= ? AND key < ?", (start, start + "\U0010ffff")
            )
            return sorted({key[len(start) :].split("/", 1)[0] for (key,) in rows})

    def move(self, src: str, dst: str) -> None:
        with self._transaction(f"move {src!r}") as db:
            if db.execute("SELECT 1 FROM objects WHERE key = ?", (src,)).fetchone() is None:
                raise FileNotFoundError(f"{src!r} is not in {self.url}")
            db.execute("DELETE FROM objects WHERE key = ?", (dst,))
            db.execute("UPDATE objects SET key = ? WHERE key = ?", (dst, src))

    def link(self, src: str, dst: str) -> bool:
        # The browsable tree: a copy inside the database, in one statement.
        with self._transaction(f"copy {src!r}") as db:
            if db.execute("SELECT 1 FROM objects WHERE key = ?", (src,)).fetchone() is None:
                raise FileNotFoundError(f"{src!r} is not in {self.url}")
            db.execute("DELETE FROM objects WHERE key = ?", (dst,))
            db.execute(
                "INSERT INTO objects (key, md5, data) SELECT ?, md5, data FROM objects "
                "WHERE key = ?",
                (dst, src),
            )
        return True

    def delete(self, key: str) -> None:
        with self._transaction(f"delete {key!r}") as db:
            db.execute("DELETE FROM objects WHERE key = ?", (key,))

    def write_new(self, key: str, data: bytes) -> None:
        digest = hashlib.md5(data).hexdigest()
        try:
            with self._transaction(f"write {key!r}") as db:
                db.execute(
                    "INSERT INTO objects (key, md5, data) VALUES (?, ?, ?)", (key, digest, data)
                )
        except TargetError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise FileExistsError(f"{key!r} already exists in {self.url}") from None
            raise

    def read_bytes(self, key: str) -> bytes:
        with self._errors(f"read {key!r}"):
            row = self._db().execute("SELECT data FROM objects WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise FileNotFoundError(f"{key!r} is not in {self.url}")
        return bytes(row[0])

    def free_bytes(self) -> int | None:
        return shutil.disk_usage(self.path.parent).free

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()
