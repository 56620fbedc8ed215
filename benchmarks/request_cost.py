"""What one small S3 request costs the client, by HTTP stack, side by side on one server.

    .venv/bin/python benchmarks/request_cost.py      # about a minute; prints a table, writes
                                                     # benchmarks/request_cost.json

The S3 backend talks to the store through s3fs (aiobotocore on aiohttp); boto3 (botocore on
urllib3) and a bare urllib3 connection pool with botocore's SigV4 signer are the alternatives.
Each stack runs in its own process against the same moto server, one request at a time: a
4 KB ``PutObject`` then a ``GetObject`` of it, ``REQUESTS`` times, after a warm-up. The
process's CPU time per request is what a request costs the client; the server (in this
harness's process) is not counted. The import time of each stack is measured in a fresh
interpreter. Where the figures are read: docs/benchmarks.md ("Where the S3 time goes").
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUESTS = 300
BODY = os.urandom(4096)
IMPORTS = {
    "s3fs": "import s3fs",
    "boto3": "import boto3",
    "urllib3 + botocore's signer": "import urllib3, botocore.auth, botocore.credentials",
}
#: What a command-line run imports before it does anything, beyond the interpreter's start.
STARTUP = {
    "mlbackup's CLI": "import mlbackup.cli",
    "mlbackup's CLI, local backend": "import mlbackup.cli, mlbackup_local",
    # The S3 backend loads botocore and urllib3 for its first request (s3fs only for a call
    # the direct path leaves to it, such as a multipart upload).
    "mlbackup's CLI, S3 backend": "import mlbackup.cli, mlbackup_s3.backend, botocore.session, "
    "botocore.auth, urllib3",
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _s3fs(endpoint: str, key: str, secret: str, bucket: str) -> tuple[Any, Any]:
    import s3fs

    fs = s3fs.S3FileSystem(key=key, secret=secret, endpoint_url=endpoint)

    def put(name: str) -> None:
        fs.pipe_file(f"{bucket}/{name}", BODY)

    def get(name: str) -> bytes:
        return bytes(fs.cat_file(f"{bucket}/{name}", max_concurrency=1))

    return put, get


def _boto3(endpoint: str, key: str, secret: str, bucket: str) -> tuple[Any, Any]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key,
                          aws_secret_access_key=secret, region_name="us-east-1")  # fmt: skip

    def put(name: str) -> None:
        client.put_object(Bucket=bucket, Key=name, Body=BODY)

    def get(name: str) -> bytes:
        return bytes(client.get_object(Bucket=bucket, Key=name)["Body"].read())

    return put, get


def _urllib3(endpoint: str, key: str, secret: str, bucket: str) -> tuple[Any, Any]:
    import urllib3
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    pool = urllib3.PoolManager(maxsize=4, retries=False)
    signer = S3SigV4Auth(Credentials(key, secret), "s3", "us-east-1")

    def send(method: str, name: str, body: bytes = b"") -> bytes:
        request = AWSRequest(method=method, url=f"{endpoint}/{bucket}/{name}", data=body)
        signer.add_auth(request)
        answer = pool.request(method, request.url, body=body or None,
                              headers=dict(request.headers.items()))  # fmt: skip
        if answer.status != 200:
            raise RuntimeError(f"{method} {name}: {answer.status}")
        return bytes(answer.data)

    return (lambda name: send("PUT", name, BODY)), (lambda name: send("GET", name))


STACKS = {"s3fs": _s3fs, "boto3": _boto3, "urllib3 + botocore's signer": _urllib3}


def child(stack: str, endpoint: str, key: str, secret: str, bucket: str) -> dict[str, float]:
    put, get = STACKS[stack](endpoint, key, secret, bucket)
    prefix = stack.split()[0]
    for i in range(20):  # warm-up: connections, credential and endpoint resolution
        put(f"{prefix}/warm{i}")
        get(f"{prefix}/warm{i}")
    figures = {}
    for op in ("put", "get"):
        cpu, wall = _cpu(), time.perf_counter()
        for i in range(REQUESTS):
            if op == "put":
                put(f"{prefix}/o{i}")
            elif get(f"{prefix}/o{i}") != BODY:
                raise RuntimeError("read back other bytes")
        figures[f"{op}_cpu_us"] = (_cpu() - cpu) / REQUESTS * 1e6
        figures[f"{op}_wall_us"] = (time.perf_counter() - wall) / REQUESTS * 1e6
    return figures


def import_seconds(statement: str, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        best = min(best, time.perf_counter() - started)
    bare = min(_timed([sys.executable, "-c", "pass"]) for _ in range(repeats))
    return best - bare


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - started


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:7])))
        return
    from mlbackup.testing.s3_server import DEFAULT_KEY, DEFAULT_SECRET, MotoS3Server

    server = MotoS3Server().start()
    server.create_bucket("cost")
    results: dict[str, dict[str, float]] = {}
    try:
        for stack in STACKS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", stack, server.endpoint_url, DEFAULT_KEY,
                 DEFAULT_SECRET, "cost"], check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            results[stack] = json.loads(out.strip().splitlines()[-1])
    finally:
        server.stop()
    for stack, statement in IMPORTS.items():
        results[stack]["import_ms"] = import_seconds(statement) * 1e3
    startup = {what: import_seconds(statement) * 1e3 for what, statement in STARTUP.items()}
    startup["the interpreter itself"] = (
        min(_timed([sys.executable, "-c", "pass"]) for _ in range(3)) * 1e3
    )
    out = {"stacks": results, "startup_ms": startup}
    (HERE / "request_cost.json").write_text(json.dumps(out, indent=1) + "\n")
    print("| stack | import | PUT: client CPU | PUT: wall | GET: client CPU | GET: wall |")
    print("|---|---|---|---|---|---|")
    for stack, f in results.items():
        cells = [f"{f['import_ms']:.0f} ms"] + [
            f"{f[k]:.0f} µs" for k in ("put_cpu_us", "put_wall_us", "get_cpu_us", "get_wall_us")
        ]
        print(f"| {stack} | {' | '.join(cells)} |")
    for what, ms in startup.items():
        print(f"{what}: {ms:.0f} ms")


if __name__ == "__main__":
    main()
