"""S3 and GCS beyond the contract suite: damage done behind our back, part-wise uploads,
fast and clear failures for bad credentials and missing buckets, secrets kept out of sight.

Every test talks to a real-protocol server on loopback (moto, the GCS emulator, an OAuth token
endpoint) through s3fs/gcsfs; nothing of ours is mocked, except where a test says so.
"""

import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest
from canary import CANARY_SECRET, CANARY_TOKEN, assert_no_canary

import mlbackup.bucket_backend
from mlbackup import (
    BackendPermissionError,
    IntegrityError,
    SourceError,
    TargetError,
    TargetMissingError,
    backup,
    open_target,
    restore,
)
from mlbackup.layout import manifest_key
from mlbackup.testing.contract import stored_key, tree_snapshot
from mlbackup.testing.fault_proxy import FaultProxy

MiB = 1 << 20


class S3Store:
    scheme = "s3"

    def __init__(self, server, bucket):
        self.server, self.bucket = server, bucket
        self.client = server.client()

    def options(self, **extra):
        return self.server.storage_options(secret=CANARY_SECRET, **extra)

    def replace_bytes(self, name, data):
        self.client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def delete(self, name):
        self.client.delete_object(Bucket=self.bucket, Key=name)

    def read(self, name):
        return self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def names(self):
        listing = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))


class GCSStore:
    scheme = "gs"

    def __init__(self, server, bucket, key_file):
        self.server, self.bucket, self.key_file = server, bucket, key_file

    def options(self, **extra):
        return {
            "endpoint_url": self.server.endpoint_url,
            "token": str(self.key_file),
            "project": "test",
            **extra,
        }

    def replace_bytes(self, name, data):
        # Under the API: the object's recorded md5 stays, as with bit rot.
        self.server.replace_object_bytes(self.bucket, name, data)

    def delete(self, name):
        self.server._storage.delete_file(self.bucket, name)

    def read(self, name):
        return self.server.read_object(self.bucket, name)

    def names(self):
        return sorted(self.server._storage.objects.get(self.bucket, {}))


@pytest.fixture
def s3_store(s3_server, s3_bucket):
    return S3Store(s3_server, s3_bucket)


@pytest.fixture
def gcs_store(gcs_server, gcs_bucket, gcs_key_file, google_token_server):
    google_token_server.access_token = CANARY_TOKEN
    return GCSStore(gcs_server, gcs_bucket, gcs_key_file)


@pytest.fixture(params=["s3", "gs"])
def store(request):
    return request.getfixturevalue({"s3": "s3_store", "gs": "gcs_store"}[request.param])


@pytest.fixture
def checkpoint(tmp_path):
    root = tmp_path / "ckpt"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(200_000))
    (root / "sub" / "config.json").write_text('{"lr": 0.1}')
    return root


def test_changed_bytes_in_the_bucket_are_named(store, checkpoint, tmp_path):
    target = open_target(f"{store.scheme}://{store.bucket}/run", **store.options())
    backup(checkpoint, target=target, name="ckpt")
    key = stored_key(target, "ckpt", "weights.bin")
    store.replace_bytes(f"run/{key}", b"X" * 200_000)  # same size, other bytes
    with pytest.raises(IntegrityError, match=r"weights\.bin") as caught:
        target.verify("ckpt")
    assert len(caught.value.problems) == 1
    dest = tmp_path / "out"
    with pytest.raises(IntegrityError, match=r"weights\.bin"):
        restore("ckpt", dest, target=target)
    assert not dest.exists()


def test_deleted_object_in_the_bucket_is_named(store, checkpoint, tmp_path):
    target = open_target(f"{store.scheme}://{store.bucket}/run", **store.options())
    backup(checkpoint, target=target, name="ckpt")
    store.delete(f"run/{stored_key(target, 'ckpt', 'sub/config.json')}")
    with pytest.raises(IntegrityError, match=r"sub/config\.json: missing"):
        target.verify("ckpt")
    with pytest.raises(IntegrityError, match=r"sub/config\.json"):
        restore("ckpt", tmp_path / "out", target=target)
    assert not (tmp_path / "out").exists()


