"""Small S3 reads and writes sent straight over urllib3 (backends/mlbackup_s3/direct.py), on
moto through the fault proxy: the same bytes and the same guarantees as through s3fs; an S3
error answer raises what s3fs would raise (never asked again through s3fs), and anything else
unexpected is left to s3fs."""

from __future__ import annotations

import os
import time

import pytest
from mlbackup_s3.direct import RESUMES

from mlbackup import (
    BackendPermissionError,
    BackendUnavailableError,
    BackupStatus,
    TargetError,
    TargetMissingError,
    backup,
    open_target,
    restore,
)
from mlbackup.testing.contract import write_tree

FILES = {f"layer{i % 3}/w{i}.bin": os.urandom(3000 + i) for i in range(24)}


@pytest.fixture
def proxy(s3_proxy):
    return s3_proxy


@pytest.fixture
def target(s3_target):
    return s3_target


def _direct(log):
    return [r for r in log if r.client.startswith("python-urllib3")]


def test_small_files_go_up_and_come_back_straight(target, proxy, tmp_path):
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    puts = [r for r in proxy.log if r.method == "PUT" and "/objects/" in r.path]
    assert len(puts) == len(FILES)
    sent = [r for r in proxy.log if r.method in ("GET", "PUT")]  # HEADs and deletes: s3fs's
    assert sent and _direct(sent) == sent, "from the first request on"
    proxy.clear()
    restore("run", tmp_path / "back", target=target)
    assert {rel: (tmp_path / "back" / rel).read_bytes() for rel in FILES} == FILES
    gets = [r for r in proxy.log if "/objects/" in r.path]
    assert len(gets) == len(FILES)  # one request per file, whichever stack sent it
    assert len(_direct(gets)) == len(FILES)


def test_an_answer_that_is_no_s3_error_is_left_to_s3fs(target, proxy, tmp_path):
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    proxy.clear()
    # A 404 without an S3 error (a gateway's, not the store's) for one object's first read:
    # s3fs's client is asked, and its answer stands.
    first = sorted({e.hash for e in target.manifest("run").files})[0]
    proxy.answer_matching(f"/objects/{first}", 404)
    restore("run", tmp_path / "back", target=target)
    assert {rel: (tmp_path / "back" / rel).read_bytes() for rel in FILES} == FILES
    refused = [r for r in proxy.log if r.injected]
    assert [r.status for r in refused] == [404] and _direct(refused) == refused
    again = [r for r in proxy.log if r.path == refused[0].path and not r.injected]
    assert [(r.status, bool(_direct([r]))) for r in again] == [(206, False)], again


def test_a_busy_stores_answer_is_retried_by_the_policy_not_through_s3fs(target, proxy, tmp_path):
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    proxy.clear()
    second = sorted({e.hash for e in target.manifest("run").files})[1]
    proxy.answer_matching(f"/objects/{second}", 503, b"<Error><Code>SlowDown</Code></Error>")
    restore("run", tmp_path / "back", target=target)
    assert {rel: (tmp_path / "back" / rel).read_bytes() for rel in FILES} == FILES
    asked = [r for r in proxy.log if f"/objects/{second}" in r.path]
    assert [r.status for r in asked] == [503, 206] and _direct(asked) == asked, asked


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (403, b"<Error><Code>AccessDenied</Code></Error>", BackendPermissionError),
        (404, b"<Error><Code>NoSuchBucket</Code></Error>", TargetMissingError),
        (501, b"<Error><Code>NotImplemented</Code></Error>", TargetError),
    ],
)
def test_a_refusal_raises_the_error_it_names_after_one_request(target, proxy, status, body, error):
    proxy.clear()
    proxy.answer_next(1, status, body, {"Content-Type": "application/xml"})
    with pytest.raises(error) as raised:
        target.backend.list_dir("run")  # through the retry policy: permanent, not retried
    assert not isinstance(raised.value, BackendUnavailableError)
    assert [(r.status, r.injected) for r in proxy.log] == [(status, True)], proxy.log


