"""The analyst notebooks run top to bottom without an error, and are committed without outputs.

Each notebook is executed with nbclient in a fresh ``python3`` kernel (ipykernel of the
interpreter running the tests) inside a temporary directory, so nothing is written into the
repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_quickstart.ipynb", "02_compare_scenarios.ipynb", "03_sensitivity.ipynb",
            "04_calibration.ipynb"]

nbformat = pytest.importorskip("nbformat", reason="install the test extra: pip install -e '.[test]'")


def test_the_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS][: len(EXPECTED)] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_errors(path, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="install the test extra: pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="install the test extra: pip install -e '.[test]'")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on any error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
    assert images >= 2, "the notebook drew fewer figures than expected"
    # nothing was written beside the notebooks
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in NOTEBOOKS)
