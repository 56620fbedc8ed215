"""The GCS backend on gcsfs."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import os
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, cast

# Without this, gcsfs swaps in a gRPC client that probes every bucket's type first (and stalls
# against emulators). It must be set before gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from mlbackup.registry import needs_extra

with needs_extra("gcs"):
    import gcsfs
    import google_crc32c  # a dependency of gcsfs (through google-cloud-storage)
    from fsspec.asyn import sync
    from gcsfs.core import initiate_upload, upload_chunk

from mlbackup.backend import ObjectInfo
from mlbackup.bucket_backend import BucketBackend, BucketURL, parse_bucket_url
from mlbackup.errors import ConfigError, TargetError, TargetMissingError
from mlbackup.hashing import copy_hashing, new_hasher, read_small_file
from mlbackup.layout import tmp_prefix
from mlbackup.objects import check_expected as _check_expected
from mlbackup.retry import RetryPolicy

from .credentials import Credentials, load_credentials, refresh
from .errors import translate

__all__ = ["GCSBackend"]

log = logging.getLogger("mlbackup.gcs")  # under the one mlbackup logger

MiB = 1 << 20
#: Resumable-upload chunks must be multiples of 256 KiB.
CHUNK_QUANTUM = 256 << 10
#: Files above this go up in a resumable upload, one part in memory at a time.
DEFAULT_PART_SIZE = 16 * MiB

#: Seconds per request: a silent store fails an operation in this time, well within a minute.
DEFAULT_TIMEOUT = 30.0

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")
_CONTENT_TYPE = "application/octet-stream"
_Checksum: Any = google_crc32c.Checksum  # the package has no type hints


class _Crc32c:
    """google-crc32c's checksum, fed any buffer (it takes only ``bytes``, and
    `copy_hashing()` hands out views of its buffer)."""

    def __init__(self) -> None:
        self._checksum: Any = _Checksum()

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._checksum.update(bytes(data))

    def digest(self) -> bytes:
        return bytes(self._checksum.digest())

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> _Crc32c:
        twin = _Crc32c()
        twin._checksum = self._checksum.copy()
        return twin


def _md5_hex(metadata: Mapping[str, Any]) -> str | None:
    encoded = metadata.get("md5Hash")
    return base64.b64decode(encoded).hex() if encoded else None


class GCSBackend(BucketBackend):
    """Backups in a Google Cloud Storage bucket, under an optional prefix.

    Small objects go up in one request, larger ones in a resumable upload that becomes visible
    only when its last part lands (and is cancelled on failure), so a crash never leaves a
    partial object. GCS answers each upload with the object's md5, checked against the md5 of
    the bytes sent. Manifests are committed with ``ifGenerationMatch=0``. An object
    (``put_object``) is checked against the hash it is stored under before it is published: the
    last part of a resumable upload is not sent if the bytes read differ.
    """

    create_only: ClassVar[bool] = True  # ifGenerationMatch=0
    touches: ClassVar[bool] = True

    max_workers: ClassVar[int] = 8
    # gcsfs already retries 429, 5xx and dropped connections six times with exponential
    # backoff (about 30 s); another loop around it would only multiply the wait.
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy(attempts=1)
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "endpoint_url": str,
        "token": (str, dict),
        "project": str,
        "requester_pays": bool,
        "part_size": int,
        "browsable": bool,
        "timeout": (int, float),
    }

    def __init__(
        self,
        fs: Any,
        location: BucketURL,
        options: Mapping[str, Any],
        credentials: Credentials,
        part_size: int,
    ) -> None:
        super().__init__(
            fs,
            location,
            options.get("endpoint_url"),
            part_size,
            browsable=options.get("browsable", True),
        )
        self._credentials = credentials
        self._timeout = float(options.get("timeout", DEFAULT_TIMEOUT))

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> GCSBackend:
        options = cls.check_options(options)
        location = parse_bucket_url(
            url,
            ("gs", "gcs"),
            _BUCKET,
            "lowercase letters, digits, dots, hyphens and underscores",
        )
        part_size = int(options.get("part_size", DEFAULT_PART_SIZE))
        if part_size < CHUNK_QUANTUM or part_size % CHUNK_QUANTUM:
            raise ConfigError(
                f"part_size {part_size} must be a positive multiple of 256 KiB "
                f"({CHUNK_QUANTUM} bytes), as GCS resumable uploads require"
            )
        credentials = load_credentials(options.get("token"))
        fs = _filesystem(options, credentials.token)
        return cls(fs, location, options, credentials, part_size)

    def translate_error(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, FileNotFoundError):
            return exc
        return translate(
            exc, what=what, bucket=self.bucket, where=self.where, source=self._credentials.source
        )

    @property
    def _simple_limit(self) -> int:
        # gcsfs sends data below its chunksize in one request that answers with the object's
        # metadata (md5 included); everything we pipe stays below it.
        return self.part_size + CHUNK_QUANTUM

    def credentials(self) -> str:
        return self._credentials.source

    def confirm_absent(self, exc: FileNotFoundError, what: str) -> None:
        # gcsfs says only "not found" (the request's path) for a missing bucket too: a
        # listing that found nothing asks once more whether the bucket is there.
        self.check()

    def check(self) -> None:
        refresh(self._credentials, min(self._timeout, 10.0))
        with self.translate_errors("open", ""):
            try:
                self.fs.call("GET", "b/{}", self.bucket, json_out=True)
            except FileNotFoundError:
                if self._answers_404_to_everything():
                    raise TargetError(
                        f"open {self.where}: the endpoint answered 404 to the list of buckets "
                        "too: it is not a GCS server, or the store is not at this address; "
                        "check endpoint_url"
                    ) from None
                raise TargetMissingError(
                    f"open {self.where}: the bucket does not exist; create it "
                    f"(gcloud storage buckets create gs://{self.bucket}) or fix the URL"
                ) from None

    def _answers_404_to_everything(self) -> bool:
        """Whether the endpoint also answers 404 to listing buckets, which GCS answers (with
        the list, or 400 or 403 for a missing project or permission): then it is not GCS."""
        try:
            self.fs.call("GET", "b", project=self.fs.project or "-", maxResults=1, json_out=True)
        except FileNotFoundError:
            return True
        except Exception:  # noqa: BLE001 - any other answer comes from a store that has buckets
            return False
        return False

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        return self._put(local_path, key, None)

    def put_object(self, local_path: Path, key: str, digest: str) -> ObjectInfo:
        return self._put(local_path, key, digest)

    def _put(self, local_path: Path, key: str, expected: str | None) -> ObjectInfo:
        with self.holding_up_to_a_part(local_path):
            data = read_small_file(local_path, self.part_size)
            if data is not None:
                digest = hashlib.md5(data).hexdigest()
                _check_expected(local_path, digest, expected)
                with self.translate_errors("upload", key):
                    stored = self.fs.pipe_file(
                        self.path(key),
                        data,
                        content_type=_CONTENT_TYPE,
                        chunksize=self._simple_limit,
                    )
                self._check_md5(key, stored, len(data), digest)
                return ObjectInfo(key, len(data), digest)
        with self.translate_errors("upload", key):
            return self._put_resumable(local_path, key, expected)

    def _put_resumable(self, local_path: Path, key: str, expected: str | None) -> ObjectInfo:
        total = local_path.stat().st_size
        session = _Resumable(self.fs, self.bucket, self.object_name(key), total)
        # The declared total must hold: a file that grew or shrank since stat() fails the
        # session's finish (and is aborted), and the engine reads it again.
        size, digest, stored = self.send_in_parts(
            session, local_path, total=total, expected=expected, part_size=self.part_size
        )
        self._check_md5(key, stored, size, digest)
        return ObjectInfo(key, size, digest)

    def put_object_extending(
        self, local_path: Path, key: str, digest: str, base: str, base_size: int
    ) -> ObjectInfo | None:
        """An appended file: its new bytes go up as a temp object, and GCS composes the new
        object from ``base`` (the old version) and them. A composed object has no md5, so it
        is checked by its crc32c against the local file's; if that differs (the file changed
        meanwhile), the caller sends the whole file. Tails above one part go whole too."""
        tail_size = local_path.stat().st_size - base_size
        if not 0 < tail_size <= self.part_size:
            return None
        with self.upload_budget.hold(2 * tail_size):  # the tail's pieces, then the tail
            md5, crc, pieces = new_hasher("md5"), _Crc32c(), io.BytesIO()
            with open(local_path, "rb") as f:
                copy_hashing(f, None, md5, crc, limit=base_size)
                copy_hashing(f, pieces, md5, crc, limit=self.part_size + 1)  # held in memory
            tail = pieces.getvalue()
            del pieces
            _check_expected(local_path, md5.hexdigest(), digest)
            if not tail or len(tail) > self.part_size:
                return None  # nothing was appended after all, or the file grew meanwhile
            return self._compose(key, base, base_size, tail, md5.hexdigest(), crc.digest())

    def _compose(
        self, key: str, base: str, base_size: int, tail: bytes, md5: str, crc32c: bytes
    ) -> ObjectInfo | None:
        part = f"{tmp_prefix()}/append-{uuid.uuid4().hex}"
        try:
            self.write_new(part, tail)  # md5-checked; create-only costs nothing on a new name
            composed = self._compose_request(key, [base, part])
        finally:
            with contextlib.suppress(Exception):  # best effort: a leftover is harmless
                self.fs.rm_file(self.path(part))
        size = base_size + len(tail)
        expected = base64.b64encode(crc32c).decode()
        if composed is None:
            return None
        if int(composed.get("size", -1)) != size or composed.get("crc32c") != expected:
            return None  # not the bytes hashed: the whole-file upload replaces it
        return ObjectInfo(key, size, md5)

    def _compose_request(self, key: str, sources: list[str]) -> dict[str, Any] | None:
        """GCS's ``compose`` of ``sources`` into ``key``: the new object's metadata, or None
        if GCS refuses (400: a composite object holds at most 1,024 components, so a file
        appended to a thousand times is sent whole once, which resets the count) or a source
        is gone (404)."""
        body = {
            "sourceObjects": [{"name": self.object_name(k)} for k in sources],
            "destination": {"contentType": _CONTENT_TYPE},
        }
        with self.translate_errors("upload", key):
            try:
                return cast(
                    dict[str, Any],
                    self.fs.call(
                        "POST", "b/{}/o/{}/compose", self.bucket, self.object_name(key),
                        json=body, json_out=True,
                    ),
                )  # fmt: skip
            except FileNotFoundError:
                # 404: a source is gone (the old version's object, removed behind our back
                # by a person or a lifecycle rule): the whole file rebuilds the object.
                log.warning("%s: the object %r extends is gone from the store; sending %r "
                            "whole", self.where, sources[0], key)  # fmt: skip
                return None
            except Exception as exc:
                if getattr(exc, "code", None) != 400:
                    raise
                log.info("%s: GCS refused to compose %r (%s); sending it whole", self.where,
                         key, exc)  # fmt: skip
                return None

    def _check_md5(self, key: str, stored: Any, size: int, digest: str) -> None:
        metadata = stored if isinstance(stored, Mapping) else {}
        stored_size = int(metadata.get("size", -1))
        stored_md5 = _md5_hex(metadata)
        if stored_size != size or (stored_md5 is not None and stored_md5 != digest):
            raise TargetError(
                f"upload of {key!r} to {self.where} could not be verified: GCS holds "
                f"{stored_size} bytes with md5 {stored_md5}, the bytes sent were {size} with md5 "
                f"{digest}; retry the backup"
            )

    def _metadata(self, key: str) -> dict[str, Any] | None:
        # One GET; gcsfs's info() adds a listing for every missing key.
        with self.translate_errors("stat", key):
            try:
                return cast(
                    dict[str, Any],
                    self.fs.call(
                        "GET", "b/{}/o/{}", self.bucket, self.object_name(key), json_out=True
                    ),
                )
            except FileNotFoundError:
                return None

    def info(self, key: str) -> ObjectInfo | None:
        metadata = self._metadata(key)
        if metadata is None:
            return None
        return ObjectInfo(key, int(metadata["size"]), _md5_hex(metadata))

    def touch(self, key: str) -> None:
        # A metadata patch sets the object's "updated" time, without a copy of its bytes.
        with self.translate_errors("touch", key):
            self.fs.call(
                "PATCH", "b/{}/o/{}", self.bucket, self.object_name(key),
                json={"metadata": {"mlbackup-touched": "1"}}, json_out=True,
            )  # fmt: skip

    def modified(self, key: str) -> float | None:
        metadata = self._metadata(key)
        if metadata is None:
            return None
        stamp = str(metadata.get("updated") or metadata.get("timeCreated") or "")
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return float("inf")

    def move(self, src: str, dst: str) -> None:
        # A server-side rewrite, then the delete: never both keys missing. (gcsfs's mv tries
        # the newer moveTo call first and, where a server lacks it, retries it for 30 s.)
        with self.translate_errors("move", src):
            self.fs.cp_file(self.path(src), self.path(dst))
            self.fs.rm_file(self.path(src))

    def write_new(self, key: str, data: bytes) -> None:
        digest = hashlib.md5(data).hexdigest()
        with self.translate_errors("write", key):
            stored = self.fs.pipe_file(
                self.path(key),
                data,
                content_type=_CONTENT_TYPE,
                # One request whatever the size: a create-only commit cannot be resumable.
                chunksize=(len(data) // CHUNK_QUANTUM + 1) * CHUNK_QUANTUM,
                mode="create",
            )
            self._check_md5(key, stored, len(data), digest)


def _filesystem(options: Mapping[str, Any], token: Any) -> Any:
    kwargs: dict[str, Any] = {
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "token": token,
        "requests_timeout": float(options.get("timeout", DEFAULT_TIMEOUT)),
    }
    for name in ("endpoint_url", "project", "requester_pays"):
        if name in options:
            kwargs[name] = options[name]
    return gcsfs.GCSFileSystem(**kwargs)


class _Resumable:
    """One GCS resumable upload session: the part that completes the declared total
    publishes the object, and its answer is the object's metadata."""

    def __init__(self, fs: Any, bucket: str, name: str, total: int) -> None:
        self._fs = fs
        self._name = name
        self._total = total
        self._location = sync(fs.loop, initiate_upload, fs, bucket, name, _CONTENT_TYPE)
        self._stored: Any = None

    def send(self, part: bytearray, offset: int) -> None:
        self._stored = sync(
            self._fs.loop, upload_chunk, self._fs, self._location, part, offset, self._total,
            _CONTENT_TYPE,
        )  # fmt: skip

    def finish(self, size: int) -> Any:
        if size != self._total or not isinstance(self._stored, Mapping):
            raise TargetError(
                f"upload of {self._name!r} did not complete: {size} of {self._total} bytes "
                "were read (the file changed while it was sent); retry the backup"
            )
        return self._stored  # the last chunk finished it

    def abort(self) -> None:
        self._fs.call("DELETE", self._location)  # an unfinished session is invisible anyway
