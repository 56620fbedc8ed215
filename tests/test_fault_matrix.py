"""The network fault matrix, one row per test, over S3 (moto), GCS (the emulator) and the Drive
API (the fake Drive), each reached through a FaultProxy.

Rows: the store unreachable at start; a connection reset at several places in an upload body;
throttling bursts below and above the retry budget; permanent errors (denied, missing) with no
retry; a stalled store under background mode. Backends' retry policies are swapped for one with
short waits so the rows run in seconds; GCS rows that wait out gcsfs's own six retries (about
30 s) run in the soak tier.
"""

import os
import time

import mlbackup_gdrive
import mlbackup_s3
import pytest
from conftest import empty_store

from mlbackup import (
    BackendPermissionError,
    BackendUnavailableError,
    BackgroundBackup,
    BackupConfig,
    TargetMissingError,
    backup,
    open_target,
    restore,
    restore_if_missing,
)
from mlbackup.retry import RetryPolicy
from mlbackup.testing.fault_proxy import S3_SLOW_DOWN, FaultProxy, gcs_error

FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2)

S3_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)
S3_NO_BUCKET = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code>'
    b"<Message>The specified bucket does not exist</Message></Error>"
)
JSON = {"Content-Type": "application/json"}
XML = {"Content-Type": "application/xml"}


class Store:
    """One store behind a proxy: how to open it, and its own words for each fault."""

    def __init__(self, kind, url, options, proxy):
        self.kind, self.url, self.options, self.proxy = kind, url, options, proxy

    def open(self):
        return open_target(self.url, **self.options)

    def throttled(self):
        if self.kind == "s3":
            return 503, S3_SLOW_DOWN, XML
        if self.kind == "gdrive":
            return 403, gcs_error(403, "userRateLimitExceeded"), JSON
        return 503, gcs_error(503, "backendError"), JSON

    def denied(self):
        if self.kind == "s3":
            return 403, S3_DENIED, XML
        reason = "insufficientPermissions" if self.kind == "gdrive" else "forbidden"
        return 403, gcs_error(403, reason), JSON


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(mlbackup_s3.S3Backend, "retry_policy", FAST)
    monkeypatch.setattr(mlbackup_gdrive.GDriveBackend, "retry_policy", FAST)


@pytest.fixture(params=["s3", "gs", "gdrive"])
def store(request, tmp_path):
    spec = empty_store(request, request.param, tmp_path, folder="m")
    with FaultProxy(spec.endpoint) as proxy:
        yield Store(spec.kind, spec.url, spec.through(proxy.endpoint_url), proxy)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(100_000))
    return path


def round_trip(target, model, tmp_path, name="model.bin"):
    backup(model, target=target, name=name)
    dest = tmp_path / f"back-{name}"
    restore(name, dest, target=target)
    assert dest.read_bytes() == model.read_bytes()


#: gcsfs waits out six retries of its own (about 30 s) before an error reaches us: soak tier.
GCS_IN_SOAK = pytest.mark.parametrize(
    "store", ["s3", pytest.param("gs", marks=pytest.mark.soak), "gdrive"], indirect=True
)


@GCS_IN_SOAK
def test_unreachable_at_start_is_a_clear_transient_error(store, model, tmp_path):
    store.proxy.refusing = True
    with pytest.raises(BackendUnavailableError, match=r"could not be reached"):
        store.open()
    store.proxy.refusing = False
    round_trip(store.open(), model, tmp_path)  # and it works once the store is back


@pytest.mark.parametrize("offset", [0, 1, 8192, 99_999])
def test_connection_reset_anywhere_in_the_upload_body(store, model, tmp_path, offset):
    target = store.open()
    store.proxy.clear()
    store.proxy.reset_after(offset)  # the first request with a body is cut after `offset` bytes
    round_trip(target, model, tmp_path)
    assert store.proxy.count(status=0, injected=True) == 1


def test_throttling_below_the_budget_is_ridden_out(store, model, tmp_path):
    target = store.open()
    status, body, headers = store.throttled()
    store.proxy.answer_next(2, status, body, headers)
    round_trip(target, model, tmp_path)
    assert store.proxy.count(status=status, injected=True) == 2


@GCS_IN_SOAK
def test_throttling_above_the_budget_ends_in_a_transient_error(store, model, tmp_path):
    target = store.open()
    status, body, headers = store.throttled()
    store.proxy.answer_next(1000, status, body, headers)
    with pytest.raises(BackendUnavailableError):
        backup(model, target=target, name="model.bin")
    tries = store.proxy.count(injected=True)
    assert 2 <= tries <= 12  # bounded: our 3 tries, each at most 3 (botocore) or 6 (gcsfs)
    store.proxy.clear()
    assert open_target(store.url, **store.options).list() == []  # nothing half-committed
    round_trip(store.open(), model, tmp_path)


def test_permission_denied_is_never_retried(store, model, figures):
    target = store.open()
    store.proxy.clear()
    status, body, headers = store.denied()
    store.proxy.answer_next(1, status, body, headers)
    with pytest.raises(BackendPermissionError, match=r"(?i)denied"):
        backup(model, target=target, name="model.bin")
    assert store.proxy.count(injected=True) == 1
    assert store.proxy.log[-1].status == 403  # nothing was sent after the refusal
    figures.add("permanent errors injected")