def test_a_busy_stores_retry_after_is_honoured(target, proxy, caplog):
    target.backend.write_new("probe/one", b"bytes")
    proxy.clear()
    proxy.answer_next(1, 429, b"<Error><Code>SlowDown</Code></Error>", {"Retry-After": "1"})
    with caplog.at_level("INFO", logger="mlbackup"):
        assert target.backend.read_at_most("probe/one", 100) == b"bytes"
    assert "retry 1 in 1.0s" in caplog.text
    assert [r.status for r in proxy.log] == [429, 206] and _direct(proxy.log) == proxy.log


def test_a_concurrent_conditional_write_loses_as_a_taken_key(target, proxy):
    """S3's 409 ConditionalRequestConflict: another create-only write of the key is under
    way; it wins, as if it had come first (the loser commits the next version)."""
    proxy.clear()
    conflict = b"<Error><Code>ConditionalRequestConflict</Code></Error>"
    proxy.answer_next(1, 409, conflict, {"Content-Type": "application/xml"})
    with pytest.raises(FileExistsError):
        target.backend.inner.write_new("probe/raced", b"ours")
    assert [(r.status, r.injected) for r in proxy.log] == [(409, True)]


def test_a_copy_the_store_refuses_as_too_large_goes_through_s3fs(target, proxy):
    """A source above 5 GiB (InvalidRequest to one CopyObject) is copied in parts by s3fs."""
    store = target.backend.inner
    store.write_new("probe/source", b"the bytes")
    proxy.clear()
    too_large = b"<Error><Code>InvalidRequest</Code></Error>"
    proxy.answer_matching("probe/copy", 400, too_large)
    assert store.copy_object("probe/source", "probe/copy")
    assert store.read_bytes("probe/copy") == b"the bytes"
    made = [r for r in proxy.log if "probe/copy" in r.path and not r.injected]
    assert made and not _direct(made[:1]), "copied again through s3fs"


def test_a_connection_cut_mid_answer_is_retried(target, proxy, tmp_path):
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    proxy.clear()
    proxy.truncate_gets(3, path_contains="/objects/")  # three cut off after a few bytes
    restore("run", tmp_path / "back", target=target)
    assert {rel: (tmp_path / "back" / rel).read_bytes() for rel in FILES} == FILES
    cut = [r for r in proxy.log if r.injected]
    assert len(cut) == 3 and _direct(cut) == cut, cut
    for answer in cut:  # a broken connection is transient: the same call is made again
        assert [r.status for r in proxy.log if r.path == answer.path and not r.injected] == [206]


def test_no_connection_at_all_gets_the_answer_s3fs_gives(s3_server, s3_bucket, tmp_path):
    """A store that went away (its port closed): the error a caller sees through the direct
    path is the one s3fs gives a target whose calls all go through it, typed and in time."""
    from mlbackup.testing.fault_proxy import FaultProxy

    with FaultProxy(s3_server.endpoint_url) as gateway:
        options = s3_server.storage_options(
            endpoint_url=gateway.endpoint_url, connect_timeout=1, read_timeout=1, deadline=5
        )
        direct = open_target(f"s3://{s3_bucket}/gone", **options)
        through_s3fs = open_target(f"s3://{s3_bucket}/gone", **options)
        through_s3fs.backend.inner._direct.enabled = False  # every call of it through s3fs
        backup(write_tree(tmp_path / "run", FILES), target=direct, name="run")
        assert _direct(gateway.log), "the direct path is used"
        key = direct.locate(direct.manifest("run"))[0].key
    errors = []
    for target in (through_s3fs, direct):
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as caught:
            target.backend.read_at_most(key, 100_000)
        assert time.monotonic() - started < 60
        errors.append(caught.value)
    assert [type(e) for e in errors] == [type(errors[0])] * 2
    assert str(errors[1]) == str(errors[0])


