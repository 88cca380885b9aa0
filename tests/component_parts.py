"""A small city's model components built without a model, shared by the component tests
(``test_components``, ``test_recording``, ``test_deliberation``).

Imported as a plain module: ``tests/`` is on ``sys.path`` under pytest's rootdir.
"""

from __future__ import annotations

import numpy as np

from sim.agents import ResidentPopulation
from sim.channels import Channels
from sim.city import city_from_scenario
from sim.incidents import CategoryArrays
from sim.patrols import DayVisits
from sim.scenario import load_scenario

# 400 cells, 20,000 people; one county, two townships, four communities, 30 grids.
SMALL = {"city.width": 20, "city.height": 20, "city.population": 20_000,
         "admin.townships": 2, "admin.communities": 4, "grids.count": 30}


def parts(**overrides):
    """(scenario, city, residents, category arrays, channels) of ``SMALL`` with overrides, on
    fixed seeds."""
    cfg = load_scenario(None, {**SMALL, **overrides})
    city = city_from_scenario(cfg, np.random.default_rng(7), np.random.default_rng(8))
    res = ResidentPopulation(cfg, city.population, np.random.default_rng(9))
    cat = CategoryArrays.from_scenario(cfg.incidents)
    return cfg, city, res, cat, Channels(cfg, city, cat, res)


def no_visits(n: int) -> DayVisits:
    """A day on which nobody visits any of ``n`` cells."""
    z = np.zeros(n)
    return DayVisits(z, z.copy(), z.copy(), z.copy(), np.zeros(n, bool), np.zeros(n, bool))
