"""Back one folder up to a local folder, to S3 and to GCS, changing only the URL, and restore
it byte for byte from each.

    python examples/backup_anywhere.py

With no arguments it runs against loopback test servers (moto for S3, the GCS emulator), so it
needs no account. Pass URLs to use real storage instead; each one's options come from
MLBACKUP_STORAGE_OPTIONS (JSON) or your default credentials::

    python examples/backup_anywhere.py s3://my-bucket/runs gs://my-bucket/runs
"""

from __future__ import annotations

import filecmp
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from mlbackup import backup, open_target, restore


def make_checkpoint(root: Path) -> Path:
    """A small checkpoint-like folder: weights, a config, a nested log."""
    folder = root / "checkpoint-100"
    (folder / "logs").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(3_000_000))
    (folder / "config.json").write_text(json.dumps({"hidden": 64, "layers": 2}))
    (folder / "logs" / "train.jsonl").write_text('{"step": 100, "loss": 0.42}\n')
    return folder


def same_tree(a: Path, b: Path) -> bool:
    """Whether two folders hold the same files with the same bytes."""
    compared = filecmp.dircmp(a, b)
    if compared.left_only or compared.right_only or compared.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, compared.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(a / d, b / d) for d in compared.common_dirs)


def round_trip(folder: Path, url: str, options: dict[str, Any], scratch: Path) -> str:
    """Back ``folder`` up to ``url``, restore it elsewhere, and say how it went."""
    with open_target(url, **options) as target:
        result = backup(folder, target=target, name="checkpoint-100")
        dest = scratch / f"restored-{len(list(scratch.iterdir()))}"
        restore("checkpoint-100", dest, target=target)
    same = "identical" if same_tree(folder, dest) else "DIFFERENT"
    return f"{url:<42} {result.status.value:>8} {result.bytes_sent:>9} bytes  restore {same}"


def local_test_targets(stack: ExitStack, scratch: Path) -> dict[str, dict[str, Any]]:
    """A local folder plus S3 and GCS on loopback test servers."""
    from mlbackup.testing.gcs_server import GCSEmulator
    from mlbackup.testing.s3_server import MotoS3Server

    s3 = stack.enter_context(MotoS3Server())
    s3.create_bucket("backups")
    gcs = stack.enter_context(GCSEmulator())
    gcs.create_bucket("backups")
    return {
        str(scratch / "local-target"): {},
        "s3://backups/runs/exp1": s3.storage_options(),
        "gs://backups/runs/exp1": gcs.storage_options(),
    }


def main(argv: list[str]) -> int:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        folder = make_checkpoint(scratch / "project")
        restored = scratch / "restored"
        restored.mkdir()
        if argv:
            options = json.loads(os.environ.get("MLBACKUP_STORAGE_OPTIONS", "{}"))
            targets = dict.fromkeys(argv, options)
        else:
            targets = local_test_targets(stack, scratch)
        lines = [round_trip(folder, url, options, restored) for url, options in targets.items()]
    print("\n".join(lines))
    return 0 if all(line.endswith("identical") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
