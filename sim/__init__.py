"""govsim: an agent-based model of grid-based community governance on Mesa.

    from sim import GovernanceModel, load_scenario
    model = GovernanceModel("default", rng=1)
    model.run(365)
    model.summary()
"""

from sim.model import GovernanceModel
from sim.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["GovernanceModel", "Scenario", "ScenarioError", "load_scenario", "__version__"]
__version__ = "0.1.0"
