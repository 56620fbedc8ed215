"""Each tool's commands for the scenarios, on a local folder target and on S3.

A tool backs ``src`` up to its own place on the target, runs again (no change, then after the
mutation) with the same command, and restores into a fresh folder. ``content`` reads a file back
from where the tool put it, to count changes it missed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers import aws_cli, s5cmd

HERE = Path(__file__).resolve().parent
PY = sys.executable
CHILD = str(HERE / "child.py")
MLBACKUP_CLI = str(Path(sys.executable).with_name("mlbackup"))
RESTIC_ENV = {"RESTIC_PASSWORD": "benchmark-only", "RESTIC_CACHE_DIR": "/tmp/restic-bench-cache"}


@dataclass
class S3:
    endpoint: str
    key: str
    secret: str
    bucket: str
    client: Any = None
    mlbackup_options: dict[str, Any] = field(default_factory=dict)  # for mlbackup alone

    def options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint, "key": self.key, "secret": self.secret}

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_S3_PROVIDER": "Other",
            "RCLONE_S3_ENDPOINT": self.endpoint,
            "RCLONE_S3_ACCESS_KEY_ID": self.key,
            "RCLONE_S3_SECRET_ACCESS_KEY": self.secret,
        }

    def rclone_env(self) -> dict[str, str]:
        # rclone's S3 client refuses a custom CA bundle over plain HTTP: none is needed here.
        return {**self.env(), "AWS_CA_BUNDLE": ""}

    def empty(self, prefix: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def read(self, key: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None


@dataclass
class Tool:
    name: str
    backup: Callable[[Path], list[str]]
    restore: Callable[[Path], list[str]] | None
    fresh: Callable[[], None]
    content: Callable[[str], bytes | None] | None  # None: not checked (e.g. restic's repo)
    incremental: bool = True  # runs again after the first backup (cp and s3fs put do not)
    env: dict[str, str] = field(default_factory=dict)
    ours: bool = False


def _child(operation: str, **args: Any) -> list[str]:
    return [PY, CHILD, operation, json.dumps(args)]


def _rmtree(path: Path) -> Callable[[], None]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


def _file(root: Path) -> Callable[[str], bytes | None]:
    def read(rel: str) -> bytes | None:
        path = root / rel
        return path.read_bytes() if path.exists() else None

    return read


def local_tools(work: Path, full: bool) -> list[Tool]:
    t = work / "targets"
    restic_repo = t / "restic"

    def restic_fresh() -> None:
        shutil.rmtree(restic_repo, ignore_errors=True)
        command = ["restic", "init", "-q", "-r", str(restic_repo)]
        env = {**RESTIC_ENV, "PATH": "/usr/bin:/bin"}
        subprocess.run(command, check=True, env=env, capture_output=True)

    tools = [
        Tool("mlbackup", lambda src: _child("mlbackup_backup", src=str(src), url=str(t / "mlb"),
             name="tree"),
             lambda out: _child("mlbackup_restore", name="tree", url=str(t / "mlb"), dest=str(out)),
             _rmtree(t / "mlb"), _file(t / "mlb" / "tree"), ours=True),
        Tool("mlbackup durable=False", lambda src: _child("mlbackup_backup", src=str(src),
             url=str(t / "mlb-nd"), name="tree", options={"durable": False}), None,
             _rmtree(t / "mlb-nd"), _file(t / "mlb-nd" / "tree"), ours=True),
        Tool("mlbackup CLI", lambda src: [MLBACKUP_CLI, "backup", str(src), "--to", str(t / "cli"),
             "--name", "tree", "-q"],
             lambda out: [MLBACKUP_CLI, "restore", "tree", "--from", str(t / "cli"), "--to",
                          str(out), "-q"],
             _rmtree(t / "cli"), _file(t / "cli" / "tree"), ours=True),
        Tool("cp -a", lambda src: ["cp", "-a", str(src), str(t / "cp")],
             lambda out: ["cp", "-a", str(t / "cp"), str(out)],
             _rmtree(t / "cp"), _file(t / "cp"), incremental=False),
        Tool("rsync -a", lambda src: ["rsync", "-a", f"{src}/", f"{t / 'rsync'}/"],
             lambda out: ["rsync", "-a", f"{t / 'rsync'}/", f"{out}/"],
             _rmtree(t / "rsync"), _file(t / "rsync")),
        Tool("rclone copy", lambda src: ["rclone", "copy", str(src), str(t / "rclone")],
             lambda out: ["rclone", "copy", str(t / "rclone"), str(out)],
             _rmtree(t / "rclone"), _file(t / "rclone"), env={"RCLONE_CONFIG": "/dev/null"}),
        Tool("rclone copy --checksum", lambda src: ["rclone", "copy", "--checksum", str(src),
             str(t / "rclone-c")], None, _rmtree(t / "rclone-c"), _file(t / "rclone-c"),
             env={"RCLONE_CONFIG": "/dev/null"}),
        Tool("restic backup", lambda src: ["restic", "-q", "-r", str(restic_repo), "backup",
             str(src)],
             lambda out: ["restic", "-q", "-r", str(restic_repo), "restore", "latest", "--target",
                          str(out)],
             restic_fresh, None, env=RESTIC_ENV),
        Tool("fsspec rsync", lambda src: _child("fsspec_rsync", src=str(src),
             dst=str(t / "fsspec")), None, _rmtree(t / "fsspec"), _file(t / "fsspec")),
    ]  # fmt: skip
    if full:
        tools.append(
            Tool("rclone copy --transfers 8", lambda src: ["rclone", "copy", "--transfers", "8",
                 str(src), str(t / "rclone-8")], None, _rmtree(t / "rclone-8"),
                 _file(t / "rclone-8"), env={"RCLONE_CONFIG": "/dev/null"})
        )  # fmt: skip
    return tools


def s3_tools(s3: S3, full: bool) -> list[Tool]:
    b = s3.bucket
    opts = {**s3.options(), **s3.mlbackup_options}
    cli_opts = [x for k, v in opts.items() for x in ("-o", f"{k}={v}")]

    def keyed(prefix: str) -> Callable[[str], bytes | None]:
        return lambda rel: s3.read(f"{prefix}/{rel}")

    tools = [
        Tool("mlbackup", lambda src: _child("mlbackup_backup", src=str(src), url=f"s3://{b}/mlb",
             name="tree", options=opts),
             lambda out: _child("mlbackup_restore", name="tree", url=f"s3://{b}/mlb",
                                dest=str(out), options=opts),
             lambda: s3.empty("mlb/"), keyed("mlb/tree"), ours=True),
        Tool("mlbackup CLI", lambda src: [MLBACKUP_CLI, "backup", str(src), "--to",
             f"s3://{b}/cli", "--name", "tree", "-q", *cli_opts], None,
             lambda: s3.empty("cli/"), keyed("cli/tree"), ours=True),
        Tool("aws s3 sync", lambda src: [aws_cli(), "s3", "sync", str(src), f"s3://{b}/aws",
             "--endpoint-url", s3.endpoint, "--only-show-errors"],
             lambda out: [aws_cli(), "s3", "sync", f"s3://{b}/aws", str(out), "--endpoint-url",
                          s3.endpoint, "--only-show-errors"],
             lambda: s3.empty("aws/"), keyed("aws"), env=s3.env()),
        # --fast-list: one recursive listing, rclone's quickest way to read a tree of small
        # files (and on s3rver the only complete one: its answer to a listing by folder is
        # wrong, and without it rclone restores nothing there).
        Tool("rclone copy", lambda src: ["rclone", "copy", "--fast-list", str(src),
             f":s3:{b}/rclone"],
             lambda out: ["rclone", "copy", "--fast-list", f":s3:{b}/rclone", str(out)],
             lambda: s3.empty("rclone/"), keyed("rclone"), env=s3.rclone_env()),
        Tool("s5cmd sync", lambda src: [s5cmd(), "--endpoint-url", s3.endpoint, "sync",
             f"{src}/", f"s3://{b}/s5cmd/"],
             lambda out: [s5cmd(), "--endpoint-url", s3.endpoint, "sync", f"s3://{b}/s5cmd/*",
                          f"{out}/"],
             lambda: s3.empty("s5cmd/"), keyed("s5cmd"), env=s3.env()),
        Tool("s3fs put", lambda src: _child("s3fs_put", src=str(src), dst=f"{b}/s3fs",
             options=s3.options()), None, lambda: s3.empty("s3fs/"), keyed("s3fs"),
             incremental=False),
    ]  # fmt: skip
    if full:
        tools.append(
            Tool("rclone copy --checksum", lambda src: ["rclone", "copy", "--checksum",
                 "--fast-list", str(src), f":s3:{b}/rclone-c"], None,
                 lambda: s3.empty("rclone-c/"), keyed("rclone-c"),
                 env=s3.rclone_env())
        )  # fmt: skip
    return tools
