import json
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# A shell that starts the suite in the background leaves SIGINT ignored, and every child
# inherits that: the tests that press Ctrl-C in a child need its default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test sees the developer's MLBACKUP_* settings, config files or data folder."""
    for key in list(os.environ):
        if key.startswith("MLBACKUP_"):
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv(
        "MLBACKUP_DRIVE_MOUNT_ROOT", str(tmp_path_factory.mktemp("no-drive") / "drive")
    )


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder as the current directory (the default source root)."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def target_dir(tmp_path):
    return tmp_path / "target"


@pytest.fixture
def drive_mount(tmp_path, monkeypatch):
    """A temp folder standing in for Colab's /content/drive, with My Drive in it."""
    root = tmp_path / "content-drive"
    (root / "MyDrive").mkdir(parents=True)
    monkeypatch.setenv("MLBACKUP_DRIVE_MOUNT_ROOT", str(root))
    return root


pytest_plugins = ["mlbackup.testing.fixtures", "figures"]


def _slowest_first(item):
    """Slow tests first, the slowest (``@pytest.mark.slow(seconds=N)``, its CPU time alone)
    before the others."""
    slow = item.get_closest_marker("slow")
    return (slow is None, -(slow.kwargs.get("seconds", 0) if slow else 0))


def pytest_collection_modifyitems(config, items):
    """Slow tests first, so parallel workers (``-n``) do not end on one long test while the
    others idle; soak trials run only when asked for (``pytest -m soak``), never in CI."""
    items.sort(key=_slowest_first)  # stable: else as written
    if "soak" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="soak trial: run with -m soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


SERVER_FIXTURES = {"s3_server", "gcs_server", "drive_api", "drive_api_server", "gcs_key_file"}
CLOUD_FILES = {
    "test_s3.py",
    "test_gcs.py",
    "test_gdrive.py",
    "test_cloud_backends.py",
    "test_cloud_faults.py",
    "test_fault_matrix.py",
    "test_crash.py",
    "test_changing_sources.py",
    "test_gdrive_backend.py",
}


@pytest.fixture(autouse=True)
def no_credential_in_logs(request, caplog, monkeypatch, figures):
    """Around every test that talks to a cloud test server: log everything, at DEBUG and from
    every library, record the text of every mlbackup error raised (caught by the test or not),
    and fail if a canary credential shows up in any of it."""
    if request.node.path.name not in CLOUD_FILES and not SERVER_FIXTURES & set(
        request.fixturenames
    ):
        yield
        return
    from canary import assert_no_canary

    from mlbackup.errors import MLBackupError

    errors: list[str] = []
    original_init = MLBackupError.__init__

    def recording_init(self, *args, **kwargs):
        errors.append(" ".join(str(a) for a in args))
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(MLBackupError, "__init__", recording_init)
    caplog.set_level(logging.DEBUG)
    yield
    from mlbackup.testing.s3_server import DEFAULT_SECRET

    extra = [DEFAULT_SECRET]  # the credentials each server fixture hands out are canaries too
    if "google_token_server" in request.fixturenames:
        extra.append(request.getfixturevalue("google_token_server").access_token)
    if "gcs_key_file" in request.fixturenames:
        # The service account's private key: a line from the middle of its PEM body.
        key = json.loads(request.getfixturevalue("gcs_key_file").read_text())["private_key"]
        extra.append(key.splitlines()[5])
    for text in errors:
        assert_no_canary(text, extra)
    scanned = len(errors)
    # At teardown, caplog.records holds only teardown's records: ask for each phase.
    records = caplog.get_records("setup") + caplog.get_records("call")
    if request.node.path.name in CLOUD_FILES:
        assert records, "DEBUG logging was on; some record should have been captured"
    formatter = logging.Formatter()
    for record in records:
        assert_no_canary(formatter.format(record), extra)  # message and any traceback
    figures.add("log records and error texts scanned for canaries", scanned + len(records))


@pytest.fixture(autouse=True)
def count_injected_faults(monkeypatch, figures):
    """Every fault a FaultyFS or FaultProxy of this test injected counts in the figures."""
    from mlbackup.testing.fault_proxy import FaultProxy
    from mlbackup.testing.faulty_fs import FaultyFS

    made = []
    for cls in (FaultyFS, FaultProxy):
        original = cls.__init__

        def recording_init(self, *args, _original=original, **kwargs):
            _original(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(cls, "__init__", recording_init)
    yield
    for kit in made:
        if isinstance(kit, FaultyFS):
            figures.add("injected faults", sum(1 for call in kit.log if call.fault))
        else:
            figures.add("injected faults", kit.injected_total)


@pytest.fixture
def gdrive_options(drive_api, google_token_server, gcs_key_file, monkeypatch):
    """Storage options for the fake Drive API: a service-account key whose token_uri is the
    loopback token endpoint (a real JWT grant), granting the canary token."""
    from canary import CANARY_TOKEN

    monkeypatch.setattr(google_token_server, "access_token", CANARY_TOKEN)
    return {"service_account_json": str(gcs_key_file), "api_endpoint": drive_api.endpoint_url}


@dataclass(frozen=True)
class StoreSpec:
    """An empty target of one kind: its URL, its options, and which option names the server
    (``endpoint_url``, ``api_endpoint``; None for local kinds), so a test can put a proxy in
    between. Unpacks as ``url, options``."""

    kind: str
    url: str
    options: dict[str, Any]
    endpoint_option: str | None = None

    @property
    def endpoint(self) -> str:
        assert self.endpoint_option is not None, f"{self.kind} has no server"
        return self.options[self.endpoint_option]

    def through(self, endpoint: str) -> dict[str, Any]:
        """The options, reaching the store at ``endpoint`` (a FaultProxy's) instead."""
        assert self.endpoint_option is not None, f"{self.kind} has no server"
        return {**self.options, self.endpoint_option: endpoint}

    def __iter__(self) -> Iterator[Any]:
        return iter((self.url, self.options))


def empty_store(request, kind, tmp_path, folder="store") -> StoreSpec:
    """An empty target of ``kind`` (file, drive, s3, gs, gdrive) named ``folder``, starting the
    server it needs: one table of stores for every test that runs on each of them."""
    if kind == "file":
        return StoreSpec(kind, str(tmp_path / folder), {})
    if kind == "drive":
        request.getfixturevalue("drive_mount")
        # With its browsable copies (off by default), so that they are crash-tested too.
        return StoreSpec(kind, f"drive://{folder}", {"browsable": True})
    if kind in ("s3", "gs"):
        server = request.getfixturevalue({"s3": "s3_server", "gs": "gcs_server"}[kind])
        bucket = request.getfixturevalue({"s3": "s3_bucket", "gs": "gcs_bucket"}[kind])
        return StoreSpec(
            kind, f"{kind}://{bucket}/{folder}", server.storage_options(), "endpoint_url"
        )
    options = request.getfixturevalue("gdrive_options")
    return StoreSpec(kind, f"gdrive://root/{folder}", options, "api_endpoint")


@pytest.fixture
def s3_proxy(s3_server, s3_bucket):
    """A fault proxy in front of the S3 server."""
    from mlbackup.testing.fault_proxy import FaultProxy

    with FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def s3_target(s3_server, s3_bucket, s3_proxy):
    """A target on the S3 server through `s3_proxy`, its secret a canary."""
    from canary import CANARY_SECRET

    from mlbackup import open_target

    options = s3_server.storage_options(secret=CANARY_SECRET, endpoint_url=s3_proxy.endpoint_url)
    return open_target(f"s3://{s3_bucket}/run", **options)
