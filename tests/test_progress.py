"""Progress while a large file is sent: the bytes move chunk by chunk, on each backend that
sends in chunks, and the counts end exact (never past the total, never counted twice)."""

import itertools
import os
import threading

import pytest

from mlbackup import backup, open_target, restore
from mlbackup.testing.faulty_fs import faulty_target

MiB = 1 << 20


@pytest.fixture(params=["file", "s3", "gs", "gdrive"])
def target(request, tmp_path):
    kind = request.param
    if kind == "file":
        return open_target(tmp_path / "target")
    if kind == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        return open_target(f"s3://{bucket}/p", **server.storage_options(part_size=5 * MiB))
    if kind == "gs":
        server = request.getfixturevalue("gcs_server")
        bucket = request.getfixturevalue("gcs_bucket")
        return open_target(f"gs://{bucket}/p", **server.storage_options(part_size=4 * MiB))
    drive = request.getfixturevalue("drive_api")
    key_file = request.getfixturevalue("gcs_key_file")
    return open_target(
        "gdrive://root/p",
        service_account_json=str(key_file),
        api_endpoint=drive.endpoint_url,
        chunk_size=4 * MiB,
    )


def assert_moves_in_chunks(events, size):
    in_flight = [e for e in events if e.files_done == 0]
    assert len(in_flight) >= 2, [(e.files_done, e.bytes_done) for e in events]
    done = [e.bytes_done for e in events]
    assert done == sorted(done) and all(d <= size for d in done)
    assert (events[-1].files_done, events[-1].bytes_done) == (1, size)


def test_a_large_file_reports_bytes_as_its_chunks_go_both_ways(target, tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(13 * MiB))
    sent, restored = [], []
    backup(src, target=target, name="weights.bin", progress=sent.append)
    assert_moves_in_chunks(sent, 13 * MiB)
    restore("weights.bin", tmp_path / "back.bin", target=target, progress=restored.append)
    assert_moves_in_chunks(restored, 13 * MiB)


def test_a_file_sent_again_is_not_counted_twice(tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(3 * MiB))
    target, faults = faulty_target(tmp_path / "t")
    held = faults.hold(method="write", on_call=2, times=1)  # mid-file, after one chunk
    events = []
    worker = threading.Thread(
        target=lambda: backup(src, target=target, name="w", progress=events.append)
    )
    worker.start()
    assert held.arrived.wait(30)
    with open(src, "r+b") as f:  # rewritten in place while it is sent: it is read again
        f.write(os.urandom(3 * MiB))
    held.release()
    worker.join(60)
    done = [e.bytes_done for e in events]
    assert any(b < a for a, b in itertools.pairwise(done))  # the first try's chunks taken back
    assert min(done) >= 0 and max(done) <= 3 * MiB
    assert (events[-1].files_done, events[-1].bytes_done) == (1, 3 * MiB)


def test_an_interrupt_does_not_send_the_bar_back_to_zero(tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(13 * MiB))
    events = []

    def watch(event):
        events.append(event)
        if event.bytes_done >= 2 * MiB and len(events) < 1000:
            raise KeyboardInterrupt  # Ctrl-C arrives while the bar is drawn

    with pytest.raises(KeyboardInterrupt):
        backup(src, target=open_target(tmp_path / "t"), name="w", progress=watch)
    assert events[-1].bytes_done >= 2 * MiB
