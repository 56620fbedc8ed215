"""The Colab notebook runs top to bottom, against a local folder instead of Drive."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "colab_quickstart.ipynb"


@pytest.mark.slow
def test_the_colab_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The install cell is for Colab: here mlbackup is the project itself, already installed.
    notebook.cells = [c for c in notebook.cells if "colab-only" not in c.metadata.get("tags", [])]
    monkeypatch.setenv("MLBACKUP_TARGET", str(tmp_path / "backups"))
    workdir = tmp_path / "runtime"
    workdir.mkdir()
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": workdir}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure

    outputs = {
        i: "".join(o.get("text", "") for o in cell.get("outputs", []))
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    }
    text = "\n".join(outputs.values())
    assert "ready" in text  # doctor found no problem
    assert "the study holds 10 trials before this run" in text  # resumed after the loss
    assert "restored" in text and '"x":' in text
    assert "outputs/hpo/study.db" in text and "committed" in text  # status
    assert (tmp_path / "backups" / "outputs" / "hpo" / "study.db").is_file()
