"""pytest fixtures that start the test servers: enable with one line in a ``conftest.py``::

    pytest_plugins = ["mlbackup.testing.fixtures"]

Each server starts once per session, on first use, and is emptied before every test that asks
for a bucket. Fixtures:

- ``s3_server``: a `MotoS3Server`;
  ``s3_bucket``: the name of an empty bucket on it.
- ``gcs_server``: a `GCSEmulator`;
  ``gcs_bucket``: the name of an empty bucket on it.
- ``drive_api_server``: a `FakeDriveServer`;
  ``drive_api``: the same server, emptied for this test.
- ``google_token_server``: an `OAuthTokenServer`;
  ``gcs_key_file``: a service-account key file whose token endpoint is that server.
- ``postgres_server``: a `PostgresServer` (a real PostgreSQL, from an installed one; the
  tests using it are skipped where PostgreSQL is not installed, unless the environment sets
  ``MLBACKUP_TESTS_NEED_POSTGRES=1``, as CI does, which makes its absence a failure);
  ``postgres_database``: the URL of an empty database on it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .drive_server import FakeDriveServer
from .gcs_server import GCSEmulator, OAuthTokenServer, service_account_info
from .postgres_server import PostgresServer, postgres_binaries
from .s3_server import MotoS3Server

__all__ = [
    "drive_api",
    "drive_api_server",
    "gcs_bucket",
    "gcs_key_file",
    "gcs_server",
    "google_token_server",
    "postgres_database",
    "postgres_server",
    "s3_bucket",
    "s3_server",
]

BUCKET = "mlbackup-test"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    """moto's S3 server for the whole session."""
    with MotoS3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoS3Server) -> str:
    """An empty bucket (everything else on the server is wiped first)."""
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    return BUCKET


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSEmulator]:
    """The GCS emulator for the whole session."""
    with GCSEmulator() as server:
        yield server


@pytest.fixture
def gcs_bucket(gcs_server: GCSEmulator) -> str:
    """An empty bucket (everything else on the emulator is wiped first)."""
    gcs_server.reset()
    gcs_server.create_bucket(BUCKET)
    return BUCKET


@pytest.fixture(scope="session")
def google_token_server() -> Iterator[OAuthTokenServer]:
    """A loopback OAuth token endpoint for service-account keys."""
    server = OAuthTokenServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_key_file(
    google_token_server: OAuthTokenServer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A service-account JSON key (fresh RSA key) exchanged at ``google_token_server``."""
    path = tmp_path_factory.mktemp("gcs-key") / "service-account.json"
    path.write_text(json.dumps(service_account_info(google_token_server.token_uri)))
    return path


@pytest.fixture(scope="session")
def drive_api_server() -> Iterator[FakeDriveServer]:
    """The fake Drive API for the whole session."""
    with FakeDriveServer() as server:
        yield server


@pytest.fixture
def drive_api(drive_api_server: FakeDriveServer) -> FakeDriveServer:
    """The fake Drive, empty, without faults or quota."""
    drive_api_server.reset()
    return drive_api_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session."""
    if postgres_binaries() is None and os.environ.get("MLBACKUP_TESTS_NEED_POSTGRES") != "1":
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of an empty database of its own, dropped after the test."""
    name = f"t{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)
