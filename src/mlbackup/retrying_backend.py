"""Every backend operation under the backend's retry policy, and ambiguous retries settled.

Retrying a create is not safe blindly: if a create-only write's response was lost, the retry
finds the object and cannot tell whose it is. `RetryingBackend` settles that by looking
(are the stored bytes ours?), and a move whose response was lost by checking where the object is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from .backend import Backend, ObjectInfo
from .errors import BackendUnavailableError
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .target import BackupTarget

__all__ = ["RetryingBackend"]

_T = TypeVar("_T")


class RetryingBackend(Backend):
    """A backend whose every operation follows ``policy``; everything else is ``inner``'s."""

    def __init__(self, inner: Backend, policy: RetryPolicy) -> None:
        self.inner = inner
        self.policy = policy
        self.hash_name = inner.hash_name  # type: ignore[misc]
        self.max_workers = inner.max_workers  # type: ignore[misc]
        self.link_workers = inner.link_workers  # type: ignore[misc]
        self.staged_writes = inner.staged_writes  # type: ignore[misc]
        self.many_files_warning = inner.many_files_warning  # type: ignore[misc]
        self.create_only = inner.create_only  # type: ignore[misc]
        self.touches = inner.touches  # type: ignore[misc]
        self.staged_advice = inner.staged_advice  # type: ignore[misc]
        self.no_room_advice = inner.no_room_advice  # type: ignore[misc]

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: RetryPolicy) -> None:
        # The inner backend bounds what it retries by itself (a stream going on after a cut).
        self._policy = policy
        self.inner.deadline = self.deadline = policy.deadline

    @classmethod
    def from_url(cls, url: str, options: Any) -> Backend:  # pragma: no cover - never registered
        raise TypeError("RetryingBackend wraps an open backend; it is not built from a URL")

    def __getattr__(self, name: str) -> Any:
        # Backend-specific attributes (bucket, where, root, ...) stay reachable. "inner"
        # itself may be missing mid-construction or in copy/pickle: never recurse on it.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def local_root(self) -> Path | None:
        return self.inner.local_root

    @property
    def lock_key(self) -> str:
        return self.inner.lock_key

    @property
    def keeps_browsable_tree(self) -> bool:
        return self.inner.keeps_browsable_tree

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        return self.policy.call(fn, f"{what} on {self.inner.url}")

    def check(self) -> None:
        self._call("open", self.inner.check)

    def unconfirmed(self, target: BackupTarget, name: str, options: Mapping[str, Any]) -> list[str]:
        return self.inner.unconfirmed(target, name, options)  # its requests retry on their own

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        return self._call(f"upload {key!r}", lambda: self.inner.put_file(local_path, key))

    def put_object(self, local_path: Path, key: str, digest: str) -> ObjectInfo:
        return self._call(f"upload {key!r}", lambda: self.inner.put_object(local_path, key, digest))

    def put_object_hashing(
        self, local_path: Path, key_for: Callable[[str], str]
    ) -> ObjectInfo | None:
        return self._call(
            f"upload {local_path.name!r}",
            lambda: self.inner.put_object_hashing(local_path, key_for),
        )

    def put_object_extending(
        self, local_path: Path, key: str, digest: str, base: str, base_size: int
    ) -> ObjectInfo | None:
        return self._call(
            f"upload {key!r}",
            lambda: self.inner.put_object_extending(local_path, key, digest, base, base_size),
        )

    def link(self, src: str, dst: str) -> bool:
        return self._call(f"link {dst!r}", lambda: self.inner.link(src, dst))

    def unlink(self, key: str) -> None:
        self._call(f"unlink {key!r}", lambda: self.inner.unlink(key))

    def adopt(self, src: str, dst: str) -> bool:
        return self._call(f"copy {src!r}", lambda: self.inner.adopt(src, dst))

    def touch(self, key: str) -> None:
        self._call(f"touch {key!r}", lambda: self.inner.touch(key))

    def modified(self, key: str) -> float | None:
        return self._call(f"stat {key!r}", lambda: self.inner.modified(key))

    def open_ref(self, ref: str) -> BinaryIO:
        return self._call(f"read {ref!r}", lambda: self.inner.open_ref(ref))

    def open_read(self, key: str) -> BinaryIO:
        return self._call(f"read {key!r}", lambda: self.inner.open_read(key))

    def info(self, key: str) -> ObjectInfo | None:
        return self._call(f"stat {key!r}", lambda: self.inner.info(key))

    def list_dir(self, prefix: str) -> list[str]:
        return self._call(f"list {prefix!r}", lambda: self.inner.list_dir(prefix))

    def delete(self, key: str) -> None:
        self._call(f"delete {key!r}", lambda: self.inner.delete(key))

    def read_bytes(self, key: str) -> bytes:
        return self._call(f"read {key!r}", lambda: self.inner.read_bytes(key))

    def read_at_most(self, key: str, limit: int) -> bytes:
        return self._call(f"read {key!r}", lambda: self.inner.read_at_most(key, limit))

    def sync(self) -> None:
        self._call("sync", self.inner.sync)

    def move(self, src: str, dst: str) -> None:
        def moved_already(_: BackendUnavailableError) -> bool | None:
            # The last try may have moved it before its answer was lost.
            done = self.inner.info(src) is None and self.inner.info(dst) is not None
            return True if done else None

        self.policy.call(
            lambda: self.inner.move(src, dst), f"move {src!r} on {self.inner.url}", moved_already
        )

    def write_new(self, key: str, data: bytes) -> None:
        def ours(_: BackendUnavailableError | None = None) -> bool | None:
            # The object exists: if it holds exactly our bytes, the create that "failed" was
            # ours (its answer was lost, or a client-level retry hit our own object).
            try:
                return True if self.inner.read_bytes(key) == data else None
            except FileNotFoundError:
                return None

        def create() -> bool:
            try:
                self.inner.write_new(key, data)
            except FileExistsError:
                if ours():
                    return True
                raise
            return True

        self.policy.call(create, f"write {key!r} on {self.inner.url}", ours)

    def absent_because(self) -> str | None:
        return self.inner.absent_because()

    def withdraw(self, key: str) -> None:
        self.inner.withdraw(key)

    def duplicates(self, prefix: str = "") -> dict[str, list[str]]:
        return self._call(f"scan {prefix!r}", lambda: self.inner.duplicates(prefix))

    def repair_duplicates(self, prefix: str = "") -> int:
        return self._call(f"repair {prefix!r}", lambda: self.inner.repair_duplicates(prefix))

    def credentials(self) -> str:
        return self.inner.credentials()

    def free_bytes(self) -> int | None:
        return self._call("read the free space", self.inner.free_bytes)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return repr(self.inner)