def test_missing_bucket_fails_fast_and_says_how_to_fix(store):
    started = time.monotonic()
    with pytest.raises(TargetMissingError) as caught:
        open_target(f"{store.scheme}://no-such-bucket/run", **store.options())
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "no-such-bucket" in message and "does not exist" in message and "create it" in message
    assert_no_canary(message)


def test_an_endpoint_that_is_not_the_store_is_named_not_a_missing_bucket(store):
    """A mistyped endpoint_url that reaches some other web server, answering 404 to all."""
    with FaultProxy(store.server.endpoint_url) as proxy:
        proxy.answer_next(50, 404, b"<html><body>Not Found</body></html>")
        with pytest.raises(TargetError) as caught:
            open_target(
                f"{store.scheme}://{store.bucket}/run",
                **store.options(endpoint_url=proxy.endpoint_url),
            )
    message = str(caught.value)
    assert not isinstance(caught.value, TargetMissingError) and "create it" not in message
    assert "check endpoint_url" in message and "answered 404" in message
    assert_no_canary(message)


def test_s3_wrong_key_or_secret_fail_fast(s3_store, checkpoint):
    key, secret = s3_store.server.create_access_key()
    url = f"s3://{s3_store.bucket}/run"
    endpoint = s3_store.server.endpoint_url
    with s3_store.server.requiring_signatures():
        for options, code in [
            ({"key": "AKIANOSUCHKEY", "secret": CANARY_SECRET}, "InvalidAccessKeyId"),
            ({"key": key, "secret": CANARY_SECRET}, "SignatureDoesNotMatch"),
        ]:
            started = time.monotonic()
            with pytest.raises(BackendPermissionError) as caught:
                open_target(url, endpoint_url=endpoint, **options)
            assert time.monotonic() - started < 5
            message = str(caught.value)
            assert code in message and "the key/secret options" in message
            assert "fix the key and secret" in message and "s3://mlbackup-test/run" in message
            assert_no_canary(message)
            assert_no_canary(repr(caught.value))
        # The right pair works while signatures are checked.
        target = open_target(url, endpoint_url=endpoint, key=key, secret=secret)
        assert backup(checkpoint, target=target, name="ckpt").files_sent == 2


def test_gcs_rejected_key_fails_fast(gcs_store, google_token_server):
    grants_before = google_token_server.grants
    with google_token_server.rejecting():
        started = time.monotonic()
        with pytest.raises(BackendPermissionError) as caught:
            open_target(f"gs://{gcs_store.bucket}/run", **gcs_store.options())
        assert time.monotonic() - started < 5
    assert google_token_server.grants - grants_before == 1  # asked once, not retried
    message = str(caught.value)
    assert "Google rejected key file" in message and "service account" in message
    assert "invalid_grant" in message and "create a new key" in message


def test_gcs_without_any_credentials_says_how_to_log_in(
    gcs_server, gcs_bucket, monkeypatch, tmp_path
):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud login either
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # not on a Google VM
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    with pytest.raises(BackendPermissionError, match="authenticate_user"):
        open_target(f"gs://{gcs_bucket}/run", endpoint_url=gcs_server.endpoint_url)


