"""The example notebooks run top to bottom, show what they promise, and are committed without outputs;
``vaekit.notebook.require`` names what is missing in one line.

Each notebook runs in a fresh kernel of this interpreter (a kernelspec written for it, first on
JUPYTER_PATH, so a ``python3`` kernel installed elsewhere on the machine is never picked), with a
temporary folder as its working directory, so nothing is written into the checkout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import error_of
from vaekit import notebook
from vaekit.notebook import require

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds: a cell that hangs fails the test instead of the suite

# notebook -> (text the Run's HTML must hold, least number of image/png outputs)
EXPECTED = {"quickstart": ("digits", 5), "own_images": ("folder:", 8)}


def test_both_notebooks_are_there():
    assert {p.stem for p in NOTEBOOKS} == set(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(path: Path):
    """Outputs stay out of git: every code cell as a fresh notebook has it (clear them before a commit)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert code
    for i, cell in enumerate(code):
        assert cell["outputs"] == [] and cell["execution_count"] is None, f"code cell {i} has outputs"
    assert "widgets" not in nb["metadata"], "widget state is an output too"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch) -> str:
    """A ``python3`` kernelspec that runs this interpreter, found before any other."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from ipykernel.kernelspec import write_kernel_spec

    kernels = tmp_path / "jupyter" / "kernels"
    write_kernel_spec(kernels / "python3")
    spec = json.loads((kernels / "python3" / "kernel.json").read_text(encoding="utf-8"))
    assert spec["argv"][0] == sys.executable
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own inline backend, as in Jupyter
    return "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, kernel: str, tmp_path: Path):
    import nbclient
    import nbformat

    pytest.importorskip("ipywidgets")
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    nb = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name=kernel, resources={"metadata": {"path": str(work)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    seconds = time.perf_counter() - start
    print(f"\n{path.name}: executed in {seconds:.1f} s")

    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    wanted, least_images = EXPECTED[path.stem]
    runs = [h for h in html if "vaekit run" in h]
    assert runs and wanted in runs[0] and "data:image/png;base64," in runs[0], "the Run shows itself"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= least_images
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), (
        "the progress bars are widgets in a notebook"
    )
    assert (work / "runs").is_dir()  # the notebook's runs went into its working folder, not the checkout


# ------------------------------------------------------------------------------------ require()
def test_require_names_the_missing_modules_and_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "fastapi", None)
    message = error_of(require, "notebook", "serve")
    assert message == "this notebook needs ipywidgets, fastapi: pip install 'vaekit[notebook,serve]'"


def test_require_passes_when_everything_imports(monkeypatch):
    monkeypatch.setitem(notebook.EXTRAS, "plain", ("json", "pathlib"))
    require("plain")
    assert notebook.missing("plain") == []


def test_require_refuses_an_unknown_extra():
    assert "unknown extra gpu" in error_of(require, "gpu")
