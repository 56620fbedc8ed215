"""What a command-line run imports: the modules only some commands need stay unloaded until
used (each costs milliseconds of every run; the speed itself is measured in benchmarks/)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlbackup

#: Loaded only by the commands, callbacks or features that use them.
ON_DEMAND = [
    "mlbackup.background",
    "mlbackup.bucket_backend",
    "mlbackup.doctor",
    "mlbackup.progress_bar",
    "mlbackup.status",
    "platformdirs",
    "sqlite3",
    "tempfile",
    "tomllib",
    "ctypes",
    "fsspec",
]


def loaded_after(code: str, cwd, env: dict[str, str] | None = None) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=cwd, capture_output=True, text=True, check=True, env=env, timeout=120,
    ).stdout  # fmt: skip
    return json.loads(out.splitlines()[-1])


def test_a_backup_with_nothing_to_send_loads_none_of_them(tmp_path):
    source = tmp_path / "run"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"w")
    mlbackup.backup(source, target=tmp_path / "target", name="run")
    code = (
        "from mlbackup.cli import main\n"
        f"assert main(['backup', {str(source)!r}, '--to', {str(tmp_path / 'target')!r}, "
        "'--name', 'run', '-q']) == 0"
    )
    # As on a user's machine: the suite's MLBACKUP_DRIVE_MOUNT_ROOT is a plugin's variable,
    # which the config asks the installed plugins about (reading their metadata) to know it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBACKUP_")}
    loaded = loaded_after(code, cwd=tmp_path, env=env)  # no pyproject.toml here to read
    assert [m for m in ON_DEMAND if m in loaded] == []


@pytest.mark.parametrize("name", ["BackgroundBackup", "run_doctor", "ProgressBar", "NameReport"])
def test_the_exports_loaded_on_demand_are_there_when_asked_for(name, tmp_path):
    loaded = loaded_after(f"import mlbackup\nassert callable(mlbackup.{name})", cwd=tmp_path)
    assert f"mlbackup.{mlbackup._LAZY[name]}" in loaded
    assert name in dir(mlbackup) and name in mlbackup.__all__


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="computed by hand on Linux")
@pytest.mark.parametrize("xdg", ["", "  ", "/x/cache"])
def test_the_lock_folder_is_in_the_cache_folder_platformdirs_names(monkeypatch, xdg):
    import platformdirs

    from mlbackup.name_lock import _user_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert _user_cache_dir() == Path(platformdirs.user_cache_dir("mlbackup"))


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_no_change_backup_or_a_small_restore_from_s3_loads_no_s3fs(
    tmp_path, s3_server, s3_bucket, command
):
    """s3fs, aiobotocore and aiohttp take a quarter second to import: a command whose
    requests all go straight (listings, reads, small writes) never loads them."""
    from mlbackup import open_target
    from mlbackup.testing.s3_server import DEFAULT_KEY, DEFAULT_SECRET

    source = tmp_path / "run"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"w" * 1000)
    url = f"s3://{s3_bucket}/runs"
    mlbackup.backup(source, target=open_target(url, **s3_server.storage_options()), name="run")
    argv = {
        "backup": ["backup", str(source), "--to", url, "--name", "run"],
        "restore": ["restore", "run", "--to", str(tmp_path / "back"), "--from", url],
    }[command] + ["-q", "-o", f"endpoint_url={s3_server.endpoint_url}"]
    code = f"from mlbackup.cli import main\nassert main({argv!r}) == 0"
    # A proxy in the environment turns the direct path off (see docs/backends/s3.md).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLBACKUP_", "AWS_")) and not k.lower().endswith("_proxy")
    }
    env.update(AWS_ACCESS_KEY_ID=DEFAULT_KEY, AWS_SECRET_ACCESS_KEY=DEFAULT_SECRET)
    loaded = loaded_after(code, cwd=tmp_path, env=env)
    assert [m for m in ("s3fs", "aiobotocore", "aiohttp", "fsspec") if m in loaded] == []
    if command == "restore":
        assert (tmp_path / "back" / "weights.bin").read_bytes() == b"w" * 1000
