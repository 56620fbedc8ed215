"""What every object-store backend (S3, GCS, and plugins for others) shares: the
``scheme://<bucket>/<prefix>`` URL, messages that name the bucket and endpoint, one error
translation point, and never letting the filesystem (which holds the credentials) be pickled.
"""

from __future__ import annotations

import contextlib
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Protocol, cast
from urllib.parse import urlsplit

from .crashpoints import crash_point
from .errors import ConfigError, exception_chain
from .fsspec_backend import FsspecBackend
from .hashing import Hasher, new_hasher
from .memory_budget import MemoryBudget, read_parts_reusing
from .objects import check_expected

__all__ = ["BucketBackend", "BucketURL", "PartSession", "parse_bucket_url", "public_endpoint"]

#: Bytes read ahead per open object when restoring or verifying, at most.
READ_BLOCK = 8 << 20
#: Bytes all open objects of one target may read ahead at once: with many workers each reads
#: ahead less (32 S3 workers: 4 MiB each).
READ_AHEAD_BUDGET = 128 << 20
#: Bytes of file data all upload workers of one target may hold at once (the least: two
#: parts); each byte is copied a few times on its way out, so memory is a few times this.
UPLOAD_BUDGET = 16 << 20


@dataclass(frozen=True)
class BucketURL:
    """A parsed ``scheme://<bucket>/<prefix>`` URL."""

    scheme: str
    bucket: str
    prefix: str

    @property
    def root(self) -> str:
        """``bucket/prefix``, the root in fsspec's notation."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def __str__(self) -> str:
        return f"{self.scheme}://{self.root}"


class PartSession(Protocol):
    """One upload in parts that stays invisible until finished (an S3 multipart upload, a
    GCS resumable session), driven by `BucketBackend.send_in_parts()`."""

    def send(self, part: bytearray, offset: int) -> None:
        """Send the part of the file starting at ``offset`` (checking what the store says
        it received); the buffer is reused once this returns."""

    def finish(self, size: int) -> Any:
        """Publish the object of ``size`` bytes; the store's answer."""

    def abort(self) -> None:
        """Drop the unfinished upload (its parts are invisible, but may be billed)."""


def parse_bucket_url(
    url: str, schemes: tuple[str, ...], bucket_pattern: re.Pattern[str], bucket_rules: str
) -> BucketURL:
    """Split ``url`` into bucket and prefix, or raise `ConfigError` saying what to fix."""
    parts = urlsplit(url)
    example = f"{schemes[0]}://<bucket>/<prefix>"
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{url!r} is not a {schemes[0]} URL; use {example}")
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{url!r} contains '?' or '#'; percent-encode them in the prefix (%3F, %23)"
        )
    if not bucket_pattern.match(parts.netloc):
        raise ConfigError(
            f"{parts.netloc!r} is not a valid bucket name ({bucket_rules}); fix the URL"
        )
    return BucketURL(schemes[0], parts.netloc, parts.path.strip("/"))


def public_endpoint(endpoint: str | None) -> str | None:
    """``endpoint`` without any ``user:password@`` part, for messages."""
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


