"""Small reads, writes and listings sent straight over urllib3, signed with botocore's SigV4
signer.

A restore of many small files is one GET per file, and a backup one PUT: through s3fs each
request goes through aiobotocore's event loop, about 1.3 ms of client CPU here, all of it on
one thread; the same request signed by botocore's ``S3SigV4Auth`` and sent with urllib3 from
the calling thread costs about a third of that (``benchmarks/request_cost.py``, figures in
docs/benchmarks.md). This path only ever does what it is sure of: an answer it does not
expect (a redirect, any error status, a TLS problem) sends the same call through s3fs, whose
answer, and error translation, stands. It is set up after a few calls (a sync botocore
client, once, to learn the URL S3 expects and the region), so a one-request command pays
nothing for it. A listing (ListObjectsV2 with a delimiter: one folder's names) is parsed
here too: botocore's parser costs more than the request; an error (a missing bucket's 404
included) or an unexpected answer is s3fs's.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("mlbackup")

#: Calls a backend makes through s3fs before setting this path up.
WARM_UP_CALLS = 4
#: Answers in a row it left to s3fs after which it stops trying (a store that wants more).
GIVE_UP_AFTER = 16
#: Keys asked for per listing page (S3's most).
PAGE_KEYS = 1000
_S3_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

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
    """GET and PUT of single small objects of one bucket, from the calling thread."""

    def __init__(
        self, options: Mapping[str, Any], bucket: str, workers: int, timeouts: tuple[float, float]
    ) -> None:
        self._options = options
        self._bucket = bucket
        self._workers = workers
        self._timeouts = timeouts
        self._lock = threading.Lock()
        self._calls = 0
        self._declined = 0
        self._ready: tuple[str, str, Any, Any] | None = None  # base URL, region, creds, pool
        self.enabled = _usable(options)

    # -- set-up --------------------------------------------------------------------------

    def _setup(self) -> tuple[str, str, Any, Any] | None:
        with self._lock:
            if self._ready is not None or not self.enabled:
                return self._ready
            self._calls += 1
            if self._calls <= WARM_UP_CALLS:
                return None
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

    def get(self, object_name: str, limit: int) -> bytes:
        """Up to ``limit`` bytes of the object; `Fallback` when s3fs must answer."""
        answer = self._send("GET", object_name, b"", {"Range": f"bytes=0-{limit - 1}"})
        status, _headers, body = answer
        if status in (200, 206):
            return body[:limit]
        if status == 416:
            return b""  # an empty object has no byte range
        raise self._declined_answer(status)

    def put(
        self, object_name: str, data: bytes, content_md5: str, *, create_only: bool = False
    ) -> dict[str, str]:
        """Store ``data`` (``create_only``: only if the key is free); returns what S3 reports
        as botocore would name it (``ETag``, the encryption). `Fallback` when s3fs must answer
        (a key taken included: s3fs's answer to the same request says so)."""
        sent = {"Content-MD5": content_md5}
        if create_only:
            sent["If-None-Match"] = "*"
        status, headers, _body = self._send("PUT", object_name, data, sent)
        if status != 200:
            raise self._declined_answer(status)
        return {ours: str(headers[theirs]) for ours, theirs in _NAMED.items() if theirs in headers}

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
            status, _headers, body = self._send("GET", "", b"", {}, query=query)
            if status != 200:
                raise self._declined_answer(status)
            try:
                page, token = _listed(body, prefix)
            except (ET.ParseError, ValueError):
                raise self._declined_answer(status) from None
            names += page
            if token is None:
                break
        return names  # none: an empty folder (a missing bucket is a 404, left to s3fs)

    def _declined_answer(self, status: int) -> Fallback:
        with self._lock:
            self._declined += 1
            if self._declined >= GIVE_UP_AFTER and self.enabled:
                log.debug("direct S3 requests off: %d answers in a row left to s3fs (the last "
                          "%s)", self._declined, status or "no connection")  # fmt: skip
                self.enabled = False
        return Fallback(status)

    def _send(
        self,
        method: str,
        object_name: str,
        body: bytes,
        headers: dict[str, str],
        *,
        query: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
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
                preload_content=True,
            )
        except urllib3.exceptions.SSLError:
            raise Fallback("TLS") from None
        except urllib3.exceptions.NewConnectionError:
            # No connection at all (refused, a name that does not resolve): s3fs's client
            # asks the same way, and its error, or success, stands.
            raise self._declined_answer(0) from None
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            # No URL in the message: it would name the bucket's host and the key, and a
            # signed URL carries credentials.
            raise TimeoutError(f"S3 did not answer a {method} in time") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionError(
                f"S3 {method} failed: the connection broke ({type(exc).__name__})"
            ) from None
        if answer.status in (200, 206, 416):
            with self._lock:
                self._declined = 0
        return answer.status, answer.headers, bytes(answer.data)


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
