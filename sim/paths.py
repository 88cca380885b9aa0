"""Where the shipped inputs are and where results go.

The shipped scenarios and experiments live at the top of the repository (``scenarios/``,
``experiments/``: the layout users know). A built wheel carries copies of them inside the
package (``sim/_shipped/scenarios``, ``sim/_shipped/experiments``; see ``pyproject.toml``), so
``govsim run default`` works from any directory after a plain ``pip install .``. In a source
checkout (editable install, or running from the tree) the top-level folders are used directly,
so an edit to a scenario file takes effect at once.

Results go to ``results/`` at the top of a source checkout, else to ``./results`` under the
current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = PACKAGE_DIR.parent


def source_root() -> Path | None:
    """The repository checkout this package runs from, or None for an installed wheel."""
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "scenarios").is_dir():
        return _SOURCE_ROOT
    return None


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``scenarios``, ``experiments`` or ``calibration`` files."""
    if kind not in ("scenarios", "experiments", "calibration"):
        raise ValueError(f"unknown kind of shipped input {kind!r}")
    root = source_root()
    if root is not None:
        return root / kind
    return Path(str(resources.files("sim") / "_shipped" / kind))


SCENARIO_DIR = shipped_dir("scenarios")
EXPERIMENT_DIR = shipped_dir("experiments")
CALIBRATION_DIR = shipped_dir("calibration")


def default_results_dir() -> Path:
    root = source_root()
    return (root if root is not None else Path.cwd()) / "results"


def model_source_files() -> list[Path]:
    """The source files whose code computes a run's numbers and rows: the model core
    (``sim/*.py``) and the batch layer (``sim/batch/*.py``). Analysis and the explorer only
    read results, so a change to them does not invalidate a batch."""
    files = [*PACKAGE_DIR.glob("*.py"), *(PACKAGE_DIR / "batch").glob("*.py")]
    return sorted(files, key=lambda p: p.relative_to(PACKAGE_DIR).as_posix())