def test_missing_bucket_is_never_retried(request, model, figures):
    server = request.getfixturevalue("s3_server")
    request.getfixturevalue("s3_bucket")
    with FaultProxy(server.endpoint_url) as proxy:
        proxy.answer_next(1, 404, S3_NO_BUCKET, XML)
        with pytest.raises(TargetMissingError, match="does not exist"):
            open_target(
                "s3://mlbackup-test/x", **server.storage_options(endpoint_url=proxy.endpoint_url)
            )
        assert len(proxy.log) == 1
    figures.add("permanent errors injected")


def test_a_silent_store_never_holds_up_the_training_loop(store, model, tmp_path):
    """The store accepts connections and never answers: submit() still returns at once."""
    target = store.open()
    store.proxy.silence_next(10_000)
    with BackgroundBackup(target) as background:
        for step in range(50):
            model.write_bytes(os.urandom(1000) + str(step).encode())
            background.submit(model, name="model.bin")
        assert background.status()["model.bin"].pending
        store.proxy.clear()
        store.proxy.release_silenced()  # the store answers again (the hung calls are reset)
        background.flush()
    restore("model.bin", tmp_path / "last.bin", target=store.open())
    assert (tmp_path / "last.bin").read_bytes() == model.read_bytes()


def test_background_mode_on_a_silent_store_returns_at_once(store, model, figures):
    """The constructor never waits on the network (it is a line of a training script): the
    outage shows in status() once the first backup has given up."""
    store.proxy.silence_next(10_000)
    # Short timeouts, so that the test sees the outage reported in seconds.
    timeouts = {"read_timeout": 1} if store.kind == "s3" else {"timeout": 1}
    config = BackupConfig(storage_options={**store.options, **timeouts, "deadline": 2})
    started = time.monotonic()
    background = BackgroundBackup(store.url, config=config, retries=0)
    future = background.submit(model, name="model.bin")
    assert time.monotonic() - started < 1.0
    figures.add("stalled calls (a silent store)")
    with pytest.raises(BackendUnavailableError):
        future.result(timeout=120)
    status = background.status()["model.bin"]
    assert status.last_error and status.failures == 1 and status.last_version is None
    store.proxy.clear()
    store.proxy.release_silenced()
    background.submit(model, name="model.bin")
    assert background.flush()["model.bin"].last_version == 1
    background.close()


@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_a_bucket_gone_after_open_is_an_error_not_nothing_to_restore(request, kind, tmp_path):
    """restore_if_missing must not start the user's run from scratch because the bucket (or
    the credential, or the store) went away: that is an error, never "no backup"."""
    server = request.getfixturevalue("s3_server" if kind == "s3" else "gcs_server")
    bucket = request.getfixturevalue("s3_bucket" if kind == "s3" else "gcs_bucket")
    with FaultProxy(server.endpoint_url) as proxy:
        target = open_target(
            f"{kind}://{bucket}/run", **server.storage_options(endpoint_url=proxy.endpoint_url)
        )
        if kind == "s3":
            proxy.answer_next(10, 404, S3_NO_BUCKET, XML)
        else:
            # Every request on the bucket (GCS still lists the project's buckets without it).
            for _ in range(10):
                proxy.answer_matching(
                    f"/b/{bucket}", 404, gcs_error(404, "notFound", "bucket does not exist"), JSON
                )
        with pytest.raises(TargetMissingError, match="bucket does not exist"):
            restore_if_missing(tmp_path / "model.bin", name="model.bin", target=target)
        with pytest.raises(TargetMissingError):
            target.versions("model.bin")


def test_drive_throttling_one_chunk_resumes_the_upload_where_drive_stopped(request, tmp_path):
    """A 429 on the second chunk of a resumable upload: the same session goes on from the
    byte Drive says it holds (a status query), not a new upload from the start."""
    drive = request.getfixturevalue("drive_api")
    key_file = request.getfixturevalue("gcs_key_file")
    with FaultProxy(drive.endpoint_url) as proxy:
        target = open_target(
            "gdrive://root/m",
            service_account_json=str(key_file),
            api_endpoint=proxy.endpoint_url,
            chunk_size=1 << 20,
        )
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(6 << 20))  # resumable: six chunks of 1 MiB
        proxy.answer_matching("upload_id=", 429, gcs_error(429, "rateLimitExceeded"), JSON, nth=2)
        backup(big, target=target, name="big.bin")
        sessions = [r for r in proxy.log if r.path.endswith("uploadType=resumable")]
        chunks = [r for r in proxy.log if "upload_id=" in r.path and not r.injected]
        assert proxy.count(injected=True) == 1
        assert len(sessions) == 1  # one upload session, resumed
        assert sum(r.body_bytes for r in chunks) <= (6 << 20) + (1 << 20)  # at most a chunk again
        restore("big.bin", tmp_path / "back.bin", target=target)
        assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