@pytest.mark.slow
def test_s3_large_file_goes_up_in_verified_parts(s3_store, tmp_path):
    data = os.urandom(12 * MiB + 5)
    big = tmp_path / "model.safetensors"
    big.write_bytes(data)
    target = open_target(f"s3://{s3_store.bucket}/run", **s3_store.options(part_size=5 * MiB))
    result = backup(big, target=target, name="model.safetensors")
    assert result.bytes_sent == len(data)
    key = f"run/{stored_key(target, 'model.safetensors', '')}"
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    restore("model.safetensors", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == data
    assert target.manifest("model.safetensors").files[0].hash == hashlib.md5(data).hexdigest()


def test_gcs_large_file_goes_up_resumably(gcs_store, tmp_path):
    data = os.urandom(MiB + 3)
    big = tmp_path / "model.bin"
    big.write_bytes(data)
    options = gcs_store.options(part_size=256 << 10)
    target = open_target(f"gs://{gcs_store.bucket}/run", **options)
    backup(big, target=target, name="model.bin")
    assert gcs_store.read("run/model.bin") == data
    restore("model.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == data


def _failing_after_first_part(real_read_parts):
    # The one stand-in here: the local disk failing mid-file (the reader reports an EIO as
    # a SourceError), so the upload dies after its first part reached the real server.
    def read_parts(budget, path, part_size, hasher, **kwargs):
        parts = real_read_parts(budget, path, part_size, hasher, **kwargs)
        yield next(parts)
        raise SourceError(f"could not read {path}: Input/output error")

    return read_parts


@pytest.mark.slow
def test_s3_failed_multipart_upload_is_aborted_and_old_data_stays(s3_store, tmp_path, monkeypatch):
    big = tmp_path / "model.bin"
    big.write_bytes(os.urandom(11 * MiB))
    target = open_target(f"s3://{s3_store.bucket}/run", **s3_store.options(part_size=5 * MiB))
    backup(big, target=target, name="model.bin")
    first = big.read_bytes()
    big.write_bytes(os.urandom(11 * MiB))
    reader = _failing_after_first_part(mlbackup.bucket_backend.read_parts_reusing)
    monkeypatch.setattr(mlbackup.bucket_backend, "read_parts_reusing", reader)
    with pytest.raises(SourceError, match="Input/output error"):
        backup(big, target=target, name="model.bin")
    uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []  # aborted, nothing left billed
    # No half object anywhere: version 1's bytes were moved aside before the upload began.
    assert all(len(s3_store.read(name)) != 5 * MiB for name in s3_store.names())
    assert target.versions("model.bin") == [1]
    restore("model.bin", tmp_path / "v1", target=target)
    assert (tmp_path / "v1").read_bytes() == first


def test_gcs_failed_resumable_upload_leaves_no_object(gcs_store, tmp_path, monkeypatch):
    big = tmp_path / "model.bin"
    big.write_bytes(os.urandom(MiB))
    target = open_target(f"gs://{gcs_store.bucket}/run", **gcs_store.options(part_size=256 << 10))
    reader = _failing_after_first_part(mlbackup.bucket_backend.read_parts_reusing)
    monkeypatch.setattr(mlbackup.bucket_backend, "read_parts_reusing", reader)
    with pytest.raises(SourceError, match="Input/output error"):
        backup(big, target=target, name="model.bin")
    assert gcs_store.names() == []


def test_secrets_stay_out_of_reprs_pickles_and_manifests(store, checkpoint):
    target = open_target(f"{store.scheme}://{store.bucket}/run", **store.options())
    backup(checkpoint, target=target, name="ckpt")
    for text in (repr(target), repr(target.backend), str(target.url), target.backend.where):
        assert_no_canary(text)
    with pytest.raises(TypeError, match="cannot be pickled") as caught:
        pickle.dumps(target)
    assert_no_canary(str(caught.value))
    for name in store.names():
        assert_no_canary(store.read(name).decode("latin-1"))
    assert json.loads(store.read("run/" + manifest_key("ckpt", 1)))["files"]


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "mlbackup", *args], capture_output=True, text=True, timeout=120
    )


def _cli_options(store):
    pairs = []
    for key, value in store.options().items():
        pairs += ["-o", f"{key}={value}"]
    return pairs


