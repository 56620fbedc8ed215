"""Live SQLite databases are snapshotted, never byte-copied; restore drops stale sidecars."""

import multiprocessing
import sqlite3
from contextlib import closing

import pytest

from mlbackup import backup, restore
from mlbackup.sources import is_sqlite, scan


def make_db(path, rows, journal="wal"):
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute("CREATE TABLE IF NOT EXISTS t (i INTEGER PRIMARY KEY, v BLOB)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(b"x" * 500,)] * rows)
        conn.commit()


def count(path):
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]


def hold_wal_open(db):
    """A connection that keeps the newest rows in the WAL (no checkpoint) until closed."""
    keeper = sqlite3.connect(db)
    keeper.execute("PRAGMA wal_autocheckpoint=0")
    keeper.execute("INSERT INTO t (v) VALUES (x'00')")
    keeper.commit()
    return keeper


def writer(path, started, stop):
    with closing(sqlite3.connect(path, timeout=5)) as conn:
        n = 0
        while not stop.is_set():
            conn.execute("INSERT INTO t (v) VALUES (?)", (b"y" * 2000,))
            conn.commit()
            n += 1
            if n == 20:
                started.set()


def test_sqlite_detected_by_header_not_name(tmp_path):
    db = tmp_path / "trials.data"
    make_db(db, 1)
    assert is_sqlite(db)
    fake = tmp_path / "fake.db"
    fake.write_bytes(b"not a database")
    assert not is_sqlite(fake)


def test_wal_changes_are_seen_and_sidecars_not_sent(tmp_path):
    folder = tmp_path / "hpo"
    folder.mkdir()
    db = folder / "study.db"
    make_db(db, 10)
    keeper = hold_wal_open(db)
    assert (folder / "study.db-wal").exists()
    assert [f.path for f in scan(folder).files] == ["study.db"]
    target = tmp_path / "target"
    backup(folder, target=target, name="hpo")
    keeper.execute("INSERT INTO t (v) VALUES (x'01')")
    keeper.commit()
    second = backup(folder, target=target, name="hpo")
    assert second.files_sent == 1, "a write that only reached the WAL must still be backed up"
    keeper.close()
    restore("hpo", tmp_path / "out", target=target)
    assert count(tmp_path / "out" / "study.db") == 12


@pytest.mark.slow
@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_snapshots_under_a_live_writer_are_sound(tmp_path, journal, figures):
    db = tmp_path / "study.db"
    make_db(db, 50, journal)
    ctx = multiprocessing.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=writer, args=(str(db), started, stop))
    proc.start()
    try:
        assert started.wait(30)
        target = tmp_path / "target"
        for _ in range(8):
            backup(db, target=target, name="study.db")
    finally:
        stop.set()
        proc.join(30)
    assert proc.exitcode == 0, "the writer must not fail (e.g. 'database is locked')"
    seen = []
    for version in range(1, 9):
        out = tmp_path / f"v{version}.db"
        restore("study.db", out, target=target, version=version)
        with closing(sqlite3.connect(out)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seen.append(count(out))
        figures.add("live SQLite snapshots restored and integrity-checked")
    assert seen == sorted(seen) and seen[0] >= 70


def test_restore_removes_stale_sidecars(tmp_path):
    db = tmp_path / "study.db"
    make_db(db, 5, "delete")
    target = tmp_path / "target"
    backup(db, target=target)
    other = tmp_path / "other.db"
    make_db(other, 100)
    keeper = hold_wal_open(other)
    stale_wal = (tmp_path / "other.db-wal").read_bytes()
    keeper.close()
    dest = tmp_path / "restored" / "study.db"
    dest.parent.mkdir()
    (dest.parent / "study.db-wal").write_bytes(stale_wal)
    (dest.parent / "study.db-shm").write_bytes(b"\0" * 32768)
    restore("study.db", dest, target=target)
    assert not (dest.parent / "study.db-wal").exists()
    assert not (dest.parent / "study.db-shm").exists()
    assert count(dest) == 5


def test_append_only_log_is_backed_up_to_its_last_complete_line(tmp_path):
    journal = tmp_path / "study.journal"
    journal.write_bytes(b'{"op": 1}\n{"op": 2}\n{"op": 3, "half wri')
    backup(journal, target=tmp_path / "target")
    restore("study.journal", tmp_path / "out.journal", target=tmp_path / "target")
    assert (tmp_path / "out.journal").read_bytes() == b'{"op": 1}\n{"op": 2}\n'


def test_slow_snapshot_warns_about_the_busy_timeout(tmp_path, caplog, monkeypatch):
    import mlbackup.sources

    monkeypatch.setattr(mlbackup.sources, "SNAPSHOT_WARN_SECONDS", 0.0)
    db = tmp_path / "study.db"
    make_db(db, 3)
    backup(db, target=tmp_path / "target")
    assert "held a read lock" in caplog.text and "database is locked" in caplog.text
