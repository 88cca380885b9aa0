"""govsim: an agent-based model of grid-based community governance on Mesa.

    from sim import GovernanceModel, load_scenario
    model = GovernanceModel("default", rng=1)
    model.run(365)
    model.summary()

The names below are imported on first use (a module ``__getattr__``, PEP 562), not when the
package is: ``import sim.cli`` must not pay for Mesa, SciPy and the model (about 3 s) when the
command is ``--help``, ``validate`` or ``scenarios``. ``tests/test_faults.py`` checks it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.model import GovernanceModel
    from sim.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["GovernanceModel", "Scenario", "ScenarioError", "__version__", "load_scenario"]
__version__ = "0.1.0"

# exported name -> the module that defines it
_LAZY = {
    "GovernanceModel": "sim.model",
    "Scenario": "sim.scenario",
    "ScenarioError": "sim.scenario",
    "load_scenario": "sim.scenario",
}


def __getattr__(name: str) -> Any:
    # Only the exports: any other name must raise AttributeError, so that
    # ``from sim import schema`` falls back to importing the submodule.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
