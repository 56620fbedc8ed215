"""The backend contract suite: what every backend must do, run unchanged over each of them.

A backend passes it by providing one fixture, ``target_factory``, which returns a function
opening a *new* [`BackupTarget`][mlbackup.BackupTarget] object on the same (initially empty) storage
each time it is called, as a second machine would::

    # tests/contract/test_mybackend.py
    import pytest
    from mlbackup import open_target
    from mlbackup.testing.contract import BackendContractTests, BackendFixtures

    class MyBackendFixtures(BackendFixtures):
        @pytest.fixture
        def target_factory(self, my_server):
            return lambda: open_target(f"myscheme://{my_server.bucket}/run", endpoint=...)

    class TestMyBackend(BackendContractTests, MyBackendFixtures):
        pass

The test classes hold no fixtures and come first, so the backend's fixtures win. A backend that
cannot meet one test rebinds just that test with a strict xfail and a reason.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from mlbackup import (
    BackupNotFoundError,
    BackupStatus,
    BackupTarget,
    DestinationNotEmptyError,
    IntegrityError,
    backup,
    restore,
)
from mlbackup.hashing import hash_file
from mlbackup.layout import plain_key

__all__ = [
    "BackendContractTests",
    "BackendFixtures",
    "BackendOperationTests",
    "BackupProtocolTests",
    "replace_stored",
    "stored_key",
]

TargetFactory = Callable[[], BackupTarget]


def tree_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (as None) under ``root``, by relative path."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            found[(rel / d).as_posix() + "/"] = None
        for f in filenames:
            found[(rel / f).as_posix()] = (Path(dirpath) / f).read_bytes()
    return found


def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` (relative POSIX path -> bytes) under ``root``; returns ``root``."""
    for rel, data in files.items():
        _write(root / rel, data)
    return root


def leftover_temp_files(target_root: Path) -> list[Path]:
    """Temp files a local target's writes left under ``.mlbackup/tmp`` (there should be none
    once every write has finished or failed)."""
    return [p for p in (target_root / ".mlbackup" / "tmp").rglob("*") if p.is_file()]


def stored_key(target: BackupTarget, name: str, path: str) -> str:
    """The key of the object holding ``path``'s bytes in the newest version of ``name``: what
    a test damages to check that readers notice."""
    manifest = target.manifest(name)
    return {loc.entry.path: loc.key for loc in target.locate(manifest)}[path]


def replace_stored(target: BackupTarget, name: str, path: str, local: Path) -> None:
    """Put other bytes where ``path``'s object is (as a person or another tool might; on
    Drive, ``put_file`` updates that very file by its ID)."""
    target.backend.put_file(local, stored_key(target, name, path))


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _run_at_once(jobs: Sequence[Callable[[], object]]) -> list[BaseException]:
    """Run each job in its own thread, all at once; return the exceptions raised."""
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


class BackendFixtures:
    """Fixtures the suite uses; a backend's fixture class subclasses this and overrides
    ``target_factory``."""

    @pytest.fixture
    def target_factory(self) -> TargetFactory:
        raise NotImplementedError("a backend's test class must provide target_factory")

    @pytest.fixture
    def target(self, target_factory: TargetFactory) -> Iterator[BackupTarget]:
        opened = target_factory()
        yield opened
        opened.close()

    @pytest.fixture
    def source(self, tmp_path: Path) -> Path:
        """A small checkpoint-like folder: nested files, an empty file and folder, odd names."""
        root = tmp_path / "src" / "ckpt"
        _write(root / "weights.bin", os.urandom(300_000))
        _write(root / "config.json", b'{"layers": 2}')
        _write(root / "sub dir" / "données ünïcode.txt", "héllo".encode())
        _write(root / "sub dir" / "empty.txt", b"")
        (root / "logs" / "empty").mkdir(parents=True)
        return root

    @pytest.fixture
    def scratch(self, tmp_path: Path) -> Path:
        folder = tmp_path / "scratch"
        folder.mkdir()
        return folder