class BucketBackend(FsspecBackend):
    """A backend storing objects under ``<bucket>/<prefix>`` of an object store.

    Subclasses implement `translate_error()`, the one place their store's exceptions
    become mlbackup errors.
    """

    #: Bytes per part of a part-wise upload; also the largest single-request upload.
    part_size: int

    hash_name: ClassVar[str] = "md5"

    def __init__(
        self,
        fs: Any,
        location: BucketURL,
        endpoint_url: str | None,
        part_size: int,
        *,
        browsable: bool = True,
    ) -> None:
        super().__init__(fs, location.root, str(location))
        #: Keep the newest version as plain objects for the bucket console (a server-side
        #: copy of each changed file after the commit); False skips that work.
        self.browsable = browsable
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.part_size = part_size
        #: What all upload workers may hold in memory at once: at least two parts.
        self.upload_budget = MemoryBudget(max(UPLOAD_BUDGET, 2 * part_size))
        endpoint = public_endpoint(endpoint_url)
        #: The bucket and endpoint, for messages.
        self.where = str(location) + (f" at {endpoint}" if endpoint else "")

    def holding_up_to_a_part(self, local_path: Path) -> AbstractContextManager[None]:
        """Hold the budget for reading ``local_path`` whole (at most a part: bigger files are
        read part by part, each under `read_parts_reusing()`)."""
        try:
            size = local_path.stat().st_size
        except OSError:
            size = 0  # the read that follows reports the problem
        return self.upload_budget.hold(min(size, self.part_size))

    def send_in_parts(
        self,
        session: PartSession,
        local_path: Path,
        *,
        total: int,
        expected: str | None,
        part_size: int,
        start: int = 0,
        hasher: Hasher | None = None,
    ) -> tuple[int, str, Any]:
        """Send ``local_path`` from ``start`` through ``session``: ``(bytes read, md5 of the
        whole file, the store's answer to finishing)``.

        Each part is read under the memory budget and hashed into ``hasher`` (the md5 of the
        bytes before ``start`` when given), and there is a crash point after each. The hash
        must equal ``expected`` (the file did not change since it was hashed) before the part
        that completes the ``total`` bytes goes up, since on some stores that part publishes
        the object, and again before finishing; any failure aborts the session.
        """
        whole = hasher or new_hasher("md5")
        offset = start
        try:
            parts = read_parts_reusing(
                self.upload_budget, local_path, part_size, whole, start=start
            )
            for part in parts:
                if offset + len(part) >= total:
                    check_expected(local_path, whole.hexdigest(), expected)
                session.send(part, offset)
                offset += len(part)
                del part  # released with its share of the budget, not at the next read
                crash_point("after-part")
            check_expected(local_path, whole.hexdigest(), expected)
            answer = session.finish(offset)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the original error matters
                session.abort()
            raise
        return offset, whole.hexdigest(), answer

    def object_name(self, key: str) -> str:
        """The store's name for ``key`` (the prefix joined on)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def confirm_absent(self, exc: FileNotFoundError, what: str) -> None:
        translated = self.translate_error(exc, what)
        if translated is not exc:
            raise translated from exc

    @property
    def keeps_browsable_tree(self) -> bool:
        return self.browsable

    def link(self, src: str, dst: str) -> bool:
        return self.browsable and self.copy_object(src, dst)

    def copy_object(self, src: str, dst: str) -> bool:
        """A server-side copy (what `link()` makes when the tree is browsable)."""
        return super().link(src, dst)

    def adopt(self, src: str, dst: str) -> bool:
        return self.copy_object(src, dst)

    def read_at_most(self, key: str, limit: int) -> bytes:
        # One ranged GET; opening the object would first ask for its size (a second request).
        with self.translate_errors("read", key):
            try:
                return cast(bytes, self.fs.cat_file(self.path(key), start=0, end=limit))
            except Exception as exc:
                if _range_not_satisfiable(exc):
                    return b""  # the object is empty: no byte range of it exists
                raise

    def open_read(self, key: str) -> BinaryIO:
        with self.translate_errors("read", key):
            # A plain read-ahead of one block: memory stays at 8 MiB per open file at most
            # (gcsfs's default adaptive prefetcher may hold up to 256 MiB).
            block = max(1 << 20, min(READ_BLOCK, READ_AHEAD_BUDGET // self.max_workers))
            opened = self.fs.open(self.path(key), "rb", block_size=block, cache_type="readahead")
            return cast(BinaryIO, opened)

    def __getstate__(self) -> Any:
        raise TypeError(
            f"{type(self).__name__} holds credentials and cannot be pickled; pass the URL "
            "and options instead, and open the target again with open_target()"
        )

    def close(self) -> None:
        # Drop the client (and the credentials it holds) now, not at interpreter exit.
        self.fs = None


def _range_not_satisfiable(exc: BaseException) -> bool:
    """HTTP 416 behind ``exc`` (S3's ``InvalidRange``, a GCS ``HttpError``)."""
    for link in exception_chain(exc):
        response = getattr(link, "response", None)
        if isinstance(response, dict):
            if response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 416:
                return True
        elif getattr(link, "code", None) == 416:
            return True
    return False