def test_a_changed_small_file_and_its_commit_are_sent_straight(target, proxy, tmp_path):
    run = write_tree(tmp_path / "run", FILES)
    backup(run, target=target, name="run")
    for i in range(3):  # a few versions of one changed file first
        (run / "layer0" / "w0.bin").write_bytes(os.urandom(2000 + i))
        assert backup(run, target=target, name="run").status is BackupStatus.COPIED
    proxy.clear()
    (run / "layer0" / "w0.bin").write_bytes(b"the last one")
    backup(run, target=target, name="run")
    puts = [r for r in proxy.log if r.method == "PUT"]
    assert [r.path.split("/")[-2] for r in _direct(puts)][:2] == ["objects", "manifests"], puts
    restore("run", tmp_path / "back", target=target)
    assert (tmp_path / "back" / "layer0" / "w0.bin").read_bytes() == b"the last one"


def test_an_upload_whose_etag_does_not_match_is_an_error(target, proxy, tmp_path):
    run = write_tree(tmp_path / "run", FILES)
    backup(run, target=target, name="run")
    (run / "new.bin").write_bytes(os.urandom(5000))
    proxy.rewrite_header("/objects/", "ETag", '"00000000000000000000000000000000"', count=10)
    with pytest.raises(TargetError, match="could not be verified"):
        backup(run, target=target, name="run")
    assert target.versions("run") == [1]  # nothing committed
    proxy.clear()
    assert backup(run, target=target, name="run").version == 2


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy"])
def test_a_proxy_in_the_environment_keeps_every_request_on_s3fs(
    s3_server, s3_bucket, proxy, tmp_path, monkeypatch, variable
):
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    options = s3_server.storage_options(endpoint_url=proxy.endpoint_url)
    target = open_target(f"s3://{s3_bucket}/proxied", **options)
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    restore("run", tmp_path / "back", target=target)
    assert not _direct(proxy.log)


def test_a_store_gone_silent_fails_a_direct_read_typed_within_the_deadline(
    s3_server, s3_bucket, proxy, tmp_path
):
    # Short timeouts, so that the retries within the deadline take seconds here.
    options = s3_server.storage_options(
        endpoint_url=proxy.endpoint_url, connect_timeout=1, read_timeout=1
    )
    target = open_target(f"s3://{s3_bucket}/silent", **options)
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    assert _direct(proxy.log), "the direct path is used"
    manifest = target.manifest("run")
    proxy.clear()
    proxy.silence_next(10_000)
    started = time.monotonic()
    try:
        with pytest.raises(BackendUnavailableError) as caught:
            target.backend.read_at_most(target.locate(manifest)[0].key, 100_000)
    finally:
        proxy.release_silenced()
    assert time.monotonic() - started < 60
    assert _direct(proxy.log[:1]), "the first request silenced was a direct one"
    assert "127.0.0.1" not in str(caught.value.__cause__ or "")  # no URL in the cause either


def test_a_create_only_write_to_a_taken_key_is_refused(target, proxy):
    store = target.backend.inner
    proxy.clear()
    store.write_new("probe/taken", b"first")
    with pytest.raises(FileExistsError):
        store.write_new("probe/taken", b"second")
    assert store.read_at_most("probe/taken", 100) == b"first"
    puts = [r.status for r in proxy.log if r.method == "PUT"]
    assert puts == [200, 412] and _direct(proxy.log) == proxy.log, "refused once, straight"


def test_a_listing_goes_straight_and_names_what_s3fs_names(target, proxy, tmp_path, monkeypatch):
    import mlbackup_s3.direct

    monkeypatch.setattr(mlbackup_s3.direct, "PAGE_KEYS", 7)  # several pages per folder
    files = {**FILES, "a b&c/ü+x.txt": b"odd names", "sub/é é.bin": b"more"}
    backup(write_tree(tmp_path / "run", files), target=target, name="run")
    store = target.backend.inner
    prefixes = [".mlbackup/objects", ".mlbackup/names", "run", "run/a b&c", "run/sub", ""]
    proxy.clear()
    straight = {prefix: store.list_dir(prefix) for prefix in prefixes}
    assert {r.client.split("/")[0] for r in proxy.log} == {"python-urllib3"}
    assert len(proxy.log) > len(prefixes), "the objects took several pages"
    monkeypatch.setattr(store._direct, "enabled", False)
    assert straight == {prefix: store.list_dir(prefix) for prefix in prefixes}
    assert "ü+x.txt" in straight["run/a b&c"] and len(straight[".mlbackup/objects"]) == 26
    monkeypatch.setattr(store._direct, "enabled", True)
    proxy.clear()
    assert store.list_dir("nothing/here") == []  # an empty folder, in one request
    assert len(_direct(proxy.log)) == len(proxy.log) == 1
    proxy.answer_matching("list-type=2", 404, b"<Error><Code>NoSuchBucket</Code></Error>")
    with pytest.raises(TargetMissingError):  # as s3fs's listing would say, in one request
        store.list_dir("run")
    assert _direct(proxy.log[-1:]) and proxy.log[-1].injected


