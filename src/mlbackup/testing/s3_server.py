"""An S3 server on loopback for tests: moto's server, which s3fs and botocore really talk to.

Needs ``moto[server]`` (in the ``testing`` extra). Use it from pytest through the fixtures in
`mlbackup.testing.fixtures`, or directly::

    with MotoS3Server() as server:
        server.create_bucket("backups")
        target = open_target("s3://backups/run1", **server.storage_options())

moto accepts any credentials by default. `MotoS3Server.requiring_signatures()` switches
on moto's IAM mode, where S3 answers a wrong key or secret as AWS does (``InvalidAccessKeyId``,
``SignatureDoesNotMatch``), and `MotoS3Server.create_access_key()` makes a valid pair.

S3 decides a conditional PUT (``If-None-Match: *``, ``If-Match``) atomically; moto checks and
then writes, so two writers racing to create one key could both be told they made it (seen
under parallel test runs: the second manifest replaced the first). The server serialises
conditional PUTs, as the real store behaves.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .loopback import LoopbackServer

__all__ = ["MotoS3Server"]

#: Credentials the server accepts while signatures are not checked.
DEFAULT_KEY = "mlbackup-test-key"
DEFAULT_SECRET = "mlbackup-test-secret"  # noqa: S105 - moto accepts any


class _AtomicConditionalPuts:
    """WSGI middleware: conditional PUTs run one at a time, each check-and-write whole."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        conditional = "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ
        if environ.get("REQUEST_METHOD") != "PUT" or not conditional:
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))  # answered inside the lock


class MotoS3Server(LoopbackServer):
    """moto's S3 server on 127.0.0.1 and a free port, started in this process."""

    def __init__(self) -> None:
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.endpoint_url = ""

    def start(self) -> MotoS3Server:
        """Start the server; returns ``self``."""
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # One log line per request on stderr otherwise (werkzeug's access log).
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = _AtomicConditionalPuts(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-s3", daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.shutdown()
            if self._thread is not None:
                self._thread.join()
            self._server.server_close()
            self._server = None

    def _post(self, path: str, body: bytes = b"") -> bytes:
        request = urllib.request.Request(  # noqa: S310 - our own loopback http:// URL
            f"{self.endpoint_url}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return bytes(response.read())

    def reset(self) -> None:
        """Forget every bucket, object, user and key (moto's ``/moto-api/reset``)."""
        self._post("/moto-api/reset")

    def storage_options(
        self, key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET, **extra: Any
    ) -> dict[str, Any]:
        """Options for [`mlbackup.open_target()`][mlbackup.open_target] that reach this server."""
        return {"endpoint_url": self.endpoint_url, "key": key, "secret": secret, **extra}

    def client(
        self, service: str = "s3", key: str = DEFAULT_KEY, secret: str = DEFAULT_SECRET
    ) -> Any:
        """A boto3 client of ``service`` on this server, for test setup and inspection."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket."""
        self.client().create_bucket(Bucket=name)

    def create_access_key(self, user: str = "mlbackup-test") -> tuple[str, str]:
        """Make an IAM user allowed everything and return its ``(key, secret)``."""
        iam = self.client("iam")
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        created = iam.create_access_key(UserName=user)["AccessKey"]
        return created["AccessKeyId"], created["SecretAccessKey"]

    @contextmanager
    def requiring_signatures(self) -> Iterator[None]:
        """Check keys and signatures as AWS does, inside the ``with`` block.

        moto keeps this switch per process: while it is on, every moto server in the process
        checks signatures.
        """
        self._post("/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", b"inf")
