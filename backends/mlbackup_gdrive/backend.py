"""The Drive API backend on pydrive2."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast
from urllib.parse import unquote, urlsplit

from mlbackup.backend import Backend, ObjectInfo
from mlbackup.error_table import translating
from mlbackup.registry import needs_extra

with needs_extra("gdrive"):  # the client itself is imported when a target is opened
    import pydrive2  # noqa: F401

from mlbackup.errors import ConfigError, SourceChangedError, TargetError
from mlbackup.hashing import hash_file
from mlbackup.progress import byte_reporter
from mlbackup.retry import RetryPolicy

from .auth import Authorized, authorize, build_service
from .errors import translate

__all__ = ["GDriveBackend"]

log = logging.getLogger("mlbackup.gdrive")  # under the one mlbackup logger

FOLDER = "application/vnd.google-apps.folder"
SHORTCUT = "application/vnd.google-apps.shortcut"
MiB = 1 << 20
#: Files up to this size go up in one multipart request; larger ones resumably in chunks.
SIMPLE_UPLOAD = 5 * MiB
DEFAULT_CHUNK = 8 * MiB
_FIELDS = (
    "id,title,mimeType,fileSize,md5Checksum,createdDate,modifiedDate,parents(id),"
    "shortcutDetails(targetId)"
)


def _oldest(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The item created first (the same answer for every reader: ties go by ID)."""
    return min(items, key=lambda f: (f.get("createdDate", ""), f["id"]))


def _quote(title: str) -> str:
    return title.replace("\\", "\\\\").replace("'", "\\'")


