"""The S3 backend on s3fs."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

from mlbackup.registry import needs_extra, require_installed

with needs_extra("s3"):  # when missing, loading this plugin fails and names the extra
    # Found, not imported: s3fs (with aiobotocore and aiohttp) takes a quarter second to
    # import, and a run whose requests all go straight (direct.py) never needs it.
    require_installed("s3fs", "aiobotocore", "botocore", "urllib3")

from mlbackup.backend import ObjectInfo
from mlbackup.bucket_backend import BucketBackend, BucketURL, parse_bucket_url
from mlbackup.errors import ConfigError, SourceChangedError, SourceError, TargetError
from mlbackup.hashing import Hasher, copy_hashing, new_hasher, read_small_file
from mlbackup.layout import objects_prefix
from mlbackup.objects import check_expected as _check_expected
from mlbackup.progress import byte_reporter
from mlbackup.redaction import install as install_redaction
from mlbackup.redaction import register_secret

from .direct import DirectRequests, Fallback
from .errors import credential_source, error_code, not_implemented, translate

__all__ = ["S3Backend"]

log = logging.getLogger("mlbackup.s3")  # under the one mlbackup logger

MiB = 1 << 20
#: S3's smallest part (all but the last) and its most parts per upload.
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
#: The largest part UploadPartCopy takes.
MAX_COPY_PART = 5 << 30
#: Files above this go up in parts; each part is one buffer, so it bounds memory per transfer.
DEFAULT_PART_SIZE = 8 * MiB
#: Multipart uploads begun this long ago are an interrupted run's leftovers.
STALE_UPLOAD_SECONDS = 24 * 3600
#: Seconds to connect, and with no byte from the server, before a try fails (and is retried
#: within the retry policy's deadline).
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 20

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _etag(response: Mapping[str, Any]) -> str:
    return str(response.get("ETag", "")).strip('"')


def _hides_md5(response: Mapping[str, Any]) -> bool:
    # Under SSE-KMS and SSE-C the ETag is not the md5 of the data; S3 has still checked the
    # Content-MD5 we sent against the body, so the transfer is verified all the same.
    return response.get("ServerSideEncryption") == "aws:kms" or bool(
        response.get("SSECustomerAlgorithm")
    )


class S3Backend(BucketBackend):
    """Backups in an S3 bucket (AWS or any S3-compatible store), under an optional prefix.

    Every object is written by one request that S3 applies atomically: a single ``PutObject``
    up to ``part_size``, else a multipart upload whose parts are hashed as they are read and
    which is aborted on any failure. Nothing is ever streamed into a final key, so a crash
    leaves either the old object or the new one, never a truncated one. Each request carries
    ``Content-MD5`` and the ETag S3 answers is checked against the md5 of the bytes sent.
    Manifests are committed with ``If-None-Match: *``. An object (``put_object``) is checked
    against the hash it is stored under before it is published: a single ``PutObject`` is not
    sent, and a multipart upload is aborted instead of completed, if the bytes read differ.
    """

    create_only: ClassVar[bool] = True  # If-None-Match: * (an S3 server that ignores it, such
    # as s3rver, overwrites instead: two writers of one name need a store that honours it)
    # Small files are latency-bound: more in flight (aws s3 sync runs 10, s5cmd 256). With
    # the store 20 ms away, 1,000 small files and two 50 MB ones were committed in 4.6 s by
    # 16 workers and 3.8 s by 32 (restored in 3.45 s and 2.95 s); 48 and 64 gained nothing
    # more, and on a server on the same host the count changed nothing. Memory stays within
    # the shared upload budget whatever the count.
    max_workers: ClassVar[int] = 32
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "endpoint_url": str,
        "key": str,
        "secret": str,
        "token": str,
        "profile": str,
        "anon": bool,
        "region": str,
        "requester_pays": bool,
        "part_size": int,
        "browsable": bool,
        "connect_timeout": (int, float),
        "read_timeout": (int, float),
    }

    def __init__(
        self, fs: Any, location: BucketURL, options: Mapping[str, Any], part_size: int
    ) -> None:
        # With ``fs`` None, s3fs's filesystem is made on first use (see `fs`).
        self._fs: Any = None
        self._fs_options: Mapping[str, Any] | None = options if fs is None else None
        self._fs_lock = threading.Lock()
        super().__init__(
            fs,
            location,
            options.get("endpoint_url"),
            part_size,
            browsable=options.get("browsable", True),
        )
        self._source = credential_source(options)
        #: False once the server answered ``UploadPartCopy`` with NotImplemented (some
        #: S3-compatible servers lack it): appended files are then sent whole, without asking.
        self._copies_parts = True
        self._swept = False  # stale multipart uploads: looked for once, at the first upload
        self._direct = DirectRequests(
            options,
            location.bucket,
            self.max_workers,
            (
                float(options.get("connect_timeout", CONNECT_TIMEOUT)),
                float(options.get("read_timeout", READ_TIMEOUT)),
            ),
        )

    def _abort_stale_uploads(self) -> None:
        """Abort multipart uploads under our prefix begun over a day ago: a run killed (or
        whose abort was lost) left them, invisible but billed. A day is far longer than any
        live upload takes between its parts."""
        if self._swept:
            return
        self._swept = True
        cutoff = time.time() - STALE_UPLOAD_SECONDS
        prefix = self.object_name(objects_prefix() + "/")
        try:
            listed = self._call("list_multipart_uploads", Prefix=prefix).get("Uploads", [])
            stale = [u for u in listed if u["Initiated"].timestamp() < cutoff]
            for upload in stale:
                self._call(
                    "abort_multipart_upload", None, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        except Exception as exc:  # noqa: BLE001 - housekeeping never fails a backup
            log.debug("could not look for stale multipart uploads on %s: %s", self.where, exc)
            return
        if stale:
            log.info("aborted %d multipart uploads that interrupted runs left on %s",
                     len(stale), self.where)  # fmt: skip

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> S3Backend:
        options = cls.check_options(options)
        location = parse_bucket_url(
            url, ("s3",), _BUCKET, "3-63 lowercase letters, digits, dots and hyphens"
        )
        part_size = int(options.get("part_size", DEFAULT_PART_SIZE))
        if part_size < MIN_PART_SIZE:
            raise ConfigError(
                f"part_size {part_size} is below S3's minimum part of {MIN_PART_SIZE} bytes "
                "(5 MiB); raise it"
            )
        _register_credentials(options)  # now, though s3fs may never be loaded
        return cls(None, location, options, part_size)

    @property
    def fs(self) -> Any:
        """s3fs's filesystem, made on the first call that needs it: multipart uploads and
        anything the direct path leaves to s3fs."""
        if self._fs is None:
            with self._fs_lock:
                if self._fs is None:
                    if self._fs_options is None:
                        raise TargetError(
                            f"{self.where} was closed; open the target again (open_target)"
                        )
                    self._fs = _filesystem(self._fs_options)
        return self._fs

    @fs.setter
    def fs(self, value: Any) -> None:
        with self._fs_lock:
            self._fs = value

    def close(self) -> None:
        with self._fs_lock:
            self._fs_options = None  # closed: not made again
        self._direct.close()
        super().close()

    def translate_error(self, exc: Exception, what: str) -> Exception:
        # A missing bucket also comes as FileNotFoundError; it must not read as "no object".
        if isinstance(exc, FileNotFoundError) and error_code(exc)[0] != "NoSuchBucket":
            return exc
        return translate(exc, what=what, bucket=self.bucket, where=self.where, source=self._source)

    def _call(self, method: str, key: str | None = None, **kwargs: Any) -> dict[str, Any]:
        if key is not None:
            kwargs["Key"] = self.object_name(key)
        return cast(dict[str, Any], self.fs.call_s3(method, Bucket=self.bucket, **kwargs))

    def credentials(self) -> str:
        return self._source

    def read_bytes(self, key: str) -> bytes:
        # One GET: s3fs's cat_file otherwise asks for the size first (a HEAD), to decide on
        # ranged parallel reads that a manifest never needs.
        with self.translate_errors("read", key):
            if self._direct.enabled:
                with contextlib.suppress(Fallback):  # else s3fs's answer stands
                    return self._direct.get(self.object_name(key))
            return cast(bytes, self.fs.cat_file(self.path(key), max_concurrency=1))

    def check(self) -> None:
        # A listing, not HeadBucket: a HEAD error has no body, so a rejected key and a denied
        # bucket would look alike.
        with self.translate_errors("open", ""):
            prefix = f"{self.prefix}/" if self.prefix else ""
            if self._direct.enabled:
                with contextlib.suppress(Fallback):  # else s3fs's answer, or error, stands
                    self._direct.probe(prefix)
                    return
            try:
                self._call("list_objects_v2", Prefix=prefix, MaxKeys=1)
            except Exception as exc:
                if error_code(exc) == ("", 404):
                    # No S3 error in the answer (a missing bucket says NoSuchBucket): what
                    # answered is not an S3 server, so creating the bucket would not help.
                    raise TargetError(
                        f"open {self.where}: the endpoint answered 404 without an S3 error: "
                        "it is not an S3 server, or the store is not at this address; check "
                        "endpoint_url"
                    ) from None
                raise

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        return self._put(local_path, key, None)

    def put_object(self, local_path: Path, key: str, digest: str) -> ObjectInfo:
        return self._put(local_path, key, digest)

    def put_object_hashing(
        self, local_path: Path, key_for: Callable[[str], str]
    ) -> ObjectInfo | None:
        # A file up to a part is read once: hashed in memory, then sent from the same buffer.
        with self.holding_up_to_a_part(local_path):
            data = read_small_file(local_path, self.part_size)
            if data is None:
                return None  # hashed first, then sent in parts under its key
            md5 = hashlib.md5(data)
            return self._put_bytes(key_for(md5.hexdigest()), data, md5)

    def _put(self, local_path: Path, key: str, expected: str | None) -> ObjectInfo:
        with self.holding_up_to_a_part(local_path):
            data = read_small_file(local_path, self.part_size)
            if data is not None:
                md5 = hashlib.md5(data)
                _check_expected(local_path, md5.hexdigest(), expected)
                return self._put_bytes(key, data, md5)
        with self.translate_errors("upload", key):
            size, digest = self._put_multipart(local_path, key, expected)
        return ObjectInfo(key, size, digest)

    def read_at_most(self, key: str, limit: int) -> bytes:
        if self._direct.enabled:
            with self.translate_errors("read", key):
                try:
                    return self._direct.get(self.object_name(key), limit)
                except Fallback:
                    pass  # s3fs's answer stands
        return super().read_at_most(key, limit)

    def open_read(self, key: str) -> BinaryIO:
        if self._direct.enabled:
            with self.translate_errors("read", key):
                try:
                    stream = self._direct.open(self.object_name(key), self.deadline)
                except Fallback:
                    pass  # s3fs's answer stands
                else:
                    return cast(BinaryIO, _TranslatedReads(stream, self, key))
        return super().open_read(key)

    def list_dir(self, prefix: str) -> list[str]:
        if self._direct.enabled:
            with self.translate_errors("list", prefix):
                folder = self.object_name(prefix).strip("/")
                try:
                    return sorted(self._direct.list_folder(f"{folder}/" if folder else ""))
                except Fallback:
                    pass  # s3fs's answer stands
        return super().list_dir(prefix)

    def _put_bytes(self, key: str, data: bytes, md5: Any) -> ObjectInfo:
        response: Mapping[str, Any] | None = None
        with self.translate_errors("upload", key):
            if self._direct.enabled:
                with contextlib.suppress(Fallback):  # else s3fs's answer stands
                    response = self._direct.put(self.object_name(key), data, _b64(md5.digest()))
            if response is None:
                response = self._call("put_object", key, Body=data, ContentMD5=_b64(md5.digest()))
        self._check_etag(key, response, md5.hexdigest())
        return ObjectInfo(key, len(data), md5.hexdigest())

    def _part_size_for(self, local_path: Path) -> tuple[int, int]:
        """The file's size, and the part size for it: bigger parts for huge files (S3 allows
        at most MAX_PARTS)."""
        file_size = local_path.stat().st_size
        return file_size, max(self.part_size, -(-file_size // (MAX_PARTS - 1) // MiB) * MiB)

    def _put_multipart(self, local_path: Path, key: str, expected: str | None) -> tuple[int, str]:
        file_size, part_size = self._part_size_for(local_path)
        self._abort_stale_uploads()
        session = _Multipart(self, key)
        size, digest, _ = self.send_in_parts(
            session, local_path, total=file_size, expected=expected, part_size=part_size
        )
        return size, digest

    def put_object_extending(
        self, local_path: Path, key: str, digest: str, base: str, base_size: int
    ) -> ObjectInfo | None:
        """An appended file: its first ``base_size`` bytes are copied from ``base`` inside the
        store (``UploadPartCopy``), and only the rest goes up. Each copied part's ETag is
        checked against the md5 of the same local bytes."""
        if base_size < MIN_PART_SIZE or not self._copies_parts:
            return None  # every part but the last must hold 5 MiB
        file_size, part_size = self._part_size_for(local_path)
        # As few copied parts as S3 allows: each is one request, and servers may read the
        # whole source object for each.
        copies = -(-base_size // MAX_COPY_PART)
        bounds = [base_size * i // copies for i in range(copies + 1)]
        with self.translate_errors("upload", key):
            session = _Multipart(self, key)
            try:
                whole = new_hasher("md5")
                self._copy_parts(session, local_path, base, bounds, whole)
                size, sent, _ = self.send_in_parts(
                    session, local_path, total=file_size, expected=digest, part_size=part_size,
                    start=bounds[-1], hasher=whole,
                )  # fmt: skip
                return ObjectInfo(key, size, sent)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    session.abort()
                if isinstance(exc, FileNotFoundError) or error_code(exc)[0] == "NoSuchKey":
                    return None  # the base went away: send the whole file
                if isinstance(exc, SourceChangedError):
                    raise  # read it again
                if isinstance(exc, SourceError):
                    return None  # the file changed under us: the whole-file path re-reads it
                if not_implemented(exc):
                    log.info("%s does not copy parts (UploadPartCopy); sending appended "
                             "files whole", self.where)  # fmt: skip
                    self._copies_parts = False
                    return None
                raise

    def _copy_parts(
        self, session: _Multipart, local_path: Path, base: str, bounds: list[int], whole: Hasher
    ) -> None:
        """Copy ``base``'s bytes between ``bounds`` into the upload, one part per range, each
        checked against the md5 of the same local bytes."""
        sent = byte_reporter()
        with open(local_path, "rb") as f:
            for start, end in itertools.pairwise(bounds):
                local = hashlib.md5()
                if copy_hashing(f, None, local, whole, limit=end - start) < end - start:
                    raise SourceError(f"{local_path} shrank while it was read")
                session.copy(base, start, end, local.digest())
                if sent is not None:
                    sent(end - start)

    def _check_etag(self, what: str, response: Mapping[str, Any], expected: str) -> None:
        etag = _etag(response)
        if etag != expected and not _hides_md5(response):
            raise TargetError(
                f"upload of {what!r} to {self.where} could not be verified: S3 reports "
                f"ETag {etag}, the bytes sent give {expected}; retry the backup"
            )

    def _head(self, key: str) -> dict[str, Any] | None:
        # One HEAD; s3fs's info() adds a listing for every missing key.
        with self.translate_errors("stat", key):
            try:
                return self._call("head_object", key)
            except FileNotFoundError:
                return None

    def info(self, key: str) -> ObjectInfo | None:
        head = self._head(key)
        if head is None:
            return None
        etag = _etag(head)
        checksum = etag if _MD5_ETAG.match(etag) and not _hides_md5(head) else None
        return ObjectInfo(key, int(head["ContentLength"]), checksum)

    def copy_object(self, src: str, dst: str) -> bool:
        # One CopyObject (s3fs's cp_file asks for the size first); a source above 5 GiB, the
        # most one copy takes, goes through s3fs's part-wise copy.
        source = {"Bucket": self.bucket, "Key": self.object_name(src)}
        with self.translate_errors("copy", src):
            try:
                if self._direct.enabled:
                    try:
                        self._direct.copy(source["Key"], self.object_name(dst))
                        return True
                    except Fallback:
                        pass  # s3fs's answer stands
                self._call("copy_object", dst, CopySource=source)
            except OSError as exc:
                if error_code(exc)[0] not in ("InvalidRequest", "EntityTooLarge"):
                    raise
                self.fs.cp_file(self.path(src), self.path(dst))
        return True

    def modified(self, key: str) -> float | None:
        head = self._head(key)
        return None if head is None else float(head["LastModified"].timestamp())

    def write_new(self, key: str, data: bytes) -> None:
        md5 = hashlib.md5(data)
        response: Mapping[str, Any] | None = None
        with self.translate_errors("write", key):
            try:
                if self._direct.enabled:
                    with contextlib.suppress(Fallback):  # else s3fs's answer stands
                        response = self._direct.put(
                            self.object_name(key), data, _b64(md5.digest()), create_only=True
                        )
                if response is None:
                    digest = _b64(md5.digest())
                    response = self._call(
                        "put_object", key, Body=data, ContentMD5=digest, IfNoneMatch="*"
                    )
            except OSError as exc:
                # A concurrent conditional write to the same key: the other writer wins.
                if error_code(exc)[0] == "ConditionalRequestConflict":
                    raise FileExistsError(key) from exc
                raise
        self._check_created(key, data, md5, response)

    def _check_created(self, key: str, data: bytes, md5: Any, response: Mapping[str, Any]) -> None:
        try:
            self._check_etag(key, response, md5.hexdigest())
        except TargetError:
            # The answer does not match what was sent; the object is small and create-only
            # (no one else's write can follow ours): read it back and decide by its bytes.
            try:
                stored = self.read_bytes(key)
            except FileNotFoundError:
                raise TargetError(
                    f"write of {key!r} to {self.where}: S3 answered with a wrong ETag and "
                    "does not hold the object; retry"
                ) from None
            if stored != data:
                raise
            log.warning("%s: S3 answered a wrong ETag for %r; its bytes were read back whole",
                        self.where, key)  # fmt: skip


#: Where botocore finds credentials without a request: the environment and two files.
_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)
_CREDENTIAL_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def _register_credentials(options: Mapping[str, Any]) -> None:
    """Hide every credential botocore may sign with from the logs, whatever its source: the
    options, the environment, the shared files (all their profiles). Ones from instance
    metadata are caught by their shape in the request (mlbackup.redaction)."""
    install_redaction()
    for name in ("key", "secret", "token"):
        register_secret(options.get(name))
    for variable in _CREDENTIAL_VARIABLES:
        register_secret(os.environ.get(variable))
    import configparser

    for variable, default in (
        ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        ("AWS_CONFIG_FILE", "~/.aws/config"),
    ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(os.path.expanduser(os.environ.get(variable, default)))
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # botocore will say what is wrong with the file
        for section in parser.sections():
            for field in _CREDENTIAL_FIELDS:
                register_secret(parser.get(section, field, fallback=None))


def _filesystem(options: Mapping[str, Any]) -> Any:
    config: dict[str, Any] = {
        # A silent store (it accepts connections, never answers) is noticed within one read
        # timeout: botocore's default of 60 s, tried 3 times, held a call for three minutes.
        "connect_timeout": options.get("connect_timeout", CONNECT_TIMEOUT),
        "read_timeout": options.get("read_timeout", READ_TIMEOUT),
        # Two quick tries per request (a failed multipart part is re-sent alone); the
        # operation-level policy (S3Backend.retry_policy) backs off beyond that, within its
        # deadline.
        "retries": {"total_max_attempts": 2, "mode": "standard"},
        # A connection per worker (botocore's default pool holds 10).
        "max_pool_connections": S3Backend.max_workers,
        # Every upload carries Content-MD5, checked against the ETag: botocore's extra CRC32
        # of each body (its default since 1.36) would be a second pass, and some
        # S3-compatible stores reject its headers.
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    kwargs: dict[str, Any] = {
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "config_kwargs": config,
    }
    for name in ("endpoint_url", "key", "secret", "token", "anon", "requester_pays"):
        if name in options:
            kwargs[name] = options[name]
    kwargs["session"] = _session(options.get("profile"))
    if "region" in options:
        kwargs["client_kwargs"] = {"region_name": options["region"]}
    with needs_extra("s3"):  # found at load time, but it may fail to import (a broken install)
        import s3fs

    fs = s3fs.S3FileSystem(**kwargs)
    fs.retries = 1  # no third loop in s3fs: botocore's and ours are enough
    return fs


def _session(profile: str | None) -> Any:
    """A botocore session (a profile's, if named) whose JSON models are parsed once per
    process: a session of its own parses the endpoint rules and S3's model again, about 0.1 s
    of CPU for every target opened (a URL passed to each call opens one each time)."""
    from aiobotocore.session import AioSession

    session = AioSession(profile=profile)
    # Lazily, as botocore registers its own: the data path may come from the profile's file.
    session.lazy_register_component(
        "data_loader", lambda: _shared_loader(session.get_config_variable("data_path"))
    )
    return session


@functools.cache
def _shared_loader(data_path: str | None) -> Any:
    from botocore.loaders import create_loader

    return create_loader(data_path)


class _Multipart:
    """One S3 multipart upload: each part's ETag checked as it comes back, and the whole
    object's (the md5 of the part md5s) when it is completed."""

    def __init__(self, backend: S3Backend, key: str) -> None:
        self._backend = backend
        self._key = key
        self._upload_id = backend._call("create_multipart_upload", key)["UploadId"]
        self._parts: list[dict[str, Any]] = []
        self._digests: list[bytes] = []
        self._aborted = False

    def _add(self, what: str, answer: Mapping[str, Any], digest: bytes) -> None:
        number = len(self._parts) + 1
        self._backend._check_etag(f"{self._key} ({what} {number})", answer, digest.hex())
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._digests.append(digest)

    def send(self, part: bytearray, offset: int) -> None:
        digest = hashlib.md5(part).digest()
        answer = self._backend._call(
            "upload_part", self._key, UploadId=self._upload_id,
            PartNumber=len(self._parts) + 1, Body=part, ContentMD5=_b64(digest),
        )  # fmt: skip
        self._add("part", answer, digest)

    def copy(self, base: str, start: int, end: int, digest: bytes) -> None:
        source = {"Bucket": self._backend.bucket, "Key": self._backend.object_name(base)}
        answer = self._backend._call(
            "upload_part_copy", self._key, UploadId=self._upload_id,
            PartNumber=len(self._parts) + 1, CopySource=source,
            CopySourceRange=f"bytes={start}-{end - 1}",
        )  # fmt: skip
        self._add("copied part", answer["CopyPartResult"], digest)

    def finish(self, size: int) -> Any:
        done = self._backend._call(
            "complete_multipart_upload", self._key, UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )  # fmt: skip
        self._aborted = True  # completed: there is nothing left to abort
        whole = f"{hashlib.md5(b''.join(self._digests)).hexdigest()}-{len(self._parts)}"
        self._backend._check_etag(self._key, done, whole)
        return done

    def abort(self) -> None:
        if not self._aborted:
            self._aborted = True
            self._backend._call("abort_multipart_upload", self._key, UploadId=self._upload_id)


class _TranslatedReads(io.RawIOBase):
    """A direct stream whose failures read as every other call's (`S3Backend.translate_error`):
    a cut it could not get past is a `BackendUnavailableError`."""

    def __init__(self, stream: io.RawIOBase, backend: S3Backend, key: str) -> None:
        self._stream = stream
        self._backend = backend
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._backend.translate_errors("read", self._key):
            return self._stream.readinto(buffer) or 0

    def close(self) -> None:
        with self._backend.translate_errors("read", self._key):
            self._stream.close()
        super().close()
