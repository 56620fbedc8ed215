"""Transient faults between s3fs/gcsfs and the server: retried, and the backup completes; a
permanent one is not retried; and how many requests (round trips) a run makes.

A FaultProxy sits between the client library and the real-protocol test server and answers or
cuts chosen requests as an overloaded or flaky store would, and logs every request.
"""

import json
import os
import time

import pytest

from mlbackup import (
    BackendUnavailableError,
    BackupStatus,
    TargetError,
    backup,
    open_target,
    restore,
)
from mlbackup.target import BackupTarget
from mlbackup.testing.contract import write_tree
from mlbackup.testing.fault_proxy import (
    S3_NOT_IMPLEMENTED,
    S3_SLOW_DOWN,
    FaultProxy,
    gcs_error,
)


@pytest.fixture
def gcs_proxy(gcs_server, gcs_bucket):
    with FaultProxy(gcs_server.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def gcs_target(gcs_server, gcs_bucket, gcs_proxy):
    options = gcs_server.storage_options(endpoint_url=gcs_proxy.endpoint_url)
    return open_target(f"gs://{gcs_bucket}/run", **options)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(100_000))
    return path


def _round_trip(target, model, tmp_path):
    result = backup(model, target=target, name="model.bin")
    restore("model.bin", tmp_path / "back.bin", target=target)
    assert (tmp_path / "back.bin").read_bytes() == model.read_bytes()
    return result


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (503, S3_SLOW_DOWN, {"Content-Type": "application/xml"}),
        (500, b"", {}),
        (429, b"", {"Retry-After": "1"}),
    ],
)
def test_s3_burst_below_the_retry_budget_is_absorbed(
    s3_target, s3_proxy, model, tmp_path, status, body, headers
):
    s3_proxy.answer_next(2, status, body, headers)
    _round_trip(s3_target, model, tmp_path)
    assert s3_proxy.count(status=status, injected=True) == 2
    assert s3_proxy.count(injected=False) > 0  # then the real server answered


def test_s3_a_request_the_server_does_not_implement_is_not_retried(s3_target, s3_proxy, model):
    s3_proxy.refuse_writes(501, S3_NOT_IMPLEMENTED, {"Content-Type": "application/xml"})
    with pytest.raises(TargetError, match="does not implement the request") as caught:
        backup(model, target=s3_target, name="model.bin")
    assert not isinstance(caught.value, BackendUnavailableError)
    assert s3_proxy.count(status=501, injected=True) == 1


def test_s3_connection_reset_mid_upload_is_retried(s3_target, s3_proxy, model, tmp_path):
    s3_proxy.reset_after(50_000)  # half of the body, then RST
    _round_trip(s3_target, model, tmp_path)
    assert s3_proxy.count(status=0, injected=True) == 1


def test_s3_persistent_outage_is_a_clear_transient_error(s3_target, s3_proxy, model):
    s3_proxy.answer_next(1000, 503, S3_SLOW_DOWN, {"Content-Type": "application/xml"})
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="SlowDown") as caught:
        backup(model, target=s3_target, name="model.bin")
    elapsed = time.monotonic() - started
    attempts = s3_proxy.count(injected=True)
    assert 2 < attempts <= 12, attempts  # retried, and the retries are bounded
    assert elapsed < 60, elapsed
    assert "background backups retry by themselves" in str(caught.value)
    s3_proxy.clear()  # the outage ends: nothing was committed, and nothing is in the way
    assert s3_target.list() == []
    assert backup(model, target=s3_target, name="model.bin").version == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [(503, {}), (429, {"Retry-After": "1"}), (500, {})],
)
def test_gcs_burst_below_the_retry_budget_is_absorbed(
    gcs_target, gcs_proxy, model, tmp_path, status, headers
):
    gcs_proxy.answer_next(1, status, gcs_error(status, "backendError"), headers)
    _round_trip(gcs_target, model, tmp_path)
    assert gcs_proxy.count(status=status, injected=True) == 1


def test_gcs_connection_reset_mid_upload_is_retried(gcs_target, gcs_proxy, model, tmp_path):
    gcs_proxy.reset_after(50_000)
    _round_trip(gcs_target, model, tmp_path)
    assert gcs_proxy.count(status=0, injected=True) == 1


