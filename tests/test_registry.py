"""Backends are plugins: entry points and run-time registration."""

import pytest

from mlbackup import ConfigError, available_backends, open_target, register_backend
from mlbackup.registry import _registered
from mlbackup.testing.memory import MemoryBackend


@pytest.fixture(autouse=True)
def clean_registry():
    saved = dict(_registered)
    yield
    _registered.clear()
    _registered.update(saved)


def test_builtin_backends_come_from_entry_points():
    assert {"file", "local", "memory"} <= set(available_backends())


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
