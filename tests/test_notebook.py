"""demo.ipynb runs top to bottom, headless, against a checkpoint trained briefly on shapes."""
import os

import pytest

import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    folder = str(tmp_path / "run")
    assert train.main(["--dataset", "shapes", "--batch-size", "1", "--workers", "0", "--no-batch-norm",
                       "--max-iter", "1", "--eval-every", "0", "--no-final-eval", "--no-tensorboard",
                       "--checkpoint-every", "0", "--shapes-test-images", "4", "--output", folder]) == 0
    monkeypatch.setenv("SSD_DEMO_CHECKPOINT", os.path.join(folder, "final.pth"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(os.path.join(ROOT, "demo.ipynb"), as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("SSD300, 5 classes" in o.get("text", "") for o in outputs)
