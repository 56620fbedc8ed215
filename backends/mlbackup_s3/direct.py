"""Small reads, writes and listings sent straight over urllib3, signed with botocore's SigV4
signer.

A restore of many small files is one GET per file, and a backup one PUT: through s3fs each
request goes through aiobotocore's event loop, about 1.3 ms of client CPU here, all of it on
one thread; the same request signed by botocore's ``S3SigV4Auth`` and sent with urllib3 from
the calling thread costs about a third of that (``benchmarks/request_cost.py``, figures in
docs/benchmarks.md). This path only ever does what it is sure of. An S3 error answer
raises what s3fs would raise from it (a missing key, a key taken, a refusal the backend's
error table names), after that one request; an answer it does not expect (a redirect, a
region to learn, a 4xx that is no S3 error, a TLS problem) sends the same call
through s3fs, whose answer, and error translation, stands. It is set up at the first call
(a sync botocore client, once, to learn the URL S3 expects and the region): 0.2 s with its
imports, against 0.35 s to import s3fs and make its client, which a run whose calls all go
this way (a no-change backup, a restore of small files) never loads. A listing
(ListObjectsV2 with a delimiter: one folder's names) is parsed here too: botocore's parser
costs more than the request. A large object is read over one streamed GET (s3fs reads a
block per request, each a round trip the reader waits for, and moto reads the whole object
again for each), going on from where it stopped if the connection is cut; the browsable
tree's server-side copies (``CopyObject``) go this way too.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import random
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("mlbackup")

#: Answers in a row it left to s3fs after which it stops trying (a store that wants more).
GIVE_UP_AFTER = 16
#: Ranged GETs in a row, none of which got a byte, after which a cut-off read fails.
RESUMES = 4
#: The first wait before going on after a cut (seconds; it doubles, with full jitter).
RESUME_DELAY = 0.25
#: Answers to a ranged GET that are a failed try: the store busy or briefly failing.
_BUSY = frozenset({408, 429, 500, 502, 503, 504})
#: The most of an error answer's body read, for its code.
ERROR_BODY_BYTES = 64 << 10
#: Keys asked for per listing page (S3's most).
PAGE_KEYS = 1000
_S3_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
#: Refusals s3fs's client is asked about: the ones botocore answers by asking again
#: elsewhere (the bucket's region), and the ones that may be this path's own doing (its
#: signature, a body spoilt on the way), which botocore's request settles.
_ASK_S3FS_CODES = frozenset(
    {"AuthorizationHeaderMalformed", "PermanentRedirect", "TemporaryRedirect",
     "IllegalLocationConstraintException", "SignatureDoesNotMatch",
     "XAmzContentSHA256Mismatch", "BadDigest", "InvalidDigest"}
)  # fmt: skip

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
#: The answer's headers a caller checks, under the names botocore gives them.
_NAMED = {
    "ETag": "etag",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSECustomerAlgorithm": "x-amz-server-side-encryption-customer-algorithm",
}


class Fallback(Exception):
    """This call is s3fs's to make (an answer the direct path does not handle)."""