def test_s3_manifest_commit_whose_answer_was_lost_is_settled_by_looking(s3_target, s3_proxy):
    # The server stores the manifest, the answer never arrives; the retry finds the object.
    s3_proxy.lose_responses(1)
    s3_target.backend.write_new("m/0000000001.json", b'{"v": 1}')
    assert s3_target.backend.read_bytes("m/0000000001.json") == b'{"v": 1}'
    assert s3_proxy.count(status=0, injected=True) == 1
    with pytest.raises(FileExistsError):  # someone else's bytes: a real conflict
        s3_target.backend.write_new("m/0000000001.json", b'{"v": 2}')


def test_s3_backup_survives_lost_answers(s3_target, s3_proxy, model, tmp_path):
    backup(model, target=s3_target, name="model.bin")
    model.write_bytes(os.urandom(100_000))
    s3_proxy.lose_responses(3)  # the next three requests do their work unheard
    assert backup(model, target=s3_target, name="model.bin").version == 2
    restore("model.bin", tmp_path / "back.bin", target=s3_target)
    assert (tmp_path / "back.bin").read_bytes() == model.read_bytes()


def _requests(proxy):
    """The requests since the proxy was cleared, as (method, what they touched)."""
    kinds = ("manifests", "objects")
    return [(r.method, next((k for k in kinds if k in r.path), r.path)) for r in proxy.log]


@pytest.mark.parametrize("store", ["s3", "gcs"])
def test_a_run_with_nothing_to_send_lists_versions_reads_a_manifest_lists_objects(
    store, request, tmp_path
):
    target = request.getfixturevalue(f"{store}_target")
    proxy = request.getfixturevalue(f"{store}_proxy")
    run = tmp_path / "run"
    (run / "layer").mkdir(parents=True)
    (run / "layer" / "w.bin").write_bytes(os.urandom(1000))
    (run / "notes.txt").write_text("one")
    backup(run, target=target, name="run")
    (run / "notes.txt").write_text("two")  # version 2 displaces version 1's file
    backup(run, target=target, name="run")
    # Each request is a round trip to the store (tens of milliseconds to a real one): in a
    # new process, the versions listed, the newest manifest read, the objects listed (are its
    # bytes all there?).
    fresh = BackupTarget(target.backend)  # as a new process opens it
    proxy.clear()
    assert backup(run, target=fresh, name="run").status is BackupStatus.UNCHANGED
    seen = _requests(proxy)
    assert seen[:3] == [("GET", "manifests")] * 2 + [("GET", "objects")], seen
    assert seen[3:] == [("GET", "manifests")], seen  # version 1, checked for damage once
    # In the process that committed the newest version, that manifest is not read again.
    proxy.clear()
    assert backup(run, target=target, name="run").status is BackupStatus.UNCHANGED
    assert sorted(_requests(proxy)) == [("GET", "manifests"), ("GET", "objects")]


def test_a_changed_file_after_its_own_commit_costs_two_round_trips_until_committed(
    s3_target, s3_proxy, tmp_path
):
    # The Optuna callback's steady state: a study.db changed by one trial, backed up by the
    # process that committed its previous version.
    db = tmp_path / "study.bin"
    db.write_bytes(os.urandom(5000))
    backup(db, target=s3_target, name="study")
    db.write_bytes(os.urandom(5000))
    s3_proxy.clear()
    assert backup(db, target=s3_target, name="study").version == 2
    seen = _requests(s3_proxy)
    # The versions listed while the object is stored (its own manifest is not read again, and
    # the objects are listed after the commit), then the commit: the manifest's create-only PUT.
    assert sorted(seen[:2]) == [("GET", "manifests"), ("PUT", "objects")], seen
    assert seen[2] == ("PUT", "manifests"), seen


@pytest.mark.parametrize("store", ["s3", "gcs"])
def test_a_restore_reads_each_small_file_with_one_request(store, request, tmp_path):
    target = request.getfixturevalue(f"{store}_target")
    proxy = request.getfixturevalue(f"{store}_proxy")
    files = {f"layer{i}/w.bin": os.urandom(1000 + i) for i in range(6)}
    backup(write_tree(tmp_path / "run", files), target=target, name="run")
    proxy.clear()
    restore("run", tmp_path / "back", target=target)
    assert {rel: (tmp_path / "back" / rel).read_bytes() for rel in files} == files
    methods = [r.method for r in proxy.log]
    assert "HEAD" not in methods, methods
    # One request per file (before, a HEAD for its size, then the GET).
    assert len([r for r in proxy.log if "objects" in r.path]) == len(files)


