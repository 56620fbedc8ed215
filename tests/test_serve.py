"""``python -m mlbackup.testing serve s3|gcs|gdrive``: a test server a second shell can back up
to with the command it prints."""

import json
import shlex
import signal
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("store", ["s3", "gcs", "gdrive"])
def test_a_served_store_takes_the_printed_command(store, tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "mlbackup.testing", "serve", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [server.stdout.readline() for _ in range(4)]
        assert lines[0].startswith(f"serving {store}"), [*lines, server.stderr.read()]
        url = lines[1].split(":", 1)[1].strip()
        options = json.loads(lines[2].split(":", 1)[1])
        command = lines[3].split(":", 1)[1].strip()
        (tmp_path / "model.bin").write_bytes(b"weights")
        words = [w if w != "PATH" else str(tmp_path / "model.bin") for w in shlex.split(command)]
        words[0:1] = [sys.executable, "-m", "mlbackup"]
        done = subprocess.run([*words, "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["version"] == 1
        assert url.split("://")[0] in ("s3", "gs", "gdrive") and options
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, err = server.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
            pytest.fail(f"the server did not stop on Ctrl-C within 120 s: {err}")
    assert server.returncode == 0, err
    assert err.strip().endswith("stopped"), err