# -- large objects: one streamed GET, going on where a cut left it ---------------------------

BIG = 20 << 20  # above a whole read (4 MiB) and two of s3fs's read blocks (8 MiB each)
CUT = 5 << 20


@pytest.fixture
def big(target, proxy, tmp_path):
    """A large file backed up."""
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(BIG))
    backup(path, target=target, name="big")
    proxy.clear()
    return path


def _object_gets(log):
    return [r for r in log if r.method == "GET" and "/objects/" in r.path]


def test_a_large_file_comes_back_over_one_streamed_request(target, proxy, big, tmp_path):
    restore("big", tmp_path / "back.bin", target=target)
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    gets = _object_gets(proxy.log)
    assert [(r.status, r.range) for r in gets] == [(200, "")], gets
    assert _direct(gets) == gets


def test_a_large_download_cut_off_goes_on_from_the_byte_it_stopped_at(target, proxy, big, tmp_path):
    proxy.truncate_gets(2, CUT, reset=False, path_contains="/objects/")  # cut twice, closed
    restore("big", tmp_path / "back.bin", target=target)
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    gets = _object_gets(proxy.log)
    assert [(r.status, r.range, r.injected) for r in gets] == [
        (200, "", True),
        (206, f"bytes={CUT}-", True),
        (206, f"bytes={2 * CUT}-", False),
    ]
    assert _direct(gets) == gets


def test_a_large_download_whose_connection_is_reset_goes_on(target, proxy, big, tmp_path):
    proxy.truncate_gets(2, CUT, reset=True, path_contains="/objects/")
    restore("big", tmp_path / "back.bin", target=target)
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    gets = _object_gets(proxy.log)
    # A reset drops what the client had not read yet: each goes on from wherever it got to.
    starts = [int(r.range.removeprefix("bytes=").rstrip("-")) for r in gets[1:]]
    assert len(gets) == 3 and starts == sorted(starts), gets
    assert [r.status for r in gets] == [200, 206, 206] and not gets[-1].injected


