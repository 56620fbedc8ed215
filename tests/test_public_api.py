"""The public surface: exported, sorted, typed, documented."""

import inspect
from pathlib import Path

import mlbackup


def test_all_is_sorted_and_exported():
    assert mlbackup.__all__ == sorted(mlbackup.__all__)
    for name in mlbackup.__all__:
        assert hasattr(mlbackup, name), name


def test_fixed_names_exist():
    for name in (
        "open_target",
        "immediate_backup_if_needed",
        "backup",
        "restore",
        "restore_if_missing",
        "is_on_target",
        "is_drive_path",
    ):
        assert callable(getattr(mlbackup, name))
    assert callable(mlbackup.BackupTarget.list) and callable(mlbackup.BackupTarget.verify)


def test_public_callables_are_documented_and_annotated():
    for name in mlbackup.__all__:
        obj = getattr(mlbackup, name)
        if inspect.isfunction(obj):
            assert obj.__doc__ and "Example" in obj.__doc__, name
            hints = inspect.signature(obj)
            assert hints.return_annotation is not inspect.Signature.empty, name
        elif inspect.isclass(obj):
            assert obj.__doc__, name


def test_py_typed_ships():
    assert (Path(mlbackup.__file__).parent / "py.typed").is_file()