# -- stalls: a store that accepts connections and never answers ------------------------------

#: A backup of one small file against a silent store fails typed within this (the default
#: timeouts and retry policy, nothing shortened).
STALL_BUDGET = 60


def _open_through(store, request, proxy):
    if store == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        options = server.storage_options(endpoint_url=proxy.endpoint_url)
        return f"s3://{bucket}/run", options
    server = request.getfixturevalue("gcs_server")
    bucket = request.getfixturevalue("gcs_bucket")
    return f"gs://{bucket}/run", server.storage_options(endpoint_url=proxy.endpoint_url)


def _fails_typed_within_the_deadline(url, options, proxy, model, when):
    """Seconds until a backup against the store gone silent failed typed (or the error)."""
    started = time.monotonic()
    try:
        if when == "from the first byte":
            proxy.silence_next(10_000)
            target = open_target(url, **options)
        else:
            target = open_target(url, **options)
            started = time.monotonic()
            proxy.silence_next(10_000)
        backup(model, target=target, name="model.bin")
    except BackendUnavailableError:
        return time.monotonic() - started
    return AssertionError("the backup did not fail")


@pytest.mark.slow
@pytest.mark.parametrize("store", ["s3", "gcs"])
def test_a_silent_store_fails_a_backup_typed_within_the_deadline(request, store, model, figures):
    """From the first byte, and after the target is open; both at once (each behind its own
    proxy), since each waits out the default timeouts."""
    from concurrent.futures import ThreadPoolExecutor

    upstream = request.getfixturevalue(f"{store}_server").endpoint_url
    whens = ["from the first byte", "after open"]
    with FaultProxy(upstream) as first, FaultProxy(upstream) as second:
        proxies = dict(zip(whens, (first, second), strict=True))
        with ThreadPoolExecutor(2) as pool:
            outcomes = {
                when: pool.submit(
                    _fails_typed_within_the_deadline,
                    *_open_through(store, request, proxy), proxy, model, when,
                )
                for when, proxy in proxies.items()
            }  # fmt: skip
            results = {when: future.result(timeout=300) for when, future in outcomes.items()}
        for proxy in proxies.values():
            proxy.release_silenced()
    for when, elapsed in results.items():
        assert isinstance(elapsed, float), f"{when}: {elapsed}"
        assert elapsed < STALL_BUDGET, f"{when}: {elapsed:.0f} s"
        figures.add("stalled calls (a silent store)")


# -- downloads cut off half-way ------------------------------------------------------------


@pytest.fixture(params=["s3", "gcs"])
def flaky(request):
    """A target behind a proxy, for faults on the way back."""
    upstream = request.getfixturevalue(f"{request.param}_server").endpoint_url
    with FaultProxy(upstream) as proxy:
        url, options = _open_through(request.param, request, proxy)
        yield open_target(url, **options), proxy


@pytest.mark.parametrize("keep", [16, 50_000])
@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
def test_a_restore_whose_download_is_cut_off_is_retried(flaky, model, tmp_path, keep, reset):
    target, proxy = flaky
    backup(model, target=target, name="model.bin")
    proxy.truncate_gets(1, keep, reset=reset)
    restore("model.bin", tmp_path / "back.bin", target=target)
    assert (tmp_path / "back.bin").read_bytes() == model.read_bytes()
    assert proxy.count(injected=True) == 1


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
def test_a_backup_whose_manifest_read_is_cut_off_is_retried(flaky, model, reset):
    target, proxy = flaky
    backup(model, target=target, name="model.bin")
    model.write_bytes(os.urandom(1000))
    proxy.truncate_gets(1, reset=reset)  # the newest manifest, read to compare against
    assert backup(model, target=target, name="model.bin").version == 2
    assert proxy.count(injected=True) == 1