class BackendOperationTests:
    """The raw operations of `Backend`."""

    def test_put_then_info_and_read(self, target: BackupTarget, scratch: Path) -> None:
        data = os.urandom(70_000)
        stored = target.backend.put_file(_write(scratch / "a", data), "dir/a b/ü.bin")
        assert stored.size == len(data) and stored.checksum
        info = target.backend.info("dir/a b/ü.bin")
        assert info is not None and info.size == len(data)
        with target.backend.open_read("dir/a b/ü.bin") as f:
            assert f.read() == data

    def test_put_empty_file(self, target: BackupTarget, scratch: Path) -> None:
        target.backend.put_file(_write(scratch / "e", b""), "e")
        info = target.backend.info("e")
        assert info is not None and info.size == 0

    def test_put_replaces(self, target: BackupTarget, scratch: Path) -> None:
        target.backend.put_file(_write(scratch / "a", b"old contents"), "k")
        target.backend.put_file(_write(scratch / "a", b"new"), "k")
        assert target.backend.read_bytes("k") == b"new"

    def test_missing_object(self, target: BackupTarget) -> None:
        assert target.backend.info("no/such/key") is None
        assert target.backend.list_dir("no/such") == []
        with pytest.raises(FileNotFoundError):
            target.backend.read_bytes("no/such/key")
        target.backend.delete("no/such/key")  # not an error

    def test_read_at_most(self, target: BackupTarget, scratch: Path) -> None:
        target.backend.put_file(_write(scratch / "a", b"0123456789"), "r/ten")
        target.backend.put_file(_write(scratch / "b", b""), "r/empty")
        assert target.backend.read_at_most("r/ten", 4) == b"0123"
        assert target.backend.read_at_most("r/ten", 11) == b"0123456789"
        assert target.backend.read_at_most("r/empty", 5) == b""
        with pytest.raises(FileNotFoundError):
            target.backend.read_at_most("r/none", 5)

    def test_write_new_is_create_only(self, target: BackupTarget) -> None:
        target.backend.write_new("m/1.json", b"first")
        with pytest.raises(FileExistsError):
            target.backend.write_new("m/1.json", b"second")
        assert target.backend.read_bytes("m/1.json") == b"first"

    def test_list_move_delete(self, target: BackupTarget) -> None:
        target.backend.write_new("d/x", b"x")
        target.backend.write_new("d/y", b"y")
        assert target.backend.list_dir("d") == ["x", "y"]
        target.backend.move("d/x", "e/z")
        assert target.backend.info("d/x") is None
        assert target.backend.read_bytes("e/z") == b"x"
        target.backend.delete("d/y")
        assert target.backend.info("d/y") is None

    def test_repr_is_url(self, target: BackupTarget) -> None:
        assert target.url in repr(target)