def _rewrite_in_parts(client, bucket, key, data):
    """Put ``data`` under ``key`` again as a two-part upload: the same bytes, another ETag
    (as under SSE-KMS, or another part size)."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    half = len(data) // 2
    parts = [
        {"PartNumber": n, "ETag": client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=chunk)["ETag"]}
        for n, chunk in ((1, data[:half]), (2, data[half:]))
    ]  # fmt: skip
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


@pytest.mark.parametrize("same_bytes", [True, False], ids=["same-bytes", "other-bytes"])
def test_an_object_written_again_mid_download_is_judged_by_its_hash(
    target, proxy, big, s3_server, s3_bucket, tmp_path, same_bytes
):
    """Read on after a cut, an object put again since (another ETag) gives the rest of its
    bytes: the same bytes restore, other bytes are reported as damage, never placed."""
    location = target.locate(target.manifest("big"))[0]
    name = target.backend.inner.object_name(location.key)
    data = big.read_bytes()
    proxy.truncate_gets(1, CUT, reset=False, path_contains="/objects/")
    replacing = iter([lambda: _rewrite_in_parts(
        s3_server.client(), s3_bucket, name, data if same_bytes else os.urandom(BIG))])  # fmt: skip

    class Out:  # rewrites the object once the first bytes are in, as another writer might
        def __init__(self):
            self.parts = []

        def write(self, chunk):
            self.parts.append(bytes(chunk))
            next(replacing, lambda: None)()

    out = Out()
    problem = target.copy_verified(location, out, target.manifest("big").hash_name)
    if same_bytes:
        assert problem is None and b"".join(out.parts) == data
    else:
        assert problem is not None and "does not match" in problem
    resumed = _object_gets(proxy.log)[1:]
    going_on = f"bytes={CUT}-"
    assert [(r.status, r.range) for r in resumed] == [(412, going_on), (206, going_on)]


@pytest.mark.parametrize("status", [503, 429])
def test_a_busy_answer_to_going_on_is_a_failed_try(target, proxy, big, tmp_path, status):
    proxy.truncate_gets(1, CUT, reset=False, path_contains="/objects/")
    proxy.answer_matching("/objects/", status, b"<Error><Code>SlowDown</Code></Error>", nth=2)
    restore("big", tmp_path / "back.bin", target=target)
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    gets = _object_gets(proxy.log)
    assert [r.status for r in gets] == [200, status, 206], gets


def test_a_refusal_while_going_on_is_the_error_it_names(target, proxy, big, tmp_path):
    proxy.truncate_gets(1, CUT, reset=False, path_contains="/objects/")
    denied = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
    proxy.answer_matching("/objects/", 403, denied, nth=2)
    with pytest.raises(BackendPermissionError, match="AccessDenied"):
        restore("big", tmp_path / "back.bin", target=target)
    assert not (tmp_path / "back.bin").exists()


DEADLINE = 2.5


def test_a_store_gone_silent_mid_download_fails_typed_within_the_deadline(
    s3_server, s3_bucket, proxy, tmp_path
):
    options = s3_server.storage_options(
        endpoint_url=proxy.endpoint_url, connect_timeout=1, read_timeout=1, deadline=DEADLINE
    )
    target = open_target(f"s3://{s3_bucket}/silent", **options)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(BIG))
    backup(path, target=target, name="big")
    key = target.locate(target.manifest("big"))[0].key
    proxy.clear()
    proxy.truncate_gets(1, CUT, reset=False, path_contains="/objects/")
    with target.backend.open_read(key) as stream:
        proxy.silence_next(10_000)  # every request from here on: no answer at all
        started = time.monotonic()
        try:
            with pytest.raises(BackendUnavailableError, match=r"\(TimeoutError\)"):
                stream.read()
        finally:
            proxy.release_silenced()
    # Tries go on only while one more could end within the deadline of the last byte got.
    assert time.monotonic() - started < DEADLINE + 1
    resumed = [r for r in _object_gets(proxy.log) if r.range]
    assert resumed and _direct(resumed) == resumed, proxy.log
    assert len(resumed) < RESUMES, "the deadline, not the count of tries, ended it"


# -- the browsable tree: server-side copies ------------------------------------------------


def _copies(log):
    """The browsable tree's CopyObject requests: bodiless PUTs to a plain key."""
    puts = [r for r in log if r.method == "PUT" and not r.body_bytes]
    return [r for r in puts if "/.mlbackup/" not in r.path]


def test_the_browsable_tree_is_copied_straight(target, proxy, tmp_path):
    backup(write_tree(tmp_path / "warm", {"a.bin": b"warm"}), target=target, name="warm")
    proxy.clear()
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    copies = _copies(proxy.log)
    assert len(copies) == len(FILES) and _direct(copies) == copies, copies
    store = target.backend.inner
    assert {rel: store.read_bytes(f"run/{rel}") for rel in FILES} == FILES


def test_a_copy_answered_200_with_an_error_is_made_again_through_s3fs(target, proxy, tmp_path):
    backup(write_tree(tmp_path / "warm", {"a.bin": b"warm"}), target=target, name="warm")
    proxy.clear()
    # S3 may answer a copy that failed with a 200 and an error body.
    error = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
    proxy.answer_matching("/run/layer0/w0.bin", 200, error)
    backup(write_tree(tmp_path / "run", FILES), target=target, name="run")
    assert target.backend.inner.read_bytes("run/layer0/w0.bin") == FILES["layer0/w0.bin"]
    tries = [r for r in _copies(proxy.log) if r.path.endswith("/run/layer0/w0.bin")]
    assert [(r.injected, bool(_direct([r]))) for r in tries] == [(True, True), (False, False)]


