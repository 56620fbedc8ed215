"""The public surface: exported, sorted, typed, documented."""

import inspect
import re
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
        "is_on_mounted_store",
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


def test_no_docstring_carries_a_raw_sphinx_role():
    """The docs toolchain (mkdocstrings) renders ``[`name`][mlbackup.name]`` as a link and a
    Sphinx role as raw text: write cross-references the first way."""
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    role = re.compile(r":(class|func|meth|data|mod|attr|exc|obj):`")
    found = [
        f"{path.relative_to(root)}:{n}"
        for folder in ("src", "backends")
        for path in (root / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if role.search(line)
    ]
    assert found == []


def test_the_core_names_no_store_but_where_it_documents_the_hooks():
    """Drive lives in its plugins: the core (the test kit aside) imports no backend by name,
    and mentions Drive only where backend.py documents the hooks a store answers."""
    core = Path(mlbackup.__file__).parent
    modules = [f for f in core.rglob("*.py") if "testing" not in f.relative_to(core).parts]
    importing = [
        f.name for f in modules if re.search(r"^\s*(from|import) mlbackup_", f.read_text(), re.M)
    ]
    naming_drive = [f.name for f in modules if re.search(r"drive(?![nr])", f.read_text(), re.I)]
    assert importing == []
    assert naming_drive == ["backend.py"]
