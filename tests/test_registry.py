"""Backends are plugins: entry points and run-time registration."""

import re

import pytest

from mlbackup import (
    ConfigError,
    UnknownBackendError,
    available_backends,
    open_target,
    register_backend,
)
from mlbackup.registry import _registered, get_backend_class
from mlbackup.testing.memory import MemoryBackend


@pytest.fixture(autouse=True)
def clean_registry():
    saved = dict(_registered)
    yield
    _registered.clear()
    _registered.update(saved)


def test_builtin_backends_come_from_entry_points():
    assert {"file", "local"} <= set(available_backends())
    assert open_target("memory://x").backend.url.startswith("memory://")  # served, not offered


def test_register_at_run_time_by_class_or_path():
    register_backend("mem2", MemoryBackend)
    register_backend("mem3", "mlbackup.testing.memory:MemoryBackend")
    with pytest.raises(ConfigError, match="memory URL"):
        open_target("mem3://bucket/x")  # the class is found, then checks its own URL
    assert {"mem2", "mem3"} <= set(available_backends())


def test_clobber_and_scheme_validation():
    register_backend("mine", MemoryBackend)
    with pytest.raises(ConfigError, match="clobber=True"):
        register_backend("mine", MemoryBackend)
    register_backend("mine", MemoryBackend, clobber=True)
    with pytest.raises(ConfigError, match="invalid backend scheme"):
        register_backend("Bad Scheme", MemoryBackend)


def test_broken_plugin_import_is_a_clear_error():
    register_backend("broken", "no_such_module:Backend")
    with pytest.raises(ConfigError, match="could not be imported"):
        open_target("broken://x")


def test_a_mistyped_scheme_gets_the_nearest_one_and_no_test_backend_is_offered():
    with pytest.raises(UnknownBackendError) as caught:
        open_target("gdrve://root/x")
    message = str(caught.value)
    assert "did you mean 'gdrive'" in message
    assert "memory" not in message.split("installed:")[1]
    assert "memory" not in available_backends()


def test_every_plugin_names_a_real_extra_for_its_client_library():
    """Each shipped plugin names the extra that installs its client (one place: the plugin's
    own needs_extra), and that extra exists; a missing client gets the pip command."""
    import re
    from pathlib import Path

    import tomllib

    root = Path(__file__).parents[1]
    extras = set(
        tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named = {
        m
        for f in (root / "backends").rglob("*.py")
        for m in re.findall(r'needs_extra\("(\w+)"', f.read_text())
    }
    assert named == {"s3", "gcs", "gdrive"}
    assert named <= extras, named - extras


@pytest.mark.parametrize(
    ("scheme", "client", "plugin"),
    [
        ("s3", "s3fs", "mlbackup_s3"),
        ("gs", "gcsfs", "mlbackup_gcs"),
        ("gdrive", "pydrive2", "mlbackup_gdrive"),
    ],
)
def test_a_missing_client_library_names_its_extra(monkeypatch, scheme, client, plugin):
    import sys

    monkeypatch.setitem(sys.modules, client, None)  # as on a machine without the extra
    for module in [m for m in sys.modules if m == plugin or m.startswith(plugin + ".")]:
        monkeypatch.delitem(sys.modules, module)
    extra = {"gs": "gcs"}.get(scheme, scheme)
    with pytest.raises(UnknownBackendError, match=re.escape(f'pip install "mlbackup[{extra}]"')):
        get_backend_class(scheme)


def test_the_fast_path_to_the_local_backend_agrees_with_its_entry_points():
    from importlib.metadata import entry_points

    from mlbackup.registry import _BUILTIN

    installed = {ep.name: ep.value for ep in entry_points(group="mlbackup.backends")}
    assert all(installed[scheme] == spec for scheme, spec in _BUILTIN.items())


def test_every_installed_backend_runs_the_contract_suite():
    """Each entry point's backend (aliases such as local and gcs share one) is opened by a
    class of tests/contract/, which runs the one contract suite over it."""
    import re
    from importlib.metadata import entry_points
    from pathlib import Path

    from mlbackup.registry import ENTRY_POINT_GROUP, get_backend_class

    contract = Path(__file__).with_name("contract")
    sources = "\n".join(p.read_text() for p in contract.glob("test_*.py"))
    assert "class Test" in sources and "BackendContractTests" in sources
    schemes = set(re.findall(r'f?"([a-z][a-z0-9+.-]*)://', sources)) | {"file"}
    covered = {get_backend_class(s) for s in schemes}
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    missing = sorted(s for s in installed if get_backend_class(s) not in covered)
    assert missing == []


def test_a_broken_mount_plugin_is_ignored_with_a_warning(monkeypatch, caplog, tmp_path):
    """A plugin of the mlbackup.mounts group that fails to import, or is not a Backend, must
    not break every immediate backup (each one asks the mounted stores about its path)."""
    import mlbackup.registry
    from mlbackup import immediate_backup_if_needed, is_on_mounted_store

    specs = ("no_such_plugin:Mount", "mlbackup.registry:register_backend")
    monkeypatch.setattr(mlbackup.registry, "_mount_specs", lambda: specs)
    mlbackup.registry._warn_once.cache_clear()
    out = tmp_path / "model.bin"
    out.write_bytes(b"weights")
    with caplog.at_level("WARNING", logger="mlbackup"):
        assert not is_on_mounted_store(out)
        result = immediate_backup_if_needed(out, target=tmp_path / "target")
    assert result.status.name == "COPIED"
    assert "no_such_plugin:Mount" in caplog.text and "is not a Backend subclass" in caplog.text