class DirectRequests:
    """GETs, small PUTs, copies and listings of one bucket's objects, from the calling
    thread."""

    def __init__(
        self, options: Mapping[str, Any], bucket: str, workers: int, timeouts: tuple[float, float]
    ) -> None:
        self._options = options
        self._bucket = bucket
        self._workers = workers
        self._timeouts = timeouts
        self._lock = threading.Lock()
        self._declined = 0
        self._ready: tuple[str, str, Any, Any] | None = None  # base URL, region, creds, pool
        self.enabled = _usable(options)

    # -- set-up --------------------------------------------------------------------------

    def _setup(self) -> tuple[str, str, Any, Any] | None:
        with self._lock:
            if self._ready is not None or not self.enabled:
                return self._ready
            try:
                self._ready = self._build()
            except Exception as exc:  # noqa: BLE001 - s3fs remains, and works
                log.debug("direct S3 requests not set up: %s", type(exc).__name__)
                self.enabled = False
            return self._ready

    def _build(self) -> tuple[str, str, Any, Any]:
        import botocore.session
        import urllib3
        from botocore.config import Config
        from botocore.credentials import Credentials

        from .backend import _shared_loader

        options = self._options
        session = botocore.session.Session(profile=options.get("profile"))
        session.lazy_register_component(
            "data_loader", lambda: _shared_loader(session.get_config_variable("data_path"))
        )
        if "key" in options and "secret" in options:
            credentials: Any = Credentials(options["key"], options["secret"], options.get("token"))
        else:
            credentials = session.get_credentials()
            if credentials is None:
                raise LookupError("no credentials")
        client = session.create_client(
            "s3",
            endpoint_url=options.get("endpoint_url"),
            region_name=options.get("region"),
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            config=Config(signature_version="s3v4"),
        )
        # The URL botocore would use for a key of this bucket (addressing style, region and
        # endpoint rules applied), with the key cut off: the base every request extends.
        probe = "mlbackup-probe"
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": probe}, ExpiresIn=60
        )
        base = url.split("?", 1)[0]
        if not base.endswith("/" + probe):
            raise ValueError("unexpected URL shape")
        base = base[: -len(probe)]
        region = client.meta.region_name or "us-east-1"
        connect, read = self._timeouts
        pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=self._workers,
            retries=False,
            timeout=urllib3.Timeout(connect=connect, read=read),
            ca_certs=os.environ.get("AWS_CA_BUNDLE") or _certifi(),
        )
        return base, region, credentials, pool

    # -- requests ------------------------------------------------------------------------

    def get(self, object_name: str, limit: int | None = None) -> bytes:
        """Up to ``limit`` bytes of the object (None: all of it); `Fallback` when s3fs must
        answer."""
        ranged = {} if limit is None else {"Range": f"bytes=0-{limit - 1}"}
        answer = self._request("GET", object_name, b"", ranged)
        status = answer.status
        if status == 200 or (status == 206 and limit is not None):
            data = answer.data
            length = answer.headers.get("Content-Length", "")
            if length.isdigit() and len(data) < int(length):  # urllib3 1.x lets a cut through
                raise ConnectionError(f"S3 GET failed: the answer was cut short ({status})")
            return bytes(data if limit is None else data[:limit])
        if status == 416 and limit is not None:
            return b""  # an empty object has no byte range
        raise self._refusal(answer)

    def probe(self, prefix: str) -> None:
        """Ask for one key under ``prefix``: the bucket is there and the credentials may list
        it (a refusal raises the error it names); `Fallback` when s3fs must answer."""
        query = {"list-type": "2", "prefix": prefix, "max-keys": "1"}
        answer = self._request("GET", "", b"", {}, query=query)
        if answer.status != 200 or b"ListBucketResult" not in answer.data:
            raise self._refusal(answer)

    def put(
        self, object_name: str, data: bytes, content_md5: str, *, create_only: bool = False
    ) -> dict[str, str]:
        """Store ``data`` (``create_only``: only if the key is free); returns what S3 reports
        as botocore would name it (``ETag``, the encryption); `FileExistsError` for a
        create-only write whose key is taken; `Fallback` when s3fs must answer."""
        sent = {"Content-MD5": content_md5}
        if create_only:
            sent["If-None-Match"] = "*"
        answer = self._request("PUT", object_name, data, sent)
        if answer.status != 200:
            raise self._refusal(answer, create_only=create_only)
        headers = answer.headers
        return {ours: str(headers[theirs]) for ours, theirs in _NAMED.items() if theirs in headers}

    def copy(self, source_name: str, object_name: str) -> None:
        """Copy the bucket's object ``source_name`` to ``object_name`` inside the store (one
        ``CopyObject``); `Fallback` when s3fs must answer. S3 may answer a copy that failed
        with a 200 whose body is an error: only a ``CopyObjectResult`` counts."""
        source = f"{self._bucket}/{urllib.parse.quote(source_name, safe='/~')}"
        answer = self._request("PUT", object_name, b"", {"x-amz-copy-source": source})
        if answer.status != 200:
            raise self._refusal(answer)
        try:
            copied = ET.fromstring(answer.data).tag == f"{_S3_XMLNS}CopyObjectResult"  # noqa: S314
        except ET.ParseError:
            copied = False
        if not copied:
            raise self._declined_answer(answer.status)

    def list_folder(self, prefix: str) -> list[str]:
        """The names right under ``prefix`` (a key prefix ending in ``/``): objects and
        folders, as ``fs.ls`` gives them; `Fallback` when s3fs must answer."""
        names: list[str] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "delimiter": "/",
                     "max-keys": str(PAGE_KEYS), "encoding-type": "url"}  # fmt: skip
            if token is not None:
                query["continuation-token"] = token
            answer = self._request("GET", "", b"", {}, query=query)
            status = answer.status
            if status != 200:
                raise self._refusal(answer)
            try:
                page, token = _listed(answer.data, prefix)
            except (ET.ParseError, ValueError):
                raise self._declined_answer(status) from None
            names += page
            if token is None:
                break
        return names  # none: an empty folder (a missing bucket is a NoSuchBucket refusal)

    def open(self, object_name: str, deadline: float) -> io.RawIOBase:
        """The whole object, streamed over one GET (see `_ObjectStream`: a cut is got past
        within ``deadline`` seconds of the last byte, or not at all); `Fallback` when s3fs
        must answer."""
        answer = self._request("GET", object_name, b"", {}, stream=True)
        etag, length = answer.headers.get("ETag", ""), answer.headers.get("Content-Length", "")
        if answer.status >= 400:
            body = answer.read(ERROR_BODY_BYTES)
            _drop(answer)
            raise self._refusal(answer, body=body)
        if answer.status != 200 or not etag.startswith('"') or not length.isdigit():
            _drop(answer)  # a stream it could not go on with after a cut is s3fs's to read
            raise self._declined_answer(answer.status)
        return _ObjectStream(self, object_name, answer, deadline)

    def _refusal(
        self, answer: Any, *, create_only: bool = False, body: bytes | None = None
    ) -> Exception:
        """What an answer other than the one asked for means, to raise: the S3 error it
        names, as s3fs raises it (`FileNotFoundError` for a missing key, `FileExistsError`
        for a create-only write whose key is taken, else an `AnswerError` the backend's error
        table reads as s3fs's), so that a refusal is never asked again through s3fs and a
        busy store's answer is retried by the policy, with its backoff. `Fallback` where
        s3fs's client knows more: a redirect, a region to learn, a refusal that may be this
        path's own doing (its signature), a 4xx that is no S3 error (a 429 or 5xx without
        one is still a busy store's)."""
        status = answer.status
        code = _error_code(answer.data[:ERROR_BODY_BYTES] if body is None else body)
        transient = status == 429 or status >= 500
        if status < 400 or code in _ASK_S3FS_CODES or not (code or transient):
            return self._declined_answer(status)
        with self._lock:
            self._declined = 0  # a store that answers in S3's terms
        if status == 404 and code == "NoSuchKey":
            return FileNotFoundError(errno.ENOENT, "no such key")
        if create_only and (status == 412 or code == "ConditionalRequestConflict"):
            # Taken, or being taken by a concurrent conditional write: the other one wins.
            return FileExistsError(errno.EEXIST, "the key is taken")
        retry_after = answer.headers.get("Retry-After")
        return AnswerError(f"S3 answered {status}", status, code, retry_after)

    def close(self) -> None:
        """Drop the connections and the credentials; later calls are s3fs's (a closed
        backend refuses them)."""
        with self._lock:
            self.enabled = False
            ready, self._ready = self._ready, None
        if ready is not None:
            ready[3].clear()  # the pool's connections

    def _declined_answer(self, status: int) -> Fallback:
        with self._lock:
            self._declined += 1
            if self._declined >= GIVE_UP_AFTER and self.enabled:
                log.debug("direct S3 requests off: %d answers in a row left to s3fs (the last "
                          "%s)", self._declined, status or "no connection")  # fmt: skip
                self.enabled = False
        return Fallback(status)

    def _request(
        self,
        method: str,
        object_name: str,
        body: bytes,
        headers: dict[str, str],
        *,
        query: Mapping[str, str] | None = None,
        stream: bool = False,
        within: float | None = None,
    ) -> Any:
        """The urllib3 answer (its body unread when ``stream``), or the error s3fs's own
        client would meet; `Fallback` before the path is set up. ``within``: seconds the
        request may wait for the store at most (below its timeouts)."""
        ready = self._setup()
        if ready is None:
            raise Fallback("not set up")
        import urllib3
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        base, region, credentials, pool = ready
        url = base + urllib.parse.quote(object_name, safe="/~")
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        if self._options.get("requester_pays"):
            headers["x-amz-request-payer"] = "requester"
        bounded: dict[str, Any] = {}  # else the pool's timeouts
        if within is not None:
            connect, read = self._timeouts
            bound = max(within, 0.1)
            bounded["timeout"] = urllib3.Timeout(connect=min(connect, bound), read=min(read, bound))
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        # Frozen per request: refreshed here when they expire, never changed mid-signature.
        S3SigV4Auth(credentials.get_frozen_credentials(), "s3", region).add_auth(request)
        try:
            answer = pool.request(
                method,
                url,
                body=body or None,
                headers=dict(request.headers.items()),
                redirect=False,
                preload_content=not stream,
                decode_content=False,  # the object's bytes as stored, whatever it says
                **bounded,
            )
        except urllib3.exceptions.SSLError:
            raise Fallback("TLS") from None
        except urllib3.exceptions.NewConnectionError:
            # No connection at all (refused, a name that does not resolve): s3fs's client
            # asks the same way, and its error, or success, stands.
            raise self._declined_answer(0) from None
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            # No URL in the message: it would name the bucket's host and the key.
            raise TimeoutError(f"S3 did not answer a {method} in time") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionError(
                f"S3 {method} failed: the connection broke ({type(exc).__name__})"
            ) from None
        if answer.status in (200, 206, 416):
            with self._lock:
                self._declined = 0
        return answer


