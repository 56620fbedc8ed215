"""npm's ``s3rver``: a second S3 server for the speed comparison (moto stays the one for
correctness; s3rver lists nested prefixes wrongly).

Installed with npm into ``benchmarks/.peers/s3rver`` on first use and run as its own Node
process, so it does not share the harness's Python interpreter as moto does. Two of its
departures from S3 matter here, and are worked around for this benchmark only:

- On Node 17 and later its continuation tokens need OpenSSL's legacy provider
  (``ERR_OSSL_EVP_UNSUPPORTED`` otherwise): it is started with ``--openssl-legacy-provider``.
- A multipart object's ETag is the md5 of the whole object, where S3 gives the md5 of the
  parts' md5s with a ``-N`` suffix. mlbackup checks every upload against the ETag S3 computes
  and refuses this one, so against s3rver it runs with a ``part_size`` above the largest file:
  every file is one ``PutObject``, verified by its plain md5.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from peers import PEERS_VENV

PREFIX = PEERS_VENV / "s3rver"
BIN = PREFIX / "node_modules" / ".bin" / "s3rver"
KEY = SECRET = "S3RVER"  # the pair s3rver accepts by default


def install() -> bool:
    """Install s3rver with npm if missing; False where npm or the registry is not there."""
    if BIN.exists():
        return True
    if shutil.which("npm") is None:
        return False
    print("installing s3rver into benchmarks/.peers/s3rver", flush=True)
    PREFIX.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", "s3rver@3"]
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    return BIN.exists()


class S3rver:
    """An s3rver process on 127.0.0.1 and a free port, its data in ``folder``."""

    def __init__(self, folder: Path, bucket: str) -> None:
        self.folder = folder
        self.bucket = bucket
        self.endpoint_url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> S3rver:
        self.folder.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
        argv = [str(BIN), "-d", str(self.folder), "-a", "127.0.0.1", "-p", str(port), "--silent",
                "--configure-bucket", self.bucket]  # fmt: skip
        self._process = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.endpoint_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # wait until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("s3rver did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )
