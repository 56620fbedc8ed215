"""Every Python block of README.md and docs/ runs, as a user would paste it, so the docs cannot
drift from the code.

Each block runs in a fresh namespace in an empty folder (its working directory), with the
default target set to a folder there (``MLBACKUP_TARGET``), after the blocks before it on the
same page (a page reads top to bottom: a later block may use what an earlier one made). A
block that cannot run here (it needs Colab, a real bucket or credentials) is marked in the
source by an HTML comment on the line before it, ``<!-- not run: why -->``, shown to nobody.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"(?P<mark><!-- not run: [^>]*-->\n)?```python\n(?P<code>.*?)```", re.S)


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, why it is not run) of each Python block of ``page``."""
    text = page.read_text()
    found = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("code"))
        mark = match.group("mark")
        why = mark[len("<!-- not run: ") : -len(" -->\n")] if mark else None
        found.append((line, match.group("code"), why))
    return found


PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES if blocks(p)]


def readers_own(tmp_path: Path) -> dict[str, object]:
    """The names a page leaves to its reader (their objective, their training step), as small
    as they can be, and ``URL``: the target a page says "your target URL" for."""

    def objective(trial):
        return (trial.suggest_float("x", -10, 10) - 2) ** 2

    def train_final_model(params, out):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "model.bin").write_text(repr(params))

    def save_checkpoint(out):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "weights.bin").write_bytes(b"w" * 1000)

    return {
        "__name__": "__main__",
        "objective": objective,
        "train_final_model": train_final_model,
        "train_step": lambda: None,
        "save_checkpoint": save_checkpoint,
        "URL": str(tmp_path / "backups"),
    }


@pytest.fixture
def logging_as_it_was():
    """A page may set up logging (as a user would): put it back for the tests after it."""
    import logging

    root, ours = logging.getLogger(), logging.getLogger("mlbackup")
    handlers, level = list(root.handlers), ours.level
    yield
    root.handlers[:] = handlers
    ours.setLevel(level)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGE_IDS)
@pytest.mark.usefixtures("logging_as_it_was")
def test_every_python_block_of_the_page_runs(page, tmp_path, monkeypatch, request):
    """In a project folder holding the outputs the pages name, with a Drive mount where Colab
    has one (``/content/drive`` maps to a folder of the test)."""
    project = tmp_path / "project"
    for folder in ("outputs/hpo", "outputs/checkpoints", "outputs/final_model"):
        (project / folder).mkdir(parents=True)
    (project / "outputs" / "checkpoints" / "step-100.pt").write_bytes(b"c" * 1000)
    (project / "outputs" / "final_model" / "model.onnx").write_bytes(b"m" * 1000)
    drive = tmp_path / "drive"
    (drive / "MyDrive").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLBACKUP_TARGET", str(tmp_path / "backups"))
    monkeypatch.setenv("MLBACKUP_SOURCE_ROOT", str(project))
    monkeypatch.setenv("MLBACKUP_DRIVE_MOUNT_ROOT", str(drive))
    namespace = readers_own(tmp_path)
    no_server = None
    if "DATABASE_URL" in (ROOT / page).read_text():  # a study on a real database server
        try:
            namespace["DATABASE_URL"] = request.getfixturevalue("postgres_database")
        except pytest.skip.Exception as skipped:  # no PostgreSQL here (CI makes it a failure)
            no_server = str(skipped)
    ran = 0
    for line, code, why in blocks(ROOT / page):
        if no_server and "DATABASE_URL" in code:
            why = no_server  # the page's other blocks still run
        if why is not None:
            assert why.strip(), f"{page}:{line}: say why the block is not run"
            continue
        code = code.replace("/content/drive", str(drive))
        try:
            exec(compile(code, f"{page}:{line}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{page}, the block at line {line}: {type(exc).__name__}: {exc}")
        ran += 1
    assert ran or all(why for _, _, why in blocks(ROOT / page))


def test_every_page_with_code_is_run():
    assert "README.md" in PAGE_IDS and len(PAGE_IDS) >= 8
