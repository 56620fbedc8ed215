"""A GCS server on loopback for tests: gcp-storage-emulator, which gcsfs really talks to.

Needs ``gcp-storage-emulator`` (in the ``testing`` extra). gcsfs must be imported after
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` is set (this module sets it when imported), or it
swaps in a gRPC client that stalls against any emulator.

The emulator as shipped ignores generation preconditions, which the backend relies on to commit
manifests create-only; `GCSEmulator` enforces ``ifGenerationMatch`` on every upload, as
GCS does, and answers ``412 conditionNotMet``. It also sets ``TCP_NODELAY``, without which each
small upload waits on delayed ACKs.

`OAuthTokenServer` is Google's OAuth token endpoint in miniature, so the service-account
credential path (signing a JWT, exchanging it for a token) runs for real in tests, including
a rejected key.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from .loopback import LoopbackServer, QuietHTTPServer, QuietThreadingHTTPServer, shut_down
from .multipart import split_related

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

__all__ = ["GCSEmulator", "OAuthTokenServer", "saved_oauth_token", "service_account_info"]


class _PreconditionFailed(Exception):
    pass


# The precondition of the request a handler thread is serving, read by the storage hook.
_request_state = threading.local()


def _enforcing_storage(storage: Any) -> Any:
    """Make ``storage.create_file`` honour the current request's ``ifGenerationMatch``."""
    create_file = storage.create_file

    def create_file_if_generation_matches(
        bucket: str, name: str, content: bytes, file_obj: Any, file_id: Any = None
    ) -> Any:
        wanted = getattr(_request_state, "if_generation_match", None)
        if wanted is not None:
            try:
                current = str(storage.get_file_obj(bucket, name).get("generation", ""))
            except Exception:  # noqa: BLE001 - the emulator's NotFound: no live object
                current = "0"
            if current != wanted:
                raise _PreconditionFailed
        return create_file(bucket, name, content, file_obj, file_id)

    storage.create_file = create_file_if_generation_matches
    return storage


def _exact_read_data(read_data: Any) -> Any:
    """The emulator parses uploads with the ``email`` package, which drops a trailing
    ``\\r`` or ``\\n`` of the content (one object in a hundred of random bytes came back a
    byte short); parse multipart/related uploads byte-exact instead."""

    def read(request_handler: Any, query: Any) -> Any:
        content_type = request_handler.headers.get("Content-Type") or ""
        if not content_type.startswith("multipart/related"):
            return read_data(request_handler, query)
        from gcp_storage_emulator.server import _decode_raw_data, _read_raw_data

        raw = _decode_raw_data(_read_raw_data(request_handler), request_handler)
        split = split_related(raw or b"", content_type)
        if split is None:
            return None
        meta, content, kind = split
        return {"meta": json.loads(meta), "content": content, "content-type": kind}

    read.exact = True  # type: ignore[attr-defined]
    return read