class AnswerError(OSError):
    """An S3 error answer, its code, status and ``Retry-After`` shaped as botocore's
    ``response``, so that the backend's error table reads it as it reads s3fs's."""

    def __init__(
        self, message: str, status: int, code: str, retry_after: str | None = None
    ) -> None:
        super().__init__(message)
        headers = {} if retry_after is None else {"retry-after": retry_after}
        self.response = {
            "Error": {"Code": code},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
        }


class _ObjectStream(io.RawIOBase):
    """One object read front to back over one GET.

    A connection cut mid-answer (a reset, an early close, a read timeout) goes on from the
    byte it stopped at with a ranged GET, ``If-Match`` the object's ETag. An object written
    again meanwhile (mlbackup puts an object again with the same bytes; under SSE-KMS, or in
    other parts, its ETag differs) is read on without it: the hash of the whole file, which
    the reader checks, decides. A busy store's answer (429, 5xx) is a failed try. Tries go
    on up to `RESUMES` in a row without a byte got, and only while another, as long as the
    one that failed, would end within ``deadline`` seconds of the last byte got (as
    `mlbackup.retry.RetryPolicy` judges a retry)."""

    def __init__(
        self, requests: DirectRequests, object_name: str, answer: Any, deadline: float
    ) -> None:
        import urllib3

        self._cuts = (urllib3.exceptions.HTTPError, OSError)
        self._timeouts = (urllib3.exceptions.TimeoutError, TimeoutError)
        self._requests = requests
        self._object_name = object_name
        self._answer = answer
        self._deadline = deadline
        self._last_byte_at = self._tried_at = time.monotonic()
        self._etag = str(answer.headers["ETag"])  # open() checks that both are there
        self._size = int(answer.headers["Content-Length"])
        self._if_match = True
        self._position = 0
        self._failures = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read of a closed stream")
        if not len(buffer):
            return 0
        while True:
            try:
                got = int(self._answer.readinto(buffer))
            except self._cuts as exc:
                if self._position >= self._size:
                    return 0  # every byte is in (the hash decides): nothing to go on for
                self._resume(exc)
                continue
            if not got and self._position < self._size:
                self._resume(None)  # closed early (urllib3 1.26 does not count the length)
                continue
            if got:
                self._position += got
                self._failures = 0
                self._last_byte_at = self._tried_at = time.monotonic()
            return got

    def _resume(self, cut: BaseException | None) -> None:
        _drop(self._answer)
        shown = f"at byte {self._position} of {self._size}"
        while True:
            self._failures += 1
            wait = random.uniform(0, RESUME_DELAY * 2 ** (self._failures - 1))  # noqa: S311
            now = time.monotonic()
            left = self._deadline - (now - self._last_byte_at)
            if self._failures > RESUMES or wait + (now - self._tried_at) > left:
                timed_out = isinstance(cut, self._timeouts)
                why = "timed out" if timed_out else "broke off"
                raise (TimeoutError if timed_out else ConnectionError)(
                    f"S3 GET of an object {why} {shown}, {self._failures} times in a row"
                )
            time.sleep(wait)
            self._tried_at = time.monotonic()
            headers = {"Range": f"bytes={self._position}-"}
            if self._if_match:
                headers["If-Match"] = self._etag
            try:
                answer = self._requests._request(
                    "GET", self._object_name, b"", headers, stream=True, within=left - wait
                )
            except (Fallback, ConnectionError, TimeoutError) as exc:
                cut = exc
                continue
            status = answer.status
            if status == 206 and answer.headers.get("Content-Range", "").startswith(
                f"bytes {self._position}-"
            ):
                self._answer = answer
                return
            # An error's body names it; any other answer's (an object sent whole) is unread.
            body = answer.read(ERROR_BODY_BYTES) if status >= 400 else b""
            _drop(answer)
            if status == 412 and self._if_match:
                self._if_match = False  # written again since: read on, the hash decides
                cut = None
            elif status in _BUSY:
                cut = ConnectionError(f"S3 answered {status}")
            else:
                code = _error_code(body)
                raise AnswerError(
                    f"S3 GET of an object broke off {shown} and could not go on: the store "
                    f"answered {status} {code} to a ranged GET",
                    status,
                    code,
                )

    def close(self) -> None:
        if not self.closed:
            _drop(self._answer)
        super().close()


