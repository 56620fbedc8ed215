import logging
import os

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test sees the developer's MLBACKUP_* settings, config files or data folder."""
    for key in list(os.environ):
        if key.startswith("MLBACKUP_"):
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv(
        "MLBACKUP_DRIVE_MOUNT_ROOT", str(tmp_path_factory.mktemp("no-drive") / "drive")
    )


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder as the current directory (the default source root)."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def target_dir(tmp_path):
    return tmp_path / "target"


pytest_plugins = ["mlbackup.testing.fixtures"]


@pytest.fixture(autouse=True)
def no_credential_in_logs(request, caplog):
    """Around every test that talks to a cloud test server: log everything, at DEBUG and from
    every library, and fail if a canary credential shows up in any line or traceback."""
    if not {"s3_server", "gcs_server"} & set(request.fixturenames):
        yield
        return
    from canary import assert_no_canary

    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        assert_no_canary(record.getMessage())
        assert_no_canary(record.exc_text or "")
    assert_no_canary(caplog.text)
