"""The public Python API: construction, overrides, Mesa's batch_run, agents, people not agents."""

from __future__ import annotations

import mesa
import numpy as np
import pytest

from sim import GovernanceModel, ScenarioError
from sim.agents import GridWorker, PoliceOfficer, Resident, Volunteer

SMALL = {"city.width": 16, "city.height": 16, "city.population": 8000, "admin.communities": 4,
         "grids.count": 14, "police.officers": 8, "volunteers.community": 1600,
         "volunteers.riders": 20}


def test_batch_run_as_documented():
    rows = mesa.batch_run(GovernanceModel, parameters={"grids.count": [200, 400]}, rng=[1, 2],
                          max_steps=30, display_progress=False)
    assert len(rows) == 2 * 2  # by default Mesa keeps the last day of each run
    assert {r["Step"] for r in rows} == {30}
    rows = mesa.batch_run(GovernanceModel, parameters={"grids.count": [200, 400]}, rng=[1, 2],
                          max_steps=30, data_collection_period=1, display_progress=False)
    assert len(rows) == 2 * 2 * 30  # 2 settings x 2 seeds x 30 days, one row per day
    df = __import__("pandas").DataFrame(rows)
    assert set(df["grids.count"]) == {200, 400}
    assert set(df["Step"]) == set(range(1, 31))
    assert {"occurred", "closure_rate", "perceived_safety"} <= set(df.columns)
    # replication seeds give different runs; same seed and setting the same numbers
    a = df[(df["grids.count"] == 200) & (df["rng"] == 1)]["occurred"].to_numpy()
    b = df[(df["grids.count"] == 200) & (df["rng"] == 2)]["occurred"].to_numpy()
    assert not np.array_equal(a, b)


def test_overrides_and_bad_overrides():
    m = GovernanceModel(rng=1, **SMALL)
    assert m.city.n_grids == 14 and m.config.grids.count == 14
    with pytest.raises(ScenarioError):
        GovernanceModel(rng=1, **{"grids.count": -1})


def test_agents_exist_with_their_roles():
    m = GovernanceModel(rng=1, **SMALL)
    m.run(3)
    workers = m.agents_by_type[GridWorker]
    assert len(workers) == 14 * m.config.grid_workers.per_grid
    assert {w.grid for w in workers} == set(range(14))
    assert len(m.agents_by_type[PoliceOfficer]) == 8
    kinds = {v.kind for v in m.agents_by_type[Volunteer]}
    assert kinds == {"community", "volunteer_police", "rider"}
    w = next(iter(workers))
    assert 0 <= w.paperwork_hours <= w.hours_budget
    assert w.paperwork_hours + w.case_hours + w.patrol_hours == pytest.approx(w.hours_budget)
    # residents are created on demand and are views of the arrays
    assert Resident not in m.agents_by_type
    r = m.residents.agent(5)
    assert isinstance(r, Resident) and Resident in m.agents_by_type
    assert r.home_cell == m.residents.home[5]
    r.trust = 0.9
    assert m.residents.trust[5] == pytest.approx(0.9)
    assert m.residents.agent(5) is r


def test_counts_are_people_not_agents():
    """Halving the resident agents (scale 2) keeps incident volumes in people: the same
    arrival rates, only fewer agents to sample victims and survey respondents from."""
    one = GovernanceModel(rng=4, **SMALL)
    two = GovernanceModel(rng=4, **SMALL, **{"population.scale": 2.0})
    assert two.residents.n == pytest.approx(one.residents.n / 2, rel=0.05)
    one.run(60)
    two.run(60)
    occ1 = one.timeseries()["occurred"].sum()
    occ2 = two.timeseries()["occurred"].sum()
    # Poisson totals: |difference| within 4 sd of the difference of two independent counts
    assert abs(occ1 - occ2) < 4 * np.sqrt(occ1 + occ2)
    assert one.summary()["population"] == two.summary()["population"] == 8000


def test_space_is_a_mesa_discrete_space_with_property_layers():
    m = GovernanceModel(rng=1, **SMALL)
    space = m.space
    assert len(space._cells) == 16 * 16
    pop = space.population.data  # PropertyLayer, indexed [x, y]
    assert pop.sum() == 8000
    x, y = 3, 5
    assert pop[x, y] == m.city.population[y * 16 + x]
