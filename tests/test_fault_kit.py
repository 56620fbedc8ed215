"""The fault kit itself: the proxy's faults do what they say, and are reproducible."""

import errno
import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from mlbackup.testing.fault_proxy import FaultProxy
from mlbackup.testing.faulty_fs import FaultyFS
from mlbackup.testing.loopback import QuietThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0

    def do_GET(self):
        Echo.hits += 1
        body = b"x" * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    server = QuietThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(proxy, timeout=10.0):
    host, port = proxy.endpoint_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", "/x")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_requests_pass_through_and_are_logged(upstream):
    with FaultProxy(upstream) as proxy:
        assert get(proxy) == (200, b"x" * 1000)
        assert proxy.count(status=200, injected=False) == 1


def test_random_answers_are_reproducible_from_the_seed(upstream):
    def statuses(seed):
        with FaultProxy(upstream, seed=seed) as proxy:
            proxy.answer_randomly(0.5, 503)
            return [get(proxy)[0] for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert 503 in first and 200 in first


def test_silence_ends_in_the_clients_timeout(upstream):
    with FaultProxy(upstream) as proxy:
        proxy.silence_next(1)
        with pytest.raises(TimeoutError):
            get(proxy, timeout=0.3)
        assert get(proxy)[0] == 200  # only the next request was silenced


def test_refused_connections_are_reset(upstream):
    with FaultProxy(upstream) as proxy:
        proxy.refusing = True
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected, socket.error)):
            get(proxy)
        proxy.refusing = False
        assert get(proxy)[0] == 200


def test_a_hook_runs_after_the_kth_request_reached_the_server(upstream):
    seen = []
    with FaultProxy(upstream) as proxy:
        proxy.after_request(2, lambda: seen.append(Echo.hits))
        before = Echo.hits
        for _ in range(3):
            get(proxy)
    assert seen == [before + 2]


def test_bandwidth_cap_is_applied(upstream, monkeypatch):
    slept = []
    monkeypatch.setattr("mlbackup.testing.fault_proxy.time.sleep", slept.append)
    with FaultProxy(upstream) as proxy:
        proxy.bandwidth = 10_000
        get(proxy)
    assert slept and sum(slept) == pytest.approx(1000 / 10_000)


def test_faulty_fs_counts_faults_and_targets_paths(tmp_path):
    from fsspec.implementations.local import LocalFileSystem

    fs = FaultyFS(LocalFileSystem(skip_instance_cache=True))
    fs.fail("info", errno.EIO, on_call=2, path_contains="b")
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    fs.info(str(tmp_path / "a"))
    fs.info(str(tmp_path / "b"))  # 1st matching call: fine
    with pytest.raises(OSError) as caught:
        fs.info(str(tmp_path / "b"))  # 2nd matching call: EIO
    assert caught.value.errno == errno.EIO
    assert fs.count("info") == 3 and fs.count("info", faulted=True) == 1


def test_faulty_fs_truncates_writes_silently(tmp_path):
    from fsspec.implementations.local import LocalFileSystem

    fs = FaultyFS(LocalFileSystem(skip_instance_cache=True))
    fs.truncate_writes(3)
    with fs.open(str(tmp_path / "f"), "wb") as f:
        assert f.write(b"abcdef") == 6  # the disk claims all of it
    assert (tmp_path / "f").read_bytes() == b"abc"


def test_the_fake_drive_never_acts_on_a_request_cut_short(drive_api):
    """A client killed mid-request: Drive ignores the part it got (a move whose new title was
    cut off once made a killed backup's file vanish from both of its places)."""
    from mlbackup.testing.drive_server import ROOT_ID

    folder = drive_api.add_file(ROOT_ID, "objects", folder=True)
    file_id = drive_api.add_file(ROOT_ID, "f8.bin", b"data")
    body = b'{"title": "renamed-by-hash"}'
    host, port = drive_api.endpoint_url.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"PATCH /drive/v2/files/{file_id}?addParents={folder}&removeParents={ROOT_ID} "
            f"HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()  # headers sent, no body yet
        )
        sock.shutdown(socket.SHUT_WR)  # the client dies here
        assert sock.recv(100) == b""  # no answer: nothing was done
    moved = drive_api.files[file_id]
    assert (moved.title, moved.parents) == ("f8.bin", [ROOT_ID])
