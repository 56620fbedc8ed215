"""An appended file on S3, GCS and a local folder: the old bytes are reused inside the store
(S3's UploadPartCopy, GCS's compose, the kernel's copy_file_range) and only the new ones go up;
every version stays restorable byte for byte."""

import os

import pytest

from mlbackup import backup, open_target, restore
from mlbackup.layout import object_key, tmp_prefix
from mlbackup.testing.fault_proxy import S3_NOT_IMPLEMENTED, FaultProxy, gcs_error

MiB = 1 << 20


@pytest.fixture
def s3(s3_server, s3_bucket):
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = s3_server.storage_options(endpoint_url=proxy.endpoint_url, part_size=5 * MiB)
        yield proxy, open_target(f"s3://{s3_bucket}/append", **options)


@pytest.fixture
def gcs(gcs_server, gcs_bucket):
    with FaultProxy(gcs_server.endpoint_url) as proxy:
        options = gcs_server.storage_options(endpoint_url=proxy.endpoint_url, part_size=4 * MiB)
        yield proxy, open_target(f"gs://{gcs_bucket}/append", **options)


def uploaded(proxy):
    return sum(r.body_bytes for r in proxy.log if r.method in ("PUT", "POST"))


@pytest.mark.parametrize("store", ["s3", "gcs"])
def test_only_the_appended_bytes_go_up(store, request, tmp_path):
    proxy, target = request.getfixturevalue(store)
    log = tmp_path / "weights.bin"
    first = os.urandom(12 * MiB)
    log.write_bytes(first)
    backup(log, target=target, name="weights.bin")
    added = os.urandom(MiB + 12345)
    with open(log, "ab") as f:
        f.write(added)
    proxy.clear()
    result = backup(log, target=target, name="weights.bin")
    assert result.version == 2 and result.bytes_sent == len(added)
    assert uploaded(proxy) < 2 * MiB  # the 12 MiB already there were not sent again
    if store == "s3":
        parts = [r for r in proxy.log if r.method == "PUT" and "partNumber" in r.path]
        assert len(parts) == 2  # the old 12 MiB copied as one part, then the new bytes
    else:
        assert len([r for r in proxy.log if "/compose" in r.path]) == 1
    restore("weights.bin", tmp_path / "v2", target=target)
    assert (tmp_path / "v2").read_bytes() == first + added
    restore("weights.bin", tmp_path / "v1", target=target, version=1)
    assert (tmp_path / "v1").read_bytes() == first
    target.verify("weights.bin")
    assert target.backend.list_dir(tmp_prefix()) == []  # no temp object left behind


@pytest.mark.slow
def test_a_file_changed_inside_is_sent_whole(s3, tmp_path):
    proxy, target = s3
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(12 * MiB))
    backup(path, target=target, name="weights.bin")
    with open(path, "r+b") as f:
        f.seek(6 * MiB)
        f.write(b"changed")
        f.seek(0, os.SEEK_END)
        f.write(b"and longer")
    proxy.clear()
    backup(path, target=target, name="weights.bin")
    assert uploaded(proxy) >= 12 * MiB
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == path.read_bytes()


def backed_up_then_appended(target, tmp_path):
    """A 12 MiB file backed up as version 1, then 1 MiB appended to it."""
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(12 * MiB))
    backup(path, target=target, name="weights.bin")
    with open(path, "ab") as f:
        f.write(os.urandom(MiB))
    return path


def test_a_copy_source_gone_falls_back_to_sending_everything(
    s3, tmp_path, s3_server, s3_bucket, monkeypatch
):
    proxy, target = s3
    path = backed_up_then_appended(target, tmp_path)
    backend_class = type(target.backend.inner)
    extend = backend_class.put_object_extending
    bases = []

    def base_removed_first(self, local_path, key, digest, base, base_size):
        # A person (or a lifecycle rule) removes the old bytes just before the copy.
        s3_server.client().delete_object(Bucket=s3_bucket, Key=f"append/{base}")
        bases.append(base)
        return extend(self, local_path, key, digest, base, base_size)

    monkeypatch.setattr(backend_class, "put_object_extending", base_removed_first)
    proxy.clear()
    backup(path, target=target, name="weights.bin")
    assert bases, "the append path was not taken"
    assert uploaded(proxy) >= 13 * MiB
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == path.read_bytes()


def test_a_file_that_shrinks_during_the_copy_is_read_again_whole(s3, tmp_path, monkeypatch):
    _, target = s3
    path = backed_up_then_appended(target, tmp_path)
    backend_class = type(target.backend.inner)
    copy_parts = backend_class._copy_parts

    def shrinks_first(self, session, local_path, *args):
        with open(local_path, "r+b") as f:  # a writer truncates it while the copy runs
            f.truncate(6 * MiB)
        return copy_parts(self, session, local_path, *args)

    monkeypatch.setattr(backend_class, "_copy_parts", shrinks_first)
    result = backup(path, target=target, name="weights.bin")
    assert result.version == 2
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == path.read_bytes()
    assert path.stat().st_size == 6 * MiB
    assert not target.backend.inner.fs.call_s3(
        "list_multipart_uploads", Bucket=target.backend.inner.bucket
    ).get("Uploads")  # the abandoned copy was aborted