@pytest.mark.slow
def test_cli_against_the_store(store, checkpoint, tmp_path):
    url = f"{store.scheme}://{store.bucket}/cli"
    options = _cli_options(store)
    done = _cli("backup", str(checkpoint), "--to", url, *options, "--name", "ckpt", "--debug")
    assert done.returncode == 0, done.stderr
    assert "ckpt: copied, version 1, 2/2 files" in done.stdout
    listing = _cli("ls", "--from", url, *options, "--json")
    assert [b["name"] for b in json.loads(listing.stdout)["backups"]] == ["ckpt"]
    assert _cli("verify", "ckpt", "--from", url, *options).returncode == 0
    dest = tmp_path / "restored"
    restored = _cli("restore", "ckpt", "--from", url, *options, "--to", str(dest))
    assert restored.returncode == 0, restored.stderr
    assert tree_snapshot(dest) == tree_snapshot(checkpoint)
    missing = _cli("ls", "--from", f"{store.scheme}://no-such-bucket/x", *options)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    for output in (done, listing, restored, missing):
        assert_no_canary(output.stdout + output.stderr)  # --debug logging included


def test_unknown_and_mistyped_options_are_named(s3_server, s3_bucket):
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) bucket_region.*valid options:.*endpoint_url"
    ):
        open_target(f"s3://{s3_bucket}/x", bucket_region="eu")
    with pytest.raises(ValueError, match="'anon' of S3Backend must be true/false"):
        open_target(f"s3://{s3_bucket}/x", anon="maybe")
    with pytest.raises(ValueError, match=r"part_size 1024 is below S3.s minimum"):
        open_target(f"s3://{s3_bucket}/x", part_size="1024", **s3_server.storage_options())
    with pytest.raises(ValueError, match="not a valid bucket name"):
        open_target("s3://Bad_Bucket/x")
    with pytest.raises(ValueError, match="multiple of 256 KiB"):
        open_target("gs://bucket/x", token="anon", part_size=1000)


def test_s3_session_token_stays_out_of_debug_logs(s3_server, s3_bucket, checkpoint, caplog):
    # botocore logs request headers at DEBUG; the session token travels in one of them.
    options = s3_server.storage_options(secret=CANARY_SECRET, token=CANARY_TOKEN)
    target = open_target(f"s3://{s3_bucket}/run", **options)
    backup(checkpoint, target=target, name="ckpt")
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG was on
    # The autouse fixture scans every record for CANARY_TOKEN after this test.


def test_no_browsable_tree_when_asked_for_none(store, checkpoint, tmp_path):
    target = open_target(f"{store.scheme}://{store.bucket}/run", **store.options(), browsable=False)
    backup(checkpoint, target=target, name="ckpt")
    assert target.backend.info("ckpt/weights.bin") is None  # no copy for the console
    restore("ckpt", tmp_path / "out", target=target)
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (
        checkpoint / "weights.bin"
    ).read_bytes()


def test_the_s3_test_server_lets_one_of_two_racing_creators_win(s3_server, s3_bucket, monkeypatch):
    """As S3 does: of two create-only PUTs of one key at once, exactly one succeeds and the key
    holds its bytes. moto alone checks, then writes: here the first creator pauses between
    its check and its write until the second has checked (or 2 s, when the server serialises
    them), which let both succeed before the server made the pair atomic."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError
    from moto.s3.models import S3Backend

    key = "race/1.json"
    writing, second_checked = threading.Event(), threading.Event()
    put_object, get_object = S3Backend.put_object, S3Backend.get_object

    def pausing_put(self, bucket, name, *args, **kwargs):
        if name == key and not writing.is_set():
            writing.set()
            second_checked.wait(timeout=2)
        return put_object(self, bucket, name, *args, **kwargs)

    def noting_get(self, bucket, name, *args, **kwargs):
        if name == key and writing.is_set():
            second_checked.set()
        return get_object(self, bucket, name, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", pausing_put)
    monkeypatch.setattr(S3Backend, "get_object", noting_get)

    def create(i):
        if i == 1:
            writing.wait(timeout=30)  # the first creator is between its check and its write
        try:
            s3_server.client().put_object(
                Bucket=s3_bucket, Key=key, Body=b"%d" % i, IfNoneMatch="*"
            )
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 412
            return None
        return i

    with ThreadPoolExecutor(2) as pool:
        winners = [i for i in pool.map(create, range(2)) if i is not None]
    monkeypatch.undo()
    assert winners == [0]
    assert s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"0"