# -- the stream's edge cases, against a stand-in for urllib3's answer -------------------------


class _Answer:
    """urllib3's streamed answer as the stream uses it; ``cut`` raises after the bytes, and
    ``cut=None`` ends early without an error (urllib3 1.26 does not count the length)."""

    def __init__(self, data, size, status=200, cut=None, start=0):
        self.status, self._data, self._cut = status, bytearray(data), cut
        self.headers = {"ETag": '"e"', "Content-Length": str(size)}
        if status == 206:
            self.headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        self.closed = False

    def read(self, amount):
        assert self.status >= 400, "only an error's body is read"
        return b""

    def readinto(self, buffer):
        if not self._data:
            if self._cut is not None:
                raise self._cut
            return 0
        got = min(len(buffer), len(self._data))
        buffer[:got] = self._data[:got]
        del self._data[:got]
        return got

    def close(self):
        self.closed = True

    def release_conn(self):
        pass


class _Requests:
    def __init__(self, *answers):
        self.answers, self.asked = list(answers), []

    def _request(self, method, name, body, headers, **options):
        self.asked.append(headers)
        return self.answers.pop(0)


def _stream(first, *rest):
    from mlbackup_s3.direct import _ObjectStream

    requests = _Requests(*rest)
    return _ObjectStream(requests, "k", first, deadline=30), requests


def test_an_answer_that_ends_early_without_an_error_goes_on(monkeypatch):
    monkeypatch.setattr("mlbackup_s3.direct.RESUME_DELAY", 0)
    stream, requests = _stream(_Answer(b"abc", 6), _Answer(b"def", 6, 206, start=3))
    assert stream.read() == b"abcdef"
    assert requests.asked == [{"Range": "bytes=3-", "If-Match": '"e"'}]


def test_a_cut_after_the_last_byte_asks_for_nothing_more():
    stream, requests = _stream(_Answer(b"abc", 3, cut=ConnectionResetError()))
    assert stream.read() == b"abc" and requests.asked == []


def test_a_read_of_nothing_asks_for_nothing_and_a_closed_stream_reads_nothing():
    first = _Answer(b"abc", 3)
    stream, requests = _stream(first)
    assert stream.read(0) == b"" and requests.asked == []
    stream.close()
    assert first.closed
    with pytest.raises(ValueError):
        stream.read()


@pytest.mark.parametrize("status", [206, 200], ids=["another-range", "whole-object"])
def test_a_range_other_than_asked_is_not_spliced_in(monkeypatch, status):
    monkeypatch.setattr("mlbackup_s3.direct.RESUME_DELAY", 0)
    # The store sent the object from its start (a 200: the Range ignored; its body, which may
    # be the whole object, is not read: the stand-in has no read() to call).
    wrong = _Answer(b"xyz", 6, status, start=0)
    stream, _ = _stream(_Answer(b"abc", 6, cut=ConnectionResetError()), wrong)
    with pytest.raises(OSError, match="could not go on"):
        stream.read()


def test_a_closed_target_drops_its_connections_and_says_so(target, proxy):
    target.backend.write_new("probe/one", b"bytes")
    target.close()
    proxy.clear()
    with pytest.raises(TargetError, match="closed; open the target again"):
        target.backend.read_at_most("probe/one", 100)
    assert list(proxy.log) == [], "nothing sent once closed"


def test_reads_through_s3fs_share_one_read_ahead_budget(target):
    """A restore read through s3fs (anonymous access, a proxy) reads ahead per open object
    at most its share of one budget: with 32 workers, 4 MiB each, 128 MiB in all."""
    from mlbackup.bucket_backend import READ_AHEAD_BUDGET

    store = target.backend.inner
    store.write_new("probe/object", b"x" * 1000)
    store._direct.enabled = False  # as with anonymous access: every read through s3fs
    with store.open_read("probe/object") as opened:
        assert opened.read() == b"x" * 1000
        assert opened.blocksize * store.max_workers <= READ_AHEAD_BUDGET
        assert opened.blocksize == 4 << 20