class BackupProtocolTests:
    """Backup, versions, restore and verification through the public API."""

    def test_file_roundtrip(self, target: BackupTarget, scratch: Path) -> None:
        src = _write(scratch / "study.db.bin", os.urandom(5000))
        result = backup(src, target=target, name="hpo/study.bin")
        assert result.status is BackupStatus.COPIED
        assert (result.version, result.files_sent, result.bytes_sent) == (1, 1, 5000)
        dest = scratch / "restored" / "study.bin"
        restored = restore("hpo/study.bin", dest, target=target)
        assert restored.files_restored == 1
        assert dest.read_bytes() == src.read_bytes()
        assert dest.stat().st_mtime_ns == src.stat().st_mtime_ns

    def test_awkward_names_round_trip(self, target: BackupTarget, scratch: Path) -> None:
        """Names that trip stores and URL handling: spaces, ``#``, ``?``, ``%``, unicode in
        both normal forms, names differing only in case, a 255-byte name, an empty file."""
        root = scratch / "awkward"
        names = [
            "with space.txt",
            "hash#tag.txt",
            "what?.txt",
            "100%.txt",
            "caf\u00e9-nfc.txt",  # é composed
            "cafe\u0301-nfd.txt",  # e + combining accent
            "Case.txt",
            "case.txt",
            "x" * 251 + ".bin",  # 255 bytes, the longest name most filesystems allow
            "empty.bin",
        ]
        for i, name in enumerate(names):
            _write(root / "d" / name, b"" if name == "empty.bin" else f"{i}:{name}".encode())
        backup(root, target=target, name="awkward")
        dest = scratch / "out"
        restore("awkward", dest, target=target)
        assert tree_snapshot(dest) == tree_snapshot(root)
        assert target.verify("awkward").files_checked == len(names)

    @pytest.mark.parametrize("locked", [True, False], ids=["one-machine", "no-lock"])
    def test_concurrent_writers_of_one_name(
        self,
        target_factory: TargetFactory,
        scratch: Path,
        monkeypatch: pytest.MonkeyPatch,
        locked: bool,
    ) -> None:
        """Two writers back the same name up at once, both through this machine's lock (they
        queue) and with no lock at all (as on two machines): both commit every round, and
        every version restores to exactly what one of them sent."""
        if not locked:
            import contextlib

            import mlbackup.engine

            monkeypatch.setattr(mlbackup.engine, "name_lock", lambda *a: contextlib.nullcontext())
        sent = []
        for round_ in range(3):
            sources = []
            for writer in ("a", "b"):
                root = scratch / f"r{round_}{writer}"
                for i in range(4):
                    _write(root / f"f{i}.bin", f"{writer}{round_}{i}".encode() * (50 + i))
                _write(root / "same.bin", f"shared {round_}".encode() * 30)
                sent.append(tree_snapshot(root))
                sources.append(root)
            targets = [target_factory(), target_factory()]
            jobs = [
                functools.partial(backup, src, target=t, name="shared")
                for src, t in zip(sources, targets, strict=True)
            ]
            assert _run_at_once(jobs) == []
        checker = target_factory()
        assert checker.versions("shared") == list(range(1, 7))
        for version in checker.versions("shared"):
            dest = scratch / f"v{version}"
            restore("shared", dest, target=checker, version=version)
            assert tree_snapshot(dest) in sent, f"version {version} is a mix of writers"

    def test_plain_file_is_browsable(self, target: BackupTarget, source: Path) -> None:
        """The newest version shows as plain files, after every change."""
        backup(source, target=target, name="run/ckpt")
        key = plain_key("run/ckpt", "config.json")
        assert target.backend.read_bytes(key) == b'{"layers": 2}'
        for i in range(3):  # same size, other bytes: what a trainer rewriting a file does
            _write(source / "config.json", f'{{"layers": {i}}}'.encode())
            (source / f"new-{i}.txt").write_text(f"added {i}")
            if i:
                (source / f"new-{i - 1}.txt").unlink()
            backup(source, target=target, name="run/ckpt")
            assert target.backend.read_bytes(key) == f'{{"layers": {i}}}'.encode()
            assert target.backend.read_bytes(plain_key("run/ckpt", f"new-{i}.txt")) == (
                f"added {i}".encode()
            )
            if i:
                gone = plain_key("run/ckpt", f"new-{i - 1}.txt")
                with pytest.raises(FileNotFoundError):
                    target.backend.read_bytes(gone)

    def test_folder_roundtrip(self, target: BackupTarget, source: Path, scratch: Path) -> None:
        result = backup(source, target=target, name="ckpt")
        assert result.files_total == 4
        restore("ckpt", scratch / "out", target=target)
        assert tree_snapshot(scratch / "out") == tree_snapshot(source)

    def test_unchanged_rerun_sends_nothing(self, target: BackupTarget, source: Path) -> None:
        backup(source, target=target, name="ckpt")
        again = backup(source, target=target, name="ckpt")
        assert again.status is BackupStatus.UNCHANGED
        assert (again.version, again.files_sent, again.bytes_sent) == (1, 0, 0)

    def test_another_machine_sees_the_backup(
        self, target_factory: TargetFactory, source: Path, scratch: Path
    ) -> None:
        with target_factory() as first:
            backup(source, target=first, name="ckpt")
        with target_factory() as second:
            assert second.names() == ["ckpt"]
            assert backup(source, target=second, name="ckpt").status is BackupStatus.UNCHANGED
            restore("ckpt", scratch / "out", target=second)
        assert tree_snapshot(scratch / "out") == tree_snapshot(source)

    def test_changes_make_versions_and_old_ones_stay(
        self, target: BackupTarget, source: Path, scratch: Path
    ) -> None:
        v1 = tree_snapshot(source)
        backup(source, target=target, name="ckpt")
        _write(source / "config.json", b'{"layers": 3}')
        (source / "sub dir" / "empty.txt").unlink()
        _write(source / "new.txt", b"new file")
        second = backup(source, target=target, name="ckpt")
        assert second.status is BackupStatus.COPIED
        assert (second.version, second.files_sent) == (2, 2)
        assert second.bytes_sent == len(b'{"layers": 3}') + len(b"new file")
        restore("ckpt", scratch / "v1", target=target, version=1)
        restore("ckpt", scratch / "v2", target=target)
        assert tree_snapshot(scratch / "v1") == v1
        assert tree_snapshot(scratch / "v2") == tree_snapshot(source)
        assert [i.version for i in target.list("ckpt")] == [1, 2]

    def test_file_becomes_folder(self, target: BackupTarget, scratch: Path) -> None:
        item = _write(scratch / "item", b"a file first")
        backup(item, target=target, name="item")
        item.unlink()
        _write(item / "inner.txt", b"then a folder")
        assert backup(item, target=target, name="item").version == 2
        restore("item", scratch / "v1", target=target, version=1)
        restore("item", scratch / "v2", target=target, version=2)
        assert (scratch / "v1").read_bytes() == b"a file first"
        assert (scratch / "v2" / "inner.txt").read_bytes() == b"then a folder"

    def test_keep_last(self, target: BackupTarget, scratch: Path) -> None:
        src = scratch / "metrics.txt"
        contents = []
        for i in range(5):
            contents.append(f"step {i}\n".encode() * (i + 1))
            _write(src, contents[-1])
            backup(src, target=target, name="metrics.txt", keep_last=3)
        assert target.versions("metrics.txt") == [3, 4, 5]
        for version in (3, 4, 5):
            dest = scratch / f"v{version}"
            restore("metrics.txt", dest, target=target, version=version)
            assert dest.read_bytes() == contents[version - 1]
            target.verify("metrics.txt", version)
        with pytest.raises(BackupNotFoundError, match="kept versions: 3, 4, 5"):
            restore("metrics.txt", scratch / "v1", target=target, version=1)

    def test_retention_collects_only_unlisted_objects_after_the_grace_period(
        self, target: BackupTarget, scratch: Path
    ) -> None:
        """Dropped versions' objects stay until a later retention, past the grace period,
        finds no manifest listing them; an object a writer stored but has not committed yet
        is kept while it is young; what a kept version lists is never collected."""
        from mlbackup.commit import apply_retention, collect_garbage
        from mlbackup.layout import object_key, objects_prefix

        src = scratch / "metrics.txt"
        for i in range(3):
            _write(src, f"step {i}\n".encode() * (i + 1))
            backup(src, target=target, name="metrics.txt")
        other = _write(scratch / "other.bin", b"not committed yet")
        digest = hash_file(other, target.hash_name)[1]
        target.backend.put_object(other, object_key(digest), digest)
        assert apply_retention(target, "metrics.txt", 1) == [1, 2]
        stored = set(target.backend.list_dir(objects_prefix()))
        assert len(stored) == 4  # nothing collected yet: within the grace period
        kept = target.manifest("metrics.txt").files[0].hash
        collect_garbage(target, grace=0)  # the grace period has passed
        assert set(target.backend.list_dir(objects_prefix())) == {kept, digest}
        collect_garbage(target, grace=0)  # the uncommitted one was marked by the first sweep
        assert set(target.backend.list_dir(objects_prefix())) == {kept}
        restore("metrics.txt", scratch / "back", target=target)
        assert (scratch / "back").read_bytes() == src.read_bytes()

    def test_verify_names_a_corrupted_file(
        self, target: BackupTarget, source: Path, scratch: Path
    ) -> None:
        backup(source, target=target, name="ckpt")
        assert target.verify("ckpt").files_checked == 4
        bad = _write(scratch / "bad", b"X" * 300_000)  # same size, other bytes
        replace_stored(target, "ckpt", "weights.bin", bad)
        with pytest.raises(IntegrityError, match=r"weights\.bin") as caught:
            target.verify("ckpt")
        assert len(caught.value.problems) == 1
        dest = scratch / "out"
        with pytest.raises(IntegrityError, match=r"weights\.bin"):
            restore("ckpt", dest, target=target)
        assert not dest.exists()  # a damaged backup changes nothing

    def test_truncated_object_is_refused(
        self, target: BackupTarget, source: Path, scratch: Path
    ) -> None:
        backup(source, target=target, name="ckpt")
        short = _write(scratch / "short", (source / "weights.bin").read_bytes()[:1000])
        replace_stored(target, "ckpt", "weights.bin", short)
        dest = _write(scratch / "dest" / "mine.txt", b"keep me").parent
        with pytest.raises(IntegrityError, match=r"weights\.bin"):
            restore("ckpt", dest, target=target, overwrite=True)
        assert tree_snapshot(dest) == {"mine.txt": b"keep me"}  # nothing placed

    @pytest.mark.parametrize("stored", [b"", b"w" * 300_001], ids=["emptied", "longer"])
    def test_an_object_of_another_size_is_refused(
        self, target: BackupTarget, source: Path, scratch: Path, stored: bytes
    ) -> None:
        backup(source, target=target, name="ckpt")
        replace_stored(target, "ckpt", "config.json", _write(scratch / "other", stored))
        with pytest.raises(IntegrityError) as caught:
            target.verify("ckpt")
        expected = (
            "config.json: more than the 13 bytes expected are stored (replaced)"
            if stored
            else "config.json: 0 bytes stored, 13 expected (truncated or replaced)"
        )
        assert caught.value.problems == (expected,), caught.value.problems
        with pytest.raises(IntegrityError, match=r"config\.json"):
            restore("ckpt", scratch / "out", target=target)
        assert not (scratch / "out").exists()

    def test_browsable_file_changed_by_another_tool_is_not_restored(
        self, target: BackupTarget, source: Path, scratch: Path
    ) -> None:
        """The browsable tree is never trusted: what another tool writes there does not
        change what restores, and the next backup leaves its file alone or replaces it."""
        backup(source, target=target, name="ckpt")
        before = tree_snapshot(source)
        target.backend.unlink(plain_key("ckpt", "config.json"))
        target.backend.put_file(_write(scratch / "theirs", b"another tool"), "ckpt/theirs.txt")
        restore("ckpt", scratch / "out", target=target)
        assert tree_snapshot(scratch / "out") == before
        assert target.verify("ckpt").files_checked == 4

    def test_losing_a_commit_race_takes_the_next_version(
        self,
        target_factory: TargetFactory,
        source: Path,
        scratch: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Another machine commits the name between this backup's plan and its commit: this
        one becomes the next version instead of failing, and both restore exactly."""
        first, second = target_factory(), target_factory()
        backup(source, target=first, name="ckpt")
        theirs = _write(scratch / "theirs" / "a.txt", b"the other machine").parent
        _write(source / "config.json", b'{"layers": 5}')
        mine = tree_snapshot(source)
        raced: list[bool] = []

        def other_machine_commits(event: object) -> None:
            if not raced:
                raced.append(True)
                with monkeypatch.context() as m:  # its own lock folder: another machine
                    m.setenv("MLBACKUP_LOCK_DIR", str(scratch / "other-machine-locks"))
                    assert backup(theirs, target=second, name="ckpt").version == 2

        result = backup(source, target=first, name="ckpt", progress=other_machine_commits)
        assert raced and result.version == 3
        checker = target_factory()
        assert checker.versions("ckpt") == [1, 2, 3]
        restore("ckpt", scratch / "v2", target=checker, version=2)
        restore("ckpt", scratch / "v3", target=checker, version=3)
        assert tree_snapshot(scratch / "v2") == tree_snapshot(theirs)
        assert tree_snapshot(scratch / "v3") == mine

    def test_a_version_gone_since_the_listing_is_not_an_error(
        self, target_factory: TargetFactory, scratch: Path
    ) -> None:
        """A reader lists the versions, then another writer's retention drops the newest (or
        its writer withdraws it): the reader gets the newest that is there."""
        src = _write(scratch / "n.txt", b"one")
        reader, other = target_factory(), target_factory()
        backup(src, target=reader, name="n.txt")
        _write(src, b"two")
        backup(src, target=reader, name="n.txt")
        assert reader.versions("n.txt") == [1, 2]
        other.delete_manifest("n.txt", 2)
        latest = reader.latest_manifest("n.txt")
        assert latest is not None and latest.version == 1

    def test_identical_files_are_stored_once(
        self, target: BackupTarget, source: Path, scratch: Path
    ) -> None:
        """Two names holding the same file share one object."""
        backup(source, target=target, name="a")
        backup(source, target=target, name="b")
        assert stored_key(target, "a", "weights.bin") == stored_key(target, "b", "weights.bin")
        for name in ("a", "b"):
            restore(name, scratch / name, target=target)
            assert tree_snapshot(scratch / name) == tree_snapshot(source)

    def test_partial_backup_without_manifest_is_not_restored(
        self, target: BackupTarget, source: Path, scratch: Path
    ) -> None:
        """Data sent, manifest never committed (a crash): nothing to restore, nothing written."""
        for path in ("weights.bin", "config.json"):
            target.backend.put_file(source / path, plain_key("ckpt", path))
        with pytest.raises(BackupNotFoundError, match="no backup named"):
            restore("ckpt", scratch / "out", target=target)
        assert not (scratch / "out").exists()
        assert target.list() == []
        backup(source, target=target, name="ckpt")  # the next backup commits over it
        restore("ckpt", scratch / "out", target=target)
        assert tree_snapshot(scratch / "out") == tree_snapshot(source)

    def test_verify_names_a_missing_file(self, target: BackupTarget, source: Path) -> None:
        backup(source, target=target, name="ckpt")
        target.backend.delete(stored_key(target, "ckpt", "config.json"))
        with pytest.raises(IntegrityError, match=r"config\.json: missing"):
            target.verify("ckpt")

    def test_edited_manifest_is_refused(self, target: BackupTarget, source: Path) -> None:
        backup(source, target=target, name="ckpt")
        key = target.manifest_key_of("ckpt", 1)
        target.backend.delete(key)
        target.backend.write_new(key, b'{"format": "mlbackup.manifest/2", "files": "?"}')
        with pytest.raises(IntegrityError, match="unreadable"):
            target.verify("ckpt")

    def test_restore_refuses_non_empty_destination(
        self, target: BackupTarget, source: Path, scratch: Path
    ) -> None:
        backup(source, target=target, name="ckpt")
        dest = scratch / "busy"
        _write(dest / "mine.txt", b"keep me")
        with pytest.raises(DestinationNotEmptyError, match="overwrite"):
            restore("ckpt", dest, target=target)
        assert tree_snapshot(dest) == {"mine.txt": b"keep me"}
        restore("ckpt", dest, target=target, overwrite=True)
        assert (dest / "mine.txt").read_bytes() == b"keep me"
        assert (dest / "config.json").read_bytes() == b'{"layers": 2}'

    def test_unknown_name(self, target: BackupTarget, scratch: Path) -> None:
        with pytest.raises(BackupNotFoundError, match="no backup named"):
            restore("nothing", scratch / "x", target=target)
        assert not (scratch / "x").exists()


class BackendContractTests(BackendOperationTests, BackupProtocolTests):
    """The whole contract: inherit this and provide ``target_factory``."""