# -- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_during_an_s3_upload_leaves_no_incomplete_upload(
    s3_server, s3_bucket, s3_proxy, tmp_path
):
    """SIGINT while a part is in flight: the CLI says nothing was committed and which version
    is intact, and no incomplete multipart upload is left (they are invisible but billed)."""
    import signal
    import subprocess
    import sys

    (tmp_path / "big.bin").write_bytes(os.urandom(12 << 20))  # three parts of 5 MiB
    options = s3_server.storage_options(endpoint_url=s3_proxy.endpoint_url)
    args = [f"-o{k}={v}" for k, v in options.items()]
    url = f"s3://{s3_bucket}/run"
    (tmp_path / "small.bin").write_bytes(b"v1")
    base = [sys.executable, "-m", "mlbackup", "backup"]
    subprocess.run([*base, str(tmp_path / "small.bin"), "--to", url, *args, "--name", "big.bin"],
                   check=True, capture_output=True)  # fmt: skip
    children: list[subprocess.Popen[str]] = []

    def interrupt() -> None:
        # Part 2's answer is held until the child has ended: the part is still in flight
        # whenever the child gets to the signal (a loaded machine delays that).
        children[0].send_signal(signal.SIGINT)
        children[0].wait(timeout=120)

    s3_proxy.after_matching("partNumber=2", interrupt)  # armed before the child can get there
    children.append(subprocess.Popen(
        [*base, str(tmp_path / "big.bin"), "--to", url, *args, "--name", "big.bin", "-o",
         "part_size=5242880"],
        stderr=subprocess.PIPE, text=True,
    ))  # fmt: skip
    _, err = children[0].communicate(timeout=120)
    assert children[0].returncode == 130, (err, [(r.method, r.path) for r in s3_proxy.log])
    assert "interrupted: nothing committed; version 1 of 'big.bin' is intact" in err
    uploads = s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert uploads == []


@pytest.mark.slow
def test_the_next_backup_aborts_stale_multipart_uploads_under_its_prefix(
    s3_server, s3_bucket, tmp_path, monkeypatch
):
    import mlbackup_s3.backend

    client = s3_server.client()
    ours = client.create_multipart_upload(Bucket=s3_bucket, Key="run/.mlbackup/objects/0")
    theirs = client.create_multipart_upload(Bucket=s3_bucket, Key="elsewhere/file.bin")
    monkeypatch.setattr(mlbackup_s3.backend, "STALE_UPLOAD_SECONDS", -60)  # all count as stale
    (tmp_path / "big.bin").write_bytes(os.urandom(12 << 20))
    target = open_target(f"s3://{s3_bucket}/run", **s3_server.storage_options(part_size=5 << 20))
    backup(tmp_path / "big.bin", target=target, name="big.bin")
    left = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [theirs["UploadId"]]
    assert ours["UploadId"] not in [u["UploadId"] for u in left]


def test_the_cli_against_a_silent_store_ends_typed_within_its_deadline(s3_server, s3_bucket, model):
    """The command line has the same bound; here with shortened timeouts (the default ones are
    measured above), so that the row takes seconds."""
    import subprocess
    import sys

    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = s3_server.storage_options(endpoint_url=proxy.endpoint_url, read_timeout=1)
        args = [f"-o{k}={v}" for k, v in {**options, "deadline": 3}.items()]
        proxy.silence_next(10_000)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "mlbackup", "backup", str(model), "--to",
             f"s3://{s3_bucket}/run", *args, "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        proxy.release_silenced()
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["type"] == "BackendUnavailableError"
    assert elapsed < 20, elapsed


def test_s3_a_create_answered_with_a_wrong_etag_is_settled_by_its_bytes(s3_server, s3_bucket):
    """The server stored the object but answered an ETag of other bytes (seen from moto under
    load: the md5 of an empty body): the bytes read back decide, not the answer."""
    with FaultProxy(s3_server.endpoint_url) as proxy:
        target = open_target(
            f"s3://{s3_bucket}/etag", **s3_server.storage_options(endpoint_url=proxy.endpoint_url)
        )
        empty_md5 = '"d41d8cd98f00b204e9800998ecf8427e"'
        proxy.rewrite_header("/etag/first", "ETag", empty_md5)
        target.backend.write_new("first", b"segment bytes")
        assert target.backend.read_bytes("first") == b"segment bytes"
        # Answered wrongly and not stored either (the proxy answers in the server's place).
        proxy.answer_matching("/etag/second", 200, headers={"ETag": empty_md5})
        with pytest.raises(TargetError, match="does not hold the object"):
            target.backend.write_new("second", b"other bytes")