def _handler_class(base: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    class Handler(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _with_precondition(self, handle: Any) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            _request_state.if_generation_match = query.get("ifGenerationMatch", [None])[0]
            try:
                handle()
            except _PreconditionFailed:
                body = json.dumps(
                    {
                        "error": {
                            "code": 412,
                            "message": "At least one of the pre-conditions you specified "
                            "did not hold.",
                            "errors": [{"reason": "conditionNotMet"}],
                        }
                    }
                ).encode()
                self.send_response(HTTPStatus.PRECONDITION_FAILED)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                _request_state.if_generation_match = None

        def do_POST(self) -> None:
            self._with_precondition(super().do_POST)

        def do_PUT(self) -> None:
            self._with_precondition(super().do_PUT)

        def do_DELETE(self) -> None:
            # Cancelling a resumable upload: DELETE on its session URI answers 499 in GCS.
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if self.path.startswith("/upload/") and "upload_id" in query:
                with contextlib.suppress(Exception):
                    self.storage.delete_resumable_file_obj(query["upload_id"][0])
                self.send_response(499)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_DELETE()

    return Handler


class GCSEmulator(LoopbackServer):
    """gcp-storage-emulator on 127.0.0.1 and a free port, in this process, in memory."""

    def __init__(self) -> None:
        self._httpd: Any = None
        self._thread: threading.Thread | None = None
        self._storage: Any = None
        self.endpoint_url = ""

    def start(self) -> GCSEmulator:
        """Start the emulator; returns ``self``."""
        from functools import partial

        import gcp_storage_emulator.server as emulator
        from gcp_storage_emulator.server import RequestHandler
        from gcp_storage_emulator.storage import Storage

        if not getattr(emulator._read_data, "exact", False):
            emulator._read_data = _exact_read_data(emulator._read_data)

        self._storage = _enforcing_storage(Storage(use_memory_fs=True))
        # One request at a time, as the emulator's own server does: its storage has no locks.
        self._httpd = QuietHTTPServer(
            ("127.0.0.1", 0), partial(_handler_class(RequestHandler), self._storage)
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="gcs-emulator", daemon=True
        )
        self._thread.start()
        self.endpoint_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        return self

    def stop(self) -> None:
        """Stop the emulator."""
        shut_down(self._httpd)
        self._httpd = None

    def reset(self) -> None:
        """Forget every bucket and object."""
        self._storage.wipe()

    def create_bucket(self, name: str) -> None:
        """Create a bucket."""
        from gcp_storage_emulator.handlers.buckets import create_bucket

        create_bucket(name, self._storage)

    def read_object(self, bucket: str, name: str) -> bytes:
        """An object's bytes, straight from the emulator's storage."""
        return bytes(self._storage.get_file(bucket, name))

    def replace_object_bytes(self, bucket: str, name: str, data: bytes) -> None:
        """Change an object's bytes behind the API's back (its metadata stays), as bit rot or
        a foreign writer would."""
        obj = self._storage.get_file_obj(bucket, name)
        self._storage._store.write_bytes(self._storage._object_path(bucket, name), data)
        obj["size"] = str(len(data))

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """Options for [`mlbackup.open_target()`][mlbackup.open_target] that reach this emulator
        anonymously."""
        return {"endpoint_url": self.endpoint_url, "token": "anon", "project": "test", **extra}


class OAuthTokenServer(LoopbackServer):
    """A loopback OAuth 2.0 token endpoint answering service-account JWT grants and
    refresh-token grants (a user's saved consent).

    It does not check JWT signatures: with ``reject`` set it answers every grant as Google
    answers a revoked or mistyped key (``400 invalid_grant``).
    """

    def __init__(self, access_token: str = "ya29.mlbackup-test-token") -> None:  # noqa: S107
        self.access_token = access_token
        self.reject = False
        self.grants = 0
        self._httpd: QuietThreadingHTTPServer | None = None

    @property
    def token_uri(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/token"

    def start(self) -> OAuthTokenServer:
        """Start the server; returns ``self``."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                server.grants += 1
                grant = "assertion" in form or form.get("grant_type") == ["refresh_token"]
                if server.reject or not grant:
                    status = HTTPStatus.BAD_REQUEST
                    answer: dict[str, Any] = {
                        "error": "invalid_grant",
                        "error_description": "Invalid JWT Signature.",
                    }
                else:
                    status = HTTPStatus.OK
                    answer = {
                        "access_token": server.access_token,
                        "expires_in": 3600,
                        "token_type": "Bearer",
                    }
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, name="oauth", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop the server."""
        shut_down(self._httpd)
        self._httpd = None

    @contextmanager
    def rejecting(self) -> Iterator[None]:
        """Answer every grant with ``invalid_grant`` inside the ``with`` block."""
        self.reject = True
        try:
            yield
        finally:
            self.reject = False


def saved_oauth_token(token_uri: str) -> dict[str, Any]:
    """A saved OAuth user token (oauth2client's JSON, as pydrive2 saves it), already expired,
    so the first use refreshes it at ``token_uri``."""
    return {
        "_module": "oauth2client.client",
        "_class": "OAuth2Credentials",
        "access_token": "expired",
        "client_id": "mlbackup-test.apps.googleusercontent.com",
        "client_secret": "mlbackup-test-client-secret",
        "refresh_token": "1//mlbackup-test-refresh-token",
        "token_expiry": "2000-01-01T00:00:00Z",
        "token_uri": token_uri,
        "user_agent": None,
        "revoke_uri": "https://oauth2.googleapis.com/revoke",
        "id_token": None,
        "id_token_jwt": None,
        "token_response": None,
        "scopes": ["https://www.googleapis.com/auth/drive"],
        "token_info_uri": None,
        "invalid": False,
    }


def service_account_info(
    token_uri: str, email: str = "backup@test.iam.gserviceaccount.com"
) -> dict[str, str]:
    """A service-account key file's content with a fresh RSA key, exchanged at ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": email,
        "client_id": "1",
        "token_uri": token_uri,
    }
