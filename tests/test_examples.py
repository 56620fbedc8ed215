"""The examples run as users run them."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_same_folder_to_local_s3_and_gcs_changing_only_the_url():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "backup_anywhere.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0].split("://")[0] for line in lines[1:]] == ["s3", "gs"]
    assert len(lines) == 3 and all(line.endswith("restore identical") for line in lines)
    assert done.stderr == ""  # the test servers keep quiet
