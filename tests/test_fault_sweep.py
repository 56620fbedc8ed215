"""One fault at every request of a backup, in turn, on S3 (moto) and GCS (the emulator).

Version 1 is committed; the source changes (a file edited, one deleted, one added, one
appended to); then the backup of version 2 runs through a FaultProxy that answers its k-th
request with a 404, a 500 or a connection reset, for every k the backup makes. Whatever the
backup does about it (ride it out, fail), version 1 always restores exactly, and a version 2
that got committed restores exactly to the changed tree.
"""

import contextlib
import os

import mlbackup_gcs
import mlbackup_s3
import pytest

from mlbackup import MLBackupError, backup, open_target, restore
from mlbackup.retry import RetryPolicy
from mlbackup.testing.contract import tree_snapshot, write_tree
from mlbackup.testing.fault_proxy import FaultProxy, gcs_error

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
S3_MISSING = b"<Error><Code>NoSuchKey</Code><Message>injected</Message></Error>"
S3_BROKEN = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(mlbackup_s3.S3Backend, "retry_policy", FAST)
    # gcsfs's own retries wait a second or more each: one try of theirs, ours around it.
    monkeypatch.setattr(mlbackup_gcs.GCSBackend, "retry_policy", FAST)
    monkeypatch.setattr("gcsfs.retry.retry_request.__defaults__", (1,))
    # botocore's own quick tries wait up to a second each: the point here is what a fault
    # does to the versions, not how long a retry waits.
    monkeypatch.setattr(
        "botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, ctx: 0.01
    )


def faults(kind):
    if kind == "s3":
        xml = {"Content-Type": "application/xml"}
        return {"404": (404, S3_MISSING, xml), "500": (500, S3_BROKEN, xml), "reset": None}
    json = {"Content-Type": "application/json"}
    return {
        "404": (404, gcs_error(404, "notFound"), json),
        "500": (500, gcs_error(500, "backendError"), json),
        "reset": None,
    }


def generations(root):
    first = {f"d/f{i}.bin": os.urandom(2000 + i) for i in range(4)}
    first["log.txt"] = b"line\n" * 100
    second = {**first, "d/f0.bin": b"edited" * 50, "new.txt": b"added"}
    del second["d/f1.bin"]
    second["log.txt"] += b"appended\n"
    return first, second


@pytest.mark.slow(seconds=40)
@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_a_fault_at_any_request_never_damages_the_committed_version(
    request, kind, tmp_path, figures
):
    server = request.getfixturevalue("s3_server" if kind == "s3" else "gcs_server")
    first, second = generations(tmp_path)
    with FaultProxy(server.endpoint_url) as proxy:
        options = {**server.storage_options(), "endpoint_url": proxy.endpoint_url}
        trials = 0
        for fault_name, fault in faults(kind).items():
            k = 1
            while True:
                server.reset()
                server.create_bucket("sweep")
                url = f"{kind}://sweep/run"
                src = tmp_path / f"{fault_name}-{k}"
                write_tree(src, first)
                target = open_target(url, **options)
                backup(src, target=target, name="ckpt")
                v1 = tree_snapshot(src)
                for rel in first:
                    (src / rel).unlink()
                write_tree(src, second)
                proxy.clear()
                if fault is None:
                    proxy.fault_nth(k, None)
                else:
                    proxy.fault_nth(k, *fault)
                # Failing is allowed; damaging a version is not.
                with contextlib.suppress(MLBackupError, OSError):
                    backup(src, target=target, name="ckpt")
                made = len(proxy.log)
                proxy.clear()
                checker = open_target(url, **options)
                dest = tmp_path / "out" / f"{fault_name}-{k}"
                restore("ckpt", dest / "v1", target=checker, version=1)
                assert tree_snapshot(dest / "v1") == v1, f"{fault_name} at request {k}"
                if 2 in checker.versions("ckpt"):
                    restore("ckpt", dest / "v2", target=checker, version=2)
                    assert tree_snapshot(dest / "v2") == tree_snapshot(src), (fault_name, k)
                trials += 1
                figures.add("injected faults")
                if k >= made:  # the fault came after the backup's last request
                    break
                k += 1
        assert trials > 20
