"""A fake Google Drive (API v2) on loopback, which pydrive2 and google-api-python-client
really talk HTTP to. No Google account, no network.

It models what a backup tool must get right: file IDs, duplicate titles in one folder (Drive
allows them), case-insensitive title search, parents, trash, ``md5Checksum`` and ``fileSize``,
resumable and multipart uploads, ranged downloads, shortcuts (which hold no bytes and take no
quota), ``touch``, a storage quota (and service accounts, which have none), and injectable
failures: 403 with a Drive reason, 429 with ``Retry-After``, 5xx.

Point a ``gdrive://`` target at it with ``api_endpoint=server.endpoint_url``; credentials go to
an `OAuthTokenServer` through the key's ``token_uri``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import socket
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

from .drive_query import QueryError, compile_query
from .loopback import LoopbackServer, QuietThreadingHTTPServer, shut_down
from .multipart import split_related

__all__ = ["DriveFile", "FakeDriveServer"]

FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
ROOT_ID = "0AmlbackupRootFolder"


@dataclass
class DriveFile:
    """One file or folder on the fake Drive."""

    id: str
    title: str
    mime_type: str
    parents: list[str]
    content: bytes = b""
    trashed: bool = False
    created: str = ""
    modified: str = ""
    shortcut_target: str | None = None

    def resource(self) -> dict[str, Any]:
        """The Drive v2 file resource."""
        resource: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "title": self.title,
            "mimeType": self.mime_type,
            "parents": [{"kind": "drive#parentReference", "id": p} for p in self.parents],
            "labels": {"trashed": self.trashed},
            "createdDate": self.created,
            "modifiedDate": self.modified,
        }
        if self.mime_type == SHORTCUT:
            resource["shortcutDetails"] = {"targetId": self.shortcut_target}
        elif self.mime_type != FOLDER:
            resource["fileSize"] = str(len(self.content))
            resource["md5Checksum"] = hashlib.md5(self.content).hexdigest()
        return resource


@dataclass
class _Failure:
    status: int
    reason: str
    retry_after: str | None = None
    message: str = "injected failure"


@dataclass
class _Upload:
    file_id: str | None  # None: insert a new file
    metadata: dict[str, Any]
    data: bytearray = field(default_factory=bytearray)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeDriveServer(LoopbackServer):
    """The fake Drive on 127.0.0.1 and a free port.

    Attributes:
        quota_bytes: total bytes all files may hold (None: unlimited).
        service_account: answer uploads as Drive answers a service account (no quota at all).
        requests: ``(method, path)`` of every request, for counting calls and retries.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.files: dict[str, DriveFile] = {}
        self._uploads: dict[str, _Upload] = {}
        self._failures: deque[_Failure] = deque()
        self.quota_bytes: int | None = None
        #: A Workspace account whose quota type is UNLIMITED.
        self.unlimited = False
        self.service_account = False
        self.requests: list[tuple[str, str]] = []
        self._httpd: QuietThreadingHTTPServer | None = None
        self.reset()

    # -- state -----------------------------------------------------------------------------

    def reset(self) -> None:
        """An empty My Drive, no faults, no quota limit."""
        with self._lock:
            stamp = _now()
            self.files = {
                ROOT_ID: DriveFile(ROOT_ID, "My Drive", FOLDER, [], created=stamp, modified=stamp)
            }
            self._uploads.clear()
            self._failures.clear()
            self.quota_bytes = None
            self.unlimited = False
            self.service_account = False
            self.requests.clear()

    @property
    def root_id(self) -> str:
        return ROOT_ID

    def new_id(self) -> str:
        # Increasing, so "newest" and "smallest ID" are different questions, as on Drive.
        return f"1mlb{next(self._ids):012d}"

    def add_file(self, parent: str, title: str, content: bytes = b"", folder: bool = False) -> str:
        """Create a file (or folder) directly, as another tool would; returns its ID."""
        with self._lock:
            stamp = _now()
            file = DriveFile(
                self.new_id(), title, FOLDER if folder else "application/octet-stream",
                [parent], content, created=stamp, modified=stamp,
            )  # fmt: skip
            self.files[file.id] = file
            return file.id

    def children(self, parent: str, title: str | None = None) -> list[DriveFile]:
        """Live (untrashed) files in ``parent``, optionally with exactly ``title``."""
        with self._lock:
            return [
                f
                for f in self.files.values()
                if parent in f.parents and not f.trashed and (title is None or f.title == title)
            ]

    def find_path(self, path: str, parent: str = ROOT_ID) -> list[DriveFile]:
        """Every live file at ``a/b/c`` under ``parent`` (several if titles repeat)."""
        current = [parent]
        *folders, last = path.split("/")
        for name in folders:
            current = [
                f.id for p in current for f in self.children(p, name) if f.mime_type == FOLDER
            ]
        return [f for p in current for f in self.children(p, last)]

    def fail_next(
        self, count: int, status: int, reason: str, retry_after: float | None = None
    ) -> None:
        """Answer the next ``count`` API requests with an error (a Drive ``reason`` such as
        ``rateLimitExceeded``, ``userRateLimitExceeded``, ``storageQuotaExceeded``,
        ``backendError``), with ``Retry-After`` if given."""
        with self._lock:
            after = None if retry_after is None else str(retry_after)
            self._failures.extend(_Failure(status, reason, after) for _ in range(count))

    @property
    def failures_left(self) -> int:
        """Injected failures not yet served."""
        with self._lock:
            return len(self._failures)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(len(f.content) for f in self.files.values())

    # -- server ------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def start(self) -> FakeDriveServer:
        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._httpd.serve_forever, name="fake-drive", daemon=True).start()
        return self

    def stop(self) -> None:
        shut_down(self._httpd)
        self._httpd = None

    # -- the API -----------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        path = parts.path
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append((method, path))
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return _error(failure.status, failure.reason, failure.message, extra)
        try:
            return self._route(method, path, query, headers, body)
        except QueryError as exc:
            return _error(400, "invalid", str(exc))
        except KeyError:
            return _error(404, "notFound", f"File not found: {path}")

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == "/drive/v2/about":
            return _json(self._about())
        upload = re.fullmatch(r"/upload/drive/v2/files(?:/(?P<id>[^/]+))?", path)
        if upload:
            return self._upload(method, upload.group("id"), query, headers, body)
        if path == "/drive/v2/files":
            if method == "GET":
                return _json(self._list(query))
            if method == "POST":
                return _json(self._insert(_load(body), b"").resource())
        match = re.fullmatch(
            r"/drive/v2/files/(?P<id>[^/]+)(?P<action>/trash|/untrash|/copy|/touch)?", path
        )
        if match:
            file_id, action = self._resolve(match.group("id")), match.group("action")
            if action == "/trash":
                return _json(self._set_trashed(file_id, True))
            if action == "/untrash":
                return _json(self._set_trashed(file_id, False))
            if action == "/copy":
                return _json(self._copy(file_id, _load(body)))
            if action == "/touch":
                with self._lock:
                    self.files[file_id].modified = _now()
                    return _json(self.files[file_id].resource())
            if method == "GET":
                return self._get(file_id, query, headers)
            if method in ("PATCH", "PUT"):
                return _json(self._patch(file_id, query, _load(body)))
            if method == "DELETE":
                with self._lock:
                    del self.files[file_id]
                return 204, {}, b""
        return _error(501, "notImplemented", f"{method} {path} is not part of the fake")

    def _resolve(self, file_id: str) -> str:
        resolved = ROOT_ID if file_id == "root" else file_id
        with self._lock:
            if resolved not in self.files:
                raise KeyError(file_id)
        return resolved

    def _about(self) -> dict[str, Any]:
        about = {
            "kind": "drive#about",
            "rootFolderId": ROOT_ID,
            "quotaType": "UNLIMITED" if self.unlimited else "LIMITED",
            "quotaBytesUsed": str(self.used_bytes()),
            "user": {"displayName": "mlbackup test", "emailAddress": "test@example.com"},
        }
        if not self.unlimited:  # as Drive v2: an unlimited account has no total at all
            total = 0 if self.service_account else (self.quota_bytes or 15 << 30)
            about["quotaBytesTotal"] = str(total)
        return about

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        q = query.get("q", "").replace("'root' in parents", f"'{ROOT_ID}' in parents")
        predicate = compile_query(q)
        with self._lock:
            items = [f.resource() for f in self.files.values() if f.id != ROOT_ID]
        items = [r for r in items if predicate(r)]
        start = int(query.get("pageToken") or 0)
        size = int(query.get("maxResults") or 100)
        page = {"kind": "drive#fileList", "items": items[start : start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    def _insert(self, metadata: dict[str, Any], content: bytes) -> DriveFile:
        parents = [self._resolve(p["id"]) for p in metadata.get("parents", [])] or [ROOT_ID]
        with self._lock:
            self._check_quota(len(content))
            stamp = _now()
            file = DriveFile(
                self.new_id(), metadata.get("title", "Untitled"),
                metadata.get("mimeType", "application/octet-stream"), parents, content,
                created=stamp, modified=stamp,
                shortcut_target=metadata.get("shortcutDetails", {}).get("targetId"),
            )  # fmt: skip
            self.files[file.id] = file
            return file

    def _check_quota(self, adding: int) -> None:
        if self.service_account and adding:
            raise _QuotaExceeded(
                "The user's Drive storage quota has been exceeded. Service Accounts do not "
                "have storage quota."
            )
        if self.quota_bytes is not None and self.used_bytes() + adding > self.quota_bytes:
            raise _QuotaExceeded("The user's Drive storage quota has been exceeded.")

    def _set_trashed(self, file_id: str, trashed: bool) -> dict[str, Any]:
        with self._lock:
            self.files[file_id].trashed = trashed
            return self.files[file_id].resource()

    def _copy(self, file_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        source = self.files[file_id]
        merged = {"title": source.title, "parents": [{"id": p} for p in source.parents], **metadata}
        return self._insert(merged, source.content).resource()

    def _patch(
        self, file_id: str, query: dict[str, str], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            file = self.files[file_id]
            if "title" in metadata:
                file.title = metadata["title"]
            if "parents" in metadata:
                file.parents = [self._resolve(p["id"]) for p in metadata["parents"]]
            for added in filter(None, query.get("addParents", "").split(",")):
                file.parents.append(self._resolve(added))
            for removed in filter(None, query.get("removeParents", "").split(",")):
                file.parents = [p for p in file.parents if p != self._resolve(removed)]
            if "labels" in metadata and "trashed" in metadata["labels"]:
                file.trashed = bool(metadata["labels"]["trashed"])
            file.modified = _now()
            return file.resource()

    def _get(
        self, file_id: str, query: dict[str, str], headers: Any
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            file = self.files[file_id]
        if query.get("alt") != "media":
            return _json(file.resource())
        content = file.content
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("Range") or "")
        if not match:
            return 200, {"Content-Type": "application/octet-stream"}, content
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(content) - 1
        if start >= len(content):
            return 416, {"Content-Range": f"bytes */{len(content)}"}, b""
        end = min(end, len(content) - 1)
        return (
            206,
            {"Content-Range": f"bytes {start}-{end}/{len(content)}"},
            content[start : end + 1],
        )

    def _upload(
        self, method: str, file_id: str | None, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if file_id is not None:
            file_id = self._resolve(file_id)
        kind = query.get("uploadType", "media")
        try:
            if "upload_id" in query:
                return self._resumable_chunk(query["upload_id"], headers, body)
            if kind == "resumable":
                upload_id = self.new_id()
                with self._lock:
                    self._uploads[upload_id] = _Upload(file_id, _load(body))
                # At the host the client reached (a proxy, say), as Google's servers answer.
                host = headers.get("Host")
                base = f"http://{host}" if host else self.endpoint_url.rstrip("/")
                location = f"{base}/upload/drive/v2/files"
                location += f"/{file_id}" if file_id else ""
                return (
                    200,
                    {"Location": f"{location}?uploadType=resumable&upload_id={upload_id}"},
                    b"",
                )
            if kind == "multipart":
                split = split_related(body, headers.get("Content-Type", ""))
                if split is None:
                    return _error(400, "badContent", "could not parse the multipart body")
                metadata, content, _ = split
                return _json(self._store(file_id, json.loads(metadata or b"{}"), content))
            return _json(self._store(file_id, {}, body))
        except _QuotaExceeded as exc:
            return _error(403, "storageQuotaExceeded", str(exc))

    def _resumable_chunk(
        self, upload_id: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            return _error(404, "notFound", "upload session expired")
        match = re.fullmatch(
            r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", headers.get("Content-Range") or ""
        )
        total = int(match.group(3)) if match and match.group(3) != "*" else None
        if match and match.group(1) is not None:
            if int(match.group(1)) != len(upload.data):
                return _error(400, "badRange", "chunk does not continue the upload")
            upload.data += body
        elif not match:
            upload.data += body
            total = len(upload.data)
        if total is not None and len(upload.data) >= total:
            with self._lock:
                self._uploads.pop(upload_id, None)
            return _json(self._store(upload.file_id, upload.metadata, bytes(upload.data)))
        headers_out = {"Range": f"bytes=0-{len(upload.data) - 1}"} if upload.data else {}
        return 308, headers_out, b""

    def _store(
        self, file_id: str | None, metadata: dict[str, Any], content: bytes
    ) -> dict[str, Any]:
        if file_id is None:
            return self._insert(metadata, content).resource()
        with self._lock:
            file = self.files[file_id]
            self._check_quota(len(content) - len(file.content))
            file.content = content
            if "title" in metadata:
                file.title = metadata["title"]
            file.modified = _now()
            return file.resource()


class _QuotaExceeded(Exception):
    pass


def _load(body: bytes) -> dict[str, Any]:
    return json.loads(body) if body.strip() else {}


def _json(payload: dict[str, Any], status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(payload).encode()


def _error(
    status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    domain = "usageLimits" if "Limit" in reason or "Quota" in reason else "global"
    payload = {
        "error": {
            "errors": [{"domain": domain, "reason": reason, "message": message}],
            "code": status,
            "message": message,
        }
    }
    code, out, body = _json(payload, status)
    return code, {**out, **(headers or {})}, body


def _handler(server: FakeDriveServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""  # always drain the body
            if len(body) < length:
                # The client went away mid-request (e.g. killed): Drive never acts on a request
                # it did not receive whole. Acting on the part (a move whose new title was cut
                # off) once made a killed backup's file vanish from both of its places.
                self.close_connection = True
                return
            status, headers, payload = server.handle(self.command, self.path, self.headers, body)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