def test_a_server_without_part_copy_gets_appended_files_whole(s3, tmp_path, caplog):
    proxy, target = s3
    path = tmp_path / "weights.bin"
    first = os.urandom(6 * MiB)
    path.write_bytes(first)
    backup(path, target=target, name="weights.bin")
    proxy.refuse_feature("x-amz-copy-source", "partNumber=", 501, S3_NOT_IMPLEMENTED)
    refused = []
    for version, tail in ((2, b"grown"), (3, b"grown again")):
        with open(path, "ab") as f:
            f.write(tail)
        proxy.log.clear()
        with caplog.at_level("INFO", logger="mlbackup"):
            result = backup(path, target=target, name="weights.bin")
        assert result.version == version and result.bytes_sent == path.stat().st_size
        refused.append(proxy.count(status=501))
    # Asked once and not retried (a missing feature is no passing fault), then not again.
    assert refused == [1, 0]
    assert "does not copy parts" in caplog.text
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == first + b"grown" + b"grown again"
    restore("weights.bin", tmp_path / "v1", target=target, version=1)
    assert (tmp_path / "v1").read_bytes() == first


def test_gcs_a_composed_object_that_is_not_the_file_is_replaced_by_the_whole_file(gcs, tmp_path):
    proxy, target = gcs
    path = backed_up_then_appended(target, tmp_path)
    proxy.clear()
    # The store answers the compose with another object's size and crc32c.
    proxy.refuse_feature("content-type", "/compose", 200, b'{"size": "1", "crc32c": "AAAAAA=="}')
    result = backup(path, target=target, name="weights.bin")
    assert proxy.count(injected=True) == 1  # the compose was asked for
    assert result.bytes_sent == 13 * MiB
    assert uploaded(proxy) >= 13 * MiB
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == path.read_bytes()


def test_gcs_a_compose_refused_sends_the_whole_file(gcs, tmp_path):
    proxy, target = gcs
    path = backed_up_then_appended(target, tmp_path)
    proxy.clear()
    # What GCS answers once a composite object would exceed 1,024 components.
    refusal = gcs_error(400, "invalid", "The number of source components would exceed 1024")
    proxy.refuse_feature("content-type", "/compose", 400, refusal)
    result = backup(path, target=target, name="weights.bin")
    assert proxy.count(status=400, injected=True) == 1  # asked once, not retried
    assert result.bytes_sent == 13 * MiB
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == path.read_bytes()


def test_a_local_folder_copies_the_old_bytes_inside_the_disk(tmp_path):
    """On a local folder (or the Drive mount) the old bytes are copied from the previous
    object by the kernel (``copy_file_range``: a reflink where the file system has them),
    and only the appended ones are written from the file."""
    target = open_target(tmp_path / "target")
    log = tmp_path / "events.bin"
    first = os.urandom(3 * MiB)
    log.write_bytes(first)
    backup(log, target=target, name="events.bin")
    added = os.urandom(54321)
    with open(log, "ab") as f:
        f.write(added)
    result = backup(log, target=target, name="events.bin")
    assert result.version == 2 and result.bytes_sent == len(added)
    restore("events.bin", tmp_path / "v2", target=target)
    assert (tmp_path / "v2").read_bytes() == first + added
    restore("events.bin", tmp_path / "v1", target=target, version=1)
    assert (tmp_path / "v1").read_bytes() == first
    assert target.verify("events.bin").bytes_checked == len(first + added)
    assert [p for p in (tmp_path / "target" / tmp_prefix()).rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("store", ["s3", "gcs", "file"])
def test_an_appended_file_whose_old_object_vanished_is_sent_whole(store, request, tmp_path):
    """Someone (a lifecycle rule, a person tidying up) deleted the object of the previous
    version: the file grows, and the next backup sends it whole and commits."""
    if store == "file":
        target = open_target(tmp_path / "target")
    else:
        _proxy, target = request.getfixturevalue(store)
    path = backed_up_then_appended(target, tmp_path)
    (old,) = target.manifest("weights.bin").files
    target.backend.delete(object_key(old.hash))
    result = backup(path, target=target, name="weights.bin")
    assert result.version == 2 and result.bytes_sent == path.stat().st_size
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == path.read_bytes()


def test_where_the_kernel_cannot_copy_the_old_bytes_go_through_us(tmp_path, monkeypatch):
    """A FUSE mount (the Drive mount) or two file systems: copy_file_range fails with EXDEV."""
    import errno

    def cannot(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    target = open_target(tmp_path / "target")
    path = backed_up_then_appended(target, tmp_path)
    monkeypatch.setattr(os, "copy_file_range", cannot)
    assert backup(path, target=target, name="weights.bin").bytes_sent == MiB
    restore("weights.bin", tmp_path / "back", target=target)
    assert (tmp_path / "back").read_bytes() == path.read_bytes()