class GDriveBackend(Backend):
    """Backups in a Google Drive folder through the Drive API (pydrive2's auth and service).

    Drive is ID-based and allows several files with one title in a folder. An object is a new
    file (titled by its hash under ``.mlbackup/objects``) that versions refer to by its ID, so
    another tool's file of the same name, in the trash or in a duplicate folder is never read
    or touched in its place; each upload is checked against the ``md5Checksum`` and
    ``fileSize`` Drive reports. The browsable tree is Drive shortcuts to the objects (no
    quota). Other keys map to one file: an overwrite updates that file by ID (a new
    revision), never adds a sibling. Duplicates made by other tools are read newest-first,
    with a warning once per key.
    """

    hash_name: ClassVar[str] = "md5"
    # No create-only write: manifests get writer-tagged names (mlbackup.commit).
    create_only: ClassVar[bool] = False
    touches: ClassVar[bool] = True
    max_workers: ClassVar[int] = 4
    no_room_advice: ClassVar[str] = (
        "a service account owns no storage: use a shared drive, or a user's login; else free "
        "space in the Drive or choose another target"
    )
    # Drive throttles in bursts (429, 403 rateLimitExceeded): more tries, honouring Retry-After.
    retry_policy: ClassVar[RetryPolicy] = RetryPolicy(attempts=6, base_delay=1.0, max_delay=32.0)
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "service_account_json": str,
        "service_account_json_env": str,
        "credentials_file": str,
        "colab": bool,
        "api_endpoint": str,
        "chunk_size": int,
        "timeout": (int, float),
    }

    def __init__(self, url: str, folder_id: str, path: str, options: Mapping[str, Any]) -> None:
        self._url = url
        self._base_id = folder_id
        self._base_path = path
        self._options = dict(options)
        self._chunk = int(options.get("chunk_size", DEFAULT_CHUNK))
        self._timeout = float(options.get("timeout", 60))
        self._auth: Authorized | None = None
        self._service: Any = None
        self._local = threading.local()
        self._folders: dict[str, str] = {}
        self._folder_lock = threading.Lock()
        self._warned: set[str] = set()
        self._connections: list[Any] = []  # every thread's http, closed by close()
        self._connections_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any]) -> GDriveBackend:
        options = cls.check_options(options)
        parts = urlsplit(url)
        if parts.scheme != "gdrive" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"{url!r} is not a gdrive URL; use gdrive://root/<path> (My Drive) or "
                "gdrive://<folder-id>/<path> (a shared folder or shared drive)"
            )
        path = unquote(parts.path).strip("/")
        if any(s in ("", ".", "..") for s in path.split("/")) and path:
            raise ConfigError(f"{url!r} has an empty, '.' or '..' segment; give a plain path")
        chunk = int(options.get("chunk_size", DEFAULT_CHUNK))
        if chunk < 256 << 10 or chunk % (256 << 10):
            raise ConfigError(f"chunk_size {chunk} must be a positive multiple of 256 KiB")
        return cls(f"gdrive://{parts.netloc}/{path}".rstrip("/"), parts.netloc, path, options)

    @property
    def url(self) -> str:
        return self._url

    def __getstate__(self) -> Any:
        raise TypeError(
            "GDriveBackend holds credentials and cannot be pickled; pass the URL and options "
            "instead, and open the target again with open_target()"
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _translated(self, what: str) -> AbstractContextManager[None]:
        return translating(lambda exc: self._translate_error(exc, what))

    def _translate_error(self, exc: Exception, what: str) -> Exception:
        # Asked at failure time: a failure while authorizing has no source yet.
        source = self._auth.source if self._auth else "the configured credentials"
        service_account = bool(self._auth and self._auth.service_account)
        return translate(
            exc, what=what, where=self._url, source=source, service_account=service_account
        )

    def _http(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            assert self._auth is not None
            http = self._local.http = self._auth.gauth.Get_Http_Object()
            http.timeout = self._timeout
            with self._connections_lock:
                self._connections.append(http)
        return http

    def _run(self, request: Any) -> Any:
        # num_retries=0: the retry policy of the whole operation decides (mlbackup.retry).
        return request.execute(http=self._http(), num_retries=0)

    def credentials(self) -> str:
        if self._auth is None:
            return "not yet authorized"
        kind = "a service account" if self._auth.service_account else "a user's OAuth login"
        return f"{kind}, from {self._auth.source}"

    def free_bytes(self) -> int | None:
        with self._translated("read the quota of"):
            about = self._run(
                self._service.about().get(fields="quotaBytesTotal,quotaBytesUsed,quotaType")
            )
        if about.get("quotaType") == "UNLIMITED":
            return None  # a Workspace account without a limit (Drive reports no total then)
        total = int(about.get("quotaBytesTotal") or 0)
        # A service account owns no storage (total 0): nothing it uploads fits.
        return max(total - int(about.get("quotaBytesUsed") or 0), 0)

    def check(self) -> None:
        with self._translated("open"):
            self._auth = authorize(self._options, min(self._timeout, 10.0))
            self._service = build_service(
                self._auth.gauth, self._options.get("api_endpoint"), self._http()
            )
            base = self._run(self._service.files().get(fileId=self._base_id, fields="id,mimeType"))
            if base.get("mimeType") != FOLDER:
                raise ConfigError(f"{self._base_id!r} in {self._url} is not a folder ID")
            self._base_id = base["id"]
            self._folders[""] = self._base_id

    def _split(self, key: str) -> tuple[str, str]:
        full = f"{self._base_path}/{key}" if self._base_path else key
        parent, _, title = full.rpartition("/")
        return parent, title

    def _list(self, q: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self._run(
                self._service.files().list(
                    q=q,
                    maxResults=1000,
                    pageToken=token,
                    fields=f"nextPageToken,items({_FIELDS})",
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                )
            )
            items += page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return items

    def _children(
        self, parent_id: str, title: str | None = None, folders: bool = False
    ) -> list[dict[str, Any]]:
        q = f"'{parent_id}' in parents and trashed = false"
        if title is not None:
            q += f" and title = '{_quote(title)}'"
        if folders:
            q += f" and mimeType = '{FOLDER}'"
        found = self._list(q)
        if title is not None:  # Drive's title match ignores case; keys do not
            found = [f for f in found if f["title"] == title]
        # Newest first: with duplicates, the newest is the one to read.
        return sorted(found, key=lambda f: (f.get("modifiedDate", ""), f["id"]), reverse=True)

    def _folder(self, path: str, create: bool) -> str | None:
        """The ID of the folder at ``path`` (relative to the Drive root given in the URL)."""
        if path in self._folders:
            return self._folders[path]
        parent_path, _, title = path.rpartition("/")
        parent = self._folder(parent_path, create) if path else self._base_id
        if parent is None:
            return None
        with self._folder_lock:  # one creator per folder, or threads would make twins
            if path in self._folders:
                return self._folders[path]
            found = self._children(parent, title, folders=True)
            if not found and not create:
                return None
            if not found:
                body = {"title": title, "mimeType": FOLDER, "parents": [{"id": parent}]}
                mine = self._run(
                    self._service.files().insert(body=body, fields=_FIELDS, supportsAllDrives=True)
                )
                # A writer on another machine may have made the same folder at the same
                # moment (Drive allows twins): every writer settles on the oldest, and the
                # maker of a younger twin removes it before anything is written into it.
                found = self._children(parent, title, folders=True) or [mine]
                if _oldest(found)["id"] != mine["id"]:
                    self._run(
                        self._service.files().delete(fileId=mine["id"], supportsAllDrives=True)
                    )
                    found = [f for f in found if f["id"] != mine["id"]]
            # The oldest: where earlier runs and other writers write, whoever made twins.
            folder_id = str(_oldest(found)["id"])
            self._folders[path] = folder_id
            return folder_id

    def _files(self, key: str) -> list[dict[str, Any]]:
        parent_path, title = self._split(key)
        parent = self._folder(parent_path, create=False)
        if parent is None:
            return []
        found = [f for f in self._children(parent, title) if f.get("mimeType") != FOLDER]
        if len(found) > 1 and key not in self._warned:
            self._warned.add(key)
            log.warning(
                "%s/%s exists %d times on Drive (made by another tool?); using the newest. "
                "Repair: mlbackup.doctor or delete the older copies",
                self._url, key, len(found),
            )  # fmt: skip
        return found

    def duplicates(self, prefix: str = "") -> dict[str, list[str]]:
        """Keys under ``prefix`` held by more than one Drive file: key -> IDs, newest first."""
        with self._translated(f"scan {prefix!r}"):
            found: dict[str, list[str]] = {}
            self._collect_duplicates(prefix, found)
            return found

    def _collect_duplicates(self, prefix: str, found: dict[str, list[str]]) -> None:
        folder_path = f"{self._base_path}/{prefix}".strip("/")
        folder = self._folder(folder_path, create=False)
        if folder is None:
            return
        by_title: dict[str, list[dict[str, Any]]] = {}
        for item in self._children(folder):
            if item["mimeType"] == FOLDER:
                self._collect_duplicates(f"{prefix}/{item['title']}".strip("/"), found)
            else:
                by_title.setdefault(item["title"], []).append(item)
        for title, items in by_title.items():
            if len(items) > 1:
                found[f"{prefix}/{title}".strip("/")] = [i["id"] for i in items]

    def repair_duplicates(self, prefix: str = "") -> int:
        """Keep the newest file of each duplicated key, trash the others; returns how many."""
        trashed = 0
        for ids in self.duplicates(prefix).values():
            for file_id in ids[1:]:
                with self._translated(f"trash {file_id}"):
                    self._run(self._service.files().trash(fileId=file_id, supportsAllDrives=True))
                trashed += 1
        return trashed

    # -- the operations -------------------------------------------------------------------------

    def put_file(self, local_path: Path, key: str) -> ObjectInfo:
        from googleapiclient.http import MediaFileUpload

        size, digest = hash_file(local_path, self.hash_name)
        with self._translated(f"upload {key!r}"):
            parent_path, title = self._split(key)
            parent = self._folder(parent_path, create=True)
            existing = self._files(key)
            media = MediaFileUpload(
                str(local_path),
                mimetype="application/octet-stream",
                resumable=size > SIMPLE_UPLOAD,
                chunksize=self._chunk,
            )
            files = self._service.files()
            if existing:  # update by ID: a new revision, never a sibling
                request = files.update(
                    fileId=existing[0]["id"],
                    media_body=media,
                    fields=_FIELDS,
                    supportsAllDrives=True,
                )
            else:
                body = {"title": title, "parents": [{"id": parent}]}
                request = files.insert(
                    body=body, media_body=media, fields=_FIELDS, supportsAllDrives=True
                )
            stored = self._upload(request)
        self._check(key, stored, size, digest)
        return ObjectInfo(key, size, digest)

    def put_object(self, local_path: Path, key: str, digest: str) -> ObjectInfo:
        from googleapiclient.http import MediaFileUpload

        size = local_path.stat().st_size
        with self._translated(f"upload {key!r}"):
            parent_path, title = self._split(key)
            parent = self._folder(parent_path, create=True)
            media = MediaFileUpload(
                str(local_path),
                mimetype="application/octet-stream",
                resumable=size > SIMPLE_UPLOAD,
                chunksize=self._chunk,
            )
            # Always a new file: another writer's object of the same hash is its own file,
            # which its versions name by ID.
            body = {"title": title, "parents": [{"id": parent}]}
            stored = self._upload(
                self._service.files().insert(
                    body=body, media_body=media, fields=_FIELDS, supportsAllDrives=True
                )
            )
            if stored.get("md5Checksum") != digest:
                self._run(self._service.files().delete(fileId=stored["id"], supportsAllDrives=True))
                raise SourceChangedError(f"{local_path} changed while it was read")
        self._check(key, stored, size, digest)
        return ObjectInfo(key, size, digest, str(stored["id"]))

    def open_ref(self, ref: str) -> BinaryIO:
        with self._translated(f"read {ref!r}"):
            try:
                found = self._run(
                    self._service.files().get(fileId=ref, fields=_FIELDS, supportsAllDrives=True)
                )
            except Exception as exc:
                if getattr(getattr(exc, "resp", None), "status", None) == 404:
                    raise FileNotFoundError(ref) from exc
                raise
            return self._download(found)

    def link(self, src: str, dst: str) -> bool:
        with self._translated(f"link {dst!r}"):
            found = self._files(src)
            if not found:
                raise FileNotFoundError(src)
            self.unlink(dst)
            parent_path, title = self._split(dst)
            body = {
                "title": title,
                "mimeType": SHORTCUT,
                "parents": [{"id": self._folder(parent_path, create=True)}],
                "shortcutDetails": {"targetId": found[0]["id"]},
            }
            self._run(self._service.files().insert(body=body, fields="id", supportsAllDrives=True))
        return True

    def unlink(self, key: str) -> None:
        # Only the shortcuts mlbackup made: a file another tool put there is left alone.
        with self._translated(f"unlink {key!r}"):
            for item in self._files(key):
                if item.get("mimeType") == SHORTCUT:
                    self._run(
                        self._service.files().delete(fileId=item["id"], supportsAllDrives=True)
                    )

    def adopt(self, src: str, dst: str) -> bool:
        """A format-1 plain file becomes the object: moved by ID (no copy, no quota), and
        only the file whose md5 is the object's hash (not another tool's of the same name)."""
        digest = dst.rsplit("/", 1)[-1]
        with self._translated(f"move {src!r}"):
            mine = [f for f in self._files(src) if f.get("md5Checksum") == digest]
            if not mine:
                return False
            src_parent = self._folder(self._split(src)[0], create=False)
            dst_parent_path, dst_title = self._split(dst)
            dst_parent = self._folder(dst_parent_path, create=True)
            self._run(
                self._service.files().patch(
                    fileId=mine[0]["id"], body={"title": dst_title}, supportsAllDrives=True,
                    addParents=dst_parent, removeParents=src_parent,
                )
            )  # fmt: skip
        return True

    def touch(self, key: str) -> None:
        with self._translated(f"touch {key!r}"):
            found = self._files(key)
            if not found:
                raise FileNotFoundError(key)
            self._run(self._service.files().touch(fileId=found[0]["id"], supportsAllDrives=True))

    def modified(self, key: str) -> float | None:
        from datetime import datetime

        with self._translated(f"stat {key!r}"):
            found = self._files(key)
        if not found:
            return None
        stamps = [str(f.get("modifiedDate") or "") for f in found]
        try:
            return max(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in stamps)
        except ValueError:
            return float("inf")

    def _upload(self, request: Any) -> dict[str, Any]:
        if request.resumable is None:
            return cast(dict[str, Any], self._run(request))
        response = None
        sent, reported = byte_reporter(), 0

        def next_chunk() -> tuple[Any, Any]:
            with self._translated("upload a chunk"):
                return cast(tuple[Any, Any], request.next_chunk(http=self._http(), num_retries=0))

        while response is None:
            # A chunk throttled (429) or cut off is retried in the same session: the client
            # first asks Drive how many bytes it holds, then goes on from there. Restarting
            # would send the whole file again (and Drive throttles in bursts).
            status, response = type(self).retry_policy.call(next_chunk, f"upload to {self._url}")
            if sent is not None and status is not None:
                sent(status.resumable_progress - reported)
                reported = status.resumable_progress
        return cast(dict[str, Any], response)

    def _check(self, key: str, stored: Mapping[str, Any], size: int, digest: str) -> None:
        if int(stored.get("fileSize", -1)) != size or stored.get("md5Checksum") != digest:
            raise TargetError(
                f"upload of {key!r} to {self._url} could not be verified: Drive holds "
                f"{stored.get('fileSize')} bytes with md5 {stored.get('md5Checksum')}, the "
                f"bytes sent were {size} with md5 {digest}; retry the backup"
            )

    def info(self, key: str) -> ObjectInfo | None:
        with self._translated(f"stat {key!r}"):
            found = self._files(key)
        if not found:
            return None
        first = found[0]
        return ObjectInfo(
            key, int(first.get("fileSize", 0)), first.get("md5Checksum"), str(first["id"])
        )

    def open_read(self, key: str) -> BinaryIO:
        with self._translated(f"read {key!r}"):
            found = self._files(key)
            if not found:
                raise FileNotFoundError(key)
            target = found[0].get("shortcutDetails", {}).get("targetId")
            if found[0].get("mimeType") == SHORTCUT and target:
                return self.open_ref(str(target))  # a file of the browsable tree
            return self._download(found[0])

    def _download(self, item: Mapping[str, Any]) -> BinaryIO:
        from googleapiclient.http import MediaIoBaseDownload

        with self._translated(f"read {item['id']!r}"):
            spool = tempfile.SpooledTemporaryFile(max_size=16 * MiB)  # noqa: SIM115 - returned
            if int(item.get("fileSize", 0)) > 0:
                request = self._service.files().get_media(fileId=item["id"], supportsAllDrives=True)
                request.http = self._http()  # this thread's connection, not the builder's
                download = MediaIoBaseDownload(spool, request, chunksize=self._chunk)
                done = False
                while not done:
                    _, done = download.next_chunk(num_retries=0)
            spool.seek(0)
            return cast(BinaryIO, spool)

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()

    def list_dir(self, prefix: str) -> list[str]:
        with self._translated(f"list {prefix!r}"):
            folder = self._folder(f"{self._base_path}/{prefix}".strip("/"), create=False)
            if folder is None:
                return []
            return sorted({item["title"] for item in self._children(folder)})

    def move(self, src: str, dst: str) -> None:
        with self._translated(f"move {src!r}"):
            found = self._files(src)
            if not found:
                raise FileNotFoundError(src)
            src_parent = self._folder(self._split(src)[0], create=False)
            dst_parent_path, dst_title = self._split(dst)
            dst_parent = self._folder(dst_parent_path, create=True)
            for old in self._files(dst):
                self._run(self._service.files().delete(fileId=old["id"], supportsAllDrives=True))
            kwargs: dict[str, Any] = {}
            if dst_parent != src_parent:
                kwargs = {"addParents": dst_parent, "removeParents": src_parent}
            self._run(
                self._service.files().patch(
                    fileId=found[0]["id"],
                    body={"title": dst_title},
                    supportsAllDrives=True,
                    **kwargs,
                )
            )

    def delete(self, key: str) -> None:
        with self._translated(f"delete {key!r}"):
            for item in self._files(key):
                self._run(self._service.files().delete(fileId=item["id"], supportsAllDrives=True))

    def write_new(self, key: str, data: bytes) -> None:
        from googleapiclient.http import MediaInMemoryUpload

        with self._translated(f"write {key!r}"):
            if self._files(key):
                raise FileExistsError(key)
            parent_path, title = self._split(key)
            parent = self._folder(parent_path, create=True)
            media = MediaInMemoryUpload(data, mimetype="application/octet-stream")
            body = {"title": title, "parents": [{"id": parent}]}
            mine = self._run(
                self._service.files().insert(
                    body=body, media_body=media, fields=_FIELDS, supportsAllDrives=True
                )
            )
            # Drive has no conditional create: if a racing writer made the same key, the file
            # created first wins and the other writer withdraws its own.
            # (Ours alone if another writer deleted every file of this name meanwhile.)
            first = _oldest(self._files(key) or [mine])
            if first["id"] != mine["id"]:
                self._run(self._service.files().delete(fileId=mine["id"], supportsAllDrives=True))
                raise FileExistsError(key)
        self._check(key, mine, len(data), hashlib.md5(data).hexdigest())

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for http in connections:
            http.close()
        self._local = threading.local()
        self._service = None
        self._auth = None
