"""Start one of the shipped test servers on loopback, for trying a backend by hand:

    python -m mlbackup.testing serve s3        # moto's S3 server, with a bucket
    python -m mlbackup.testing serve gcs       # the GCS emulator, with a bucket
    python -m mlbackup.testing serve gdrive    # the fake Drive API, with a key it accepts

It prints the target URL, the storage options, and a command a second shell can run as is;
it serves until Ctrl-C. Every byte lives in memory and is gone when it stops.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

__all__ = ["main"]

BUCKET = "mlbackup-demo"


@contextmanager
def _s3(stack: ExitStack) -> Iterator[tuple[str, dict[str, Any]]]:
    from .s3_server import MotoS3Server

    server = stack.enter_context(MotoS3Server())
    server.create_bucket(BUCKET)
    yield f"s3://{BUCKET}/runs", server.storage_options()


@contextmanager
def _gcs(stack: ExitStack) -> Iterator[tuple[str, dict[str, Any]]]:
    from .gcs_server import GCSEmulator

    server = stack.enter_context(GCSEmulator())
    server.create_bucket(BUCKET)
    yield f"gs://{BUCKET}/runs", server.storage_options()


@contextmanager
def _gdrive(stack: ExitStack) -> Iterator[tuple[str, dict[str, Any]]]:
    from .drive_server import FakeDriveServer
    from .gcs_server import OAuthTokenServer, service_account_info

    tokens = stack.enter_context(OAuthTokenServer())
    drive = stack.enter_context(FakeDriveServer())
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlbackup-serve-")))
    key = folder / "service-account.json"  # a fresh key only this token server accepts
    key.write_text(json.dumps(service_account_info(tokens.token_uri)))
    key.chmod(0o600)
    yield (
        "gdrive://root/runs",
        {"service_account_json": str(key), "api_endpoint": drive.endpoint_url},
    )


_SERVERS = {"s3": _s3, "gcs": _gcs, "gdrive": _gdrive}


def _command(url: str, options: dict[str, Any]) -> str:
    words = ["mlbackup", "backup", "PATH", "--to", url]
    for key, value in options.items():
        words += ["-o", f"{key}={value}"]
    return " ".join(shlex.quote(w) for w in words)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlbackup.testing", description="start a test server on loopback"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve until Ctrl-C")
    serve.add_argument("store", choices=sorted(_SERVERS))
    args = parser.parse_args(argv)
    with ExitStack() as stack, _SERVERS[args.store](stack) as (url, options):
        print(f"serving {args.store} on loopback (in memory; Ctrl-C stops it)")
        print(f"url:     {url}")
        print(f"options: {json.dumps(options)}")
        print(f"try:     {_command(url, options)}", flush=True)
        try:
            # Awake each second: a Ctrl-C the kernel hands to one of the servers' threads is
            # only acted on when this thread next runs Python code.
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