def _drop(answer: Any) -> None:
    """Close an answer and give its connection back (a half-read one is closed, not reused;
    urllib3 returns a fully read one to the pool by itself)."""
    answer.close()
    answer.release_conn()


def _error_code(body: bytes) -> str:
    """The ``Code`` of an S3 error body, or ""."""
    try:
        return ET.fromstring(body).findtext("Code") or ""  # noqa: S314 - the store's answer
    except ET.ParseError:
        return ""


def _listed(body: bytes, prefix: str) -> tuple[list[str], str | None]:
    """One ListObjectsV2 page (keys URL-encoded): the names under ``prefix``, and the token
    for the next page (None after the last)."""
    root = ET.fromstring(body)  # noqa: S314 - the store's own answer over a signed request
    if root.tag != f"{_S3_XMLNS}ListBucketResult":
        raise ValueError(root.tag)
    # Decoded only if the store says it encoded them (one that ignores the request sends
    # keys as they are, where a "+" or "%" is part of the name).
    encoded = root.findtext(f"{_S3_XMLNS}EncodingType") == "url"
    names = []
    for tag, field in (("Contents", "Key"), ("CommonPrefixes", "Prefix")):
        for item in root.iter(f"{_S3_XMLNS}{tag}"):
            full = item.findtext(f"{_S3_XMLNS}{field}") or ""
            if encoded:
                full = urllib.parse.unquote_plus(full)
            if not full.startswith(prefix):
                raise ValueError("a key outside the prefix")
            name = full[len(prefix) :].rstrip("/")
            if name:  # a folder marker (the prefix itself) is no name
                names.append(name)
    truncated = root.findtext(f"{_S3_XMLNS}IsTruncated") == "true"
    token = root.findtext(f"{_S3_XMLNS}NextContinuationToken") if truncated else None
    if truncated and not token:
        raise ValueError("a truncated page without a token")
    return names, token


def _usable(options: Mapping[str, Any]) -> bool:
    if options.get("anon"):
        return False  # unsigned requests: s3fs's business
    # A proxy the environment names is s3fs's (aiohttp's) to honour.
    return not any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES)


def _certifi() -> str | None:
    try:
        import certifi
    except ImportError:  # pragma: no cover - botocore depends on it
        return None
    return str(certifi.where())
