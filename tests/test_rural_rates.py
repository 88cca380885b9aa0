"""Urban and rural incident rates (issue 10, item 11).

``incidents.<cat>.rural_rate_factor`` multiplies a category's base rate in rural cells
(``City.urban`` False). Checked exactly on ``arrival_rates`` and, by Poisson confidence
intervals, on the arrivals drawn in an all-rural and an all-urban city.
"""

from __future__ import annotations

import numpy as np

from sim.city import city_from_scenario
from sim.codes import CATEGORIES
from sim.incidents import CategoryArrays, arrival_rates, background_arrivals
from sim.scenario import load_scenario

SMALL = {"city.width": 20, "city.height": 20, "city.population": 20_000,
         "admin.townships": 2, "admin.communities": 4, "grids.count": 30}
Z4 = 3.89


def _city(**over):
    cfg = load_scenario(None, {**SMALL, **over})
    city = city_from_scenario(cfg, np.random.default_rng(7), np.random.default_rng(8))
    return cfg, city, CategoryArrays.from_scenario(cfg.incidents)


def test_rural_cells_take_the_rural_factor_exactly():
    _cfg, city, cp = _city()
    assert city.urban.any() and (~city.urban).any()
    ones = np.ones(city.n_cells)
    zero = np.zeros(city.n_cells)
    urban = arrival_rates(city.population, city.risk, cp, ones, zero, urban=np.ones(city.n_cells, bool))
    rural = arrival_rates(city.population, city.risk, cp, ones, zero, urban=np.zeros(city.n_cells, bool))
    mixed = arrival_rates(city.population, city.risk, cp, ones, zero, urban=city.urban)
    np.testing.assert_allclose(rural, urban * cp.rural_rate_factor[:, None])
    np.testing.assert_allclose(mixed[:, city.urban], urban[:, city.urban])
    np.testing.assert_allclose(mixed[:, ~city.urban], rural[:, ~city.urban])
    # without land use every cell is at the urban rate (the anchor)
    np.testing.assert_allclose(arrival_rates(city.population, city.risk, cp, ones, zero), urban)
    assert not np.allclose(cp.rural_rate_factor, 1.0)  # the defaults distinguish the two


def test_arrivals_in_all_rural_and_all_urban_cities_match_their_rates():
    days = 60
    totals = {}
    for label, dens in (("urban", 0.0), ("rural", 1e12)):
        _cfg, city, cp = _city(**{"city.urban_density_per_km2": dens})
        assert city.urban.all() if label == "urban" else not city.urban.any()
        rate = arrival_rates(city.population, city.risk, cp, np.ones(city.n_cells),
                             np.zeros(city.n_cells), urban=city.urban)
        counts = np.zeros(len(CATEGORIES))
        for d in range(days):
            cat, _, _ = background_arrivals(rate, d, np.random.default_rng([11, d]))
            counts += np.bincount(cat, minlength=len(CATEGORIES))
        factor = 1.0 if label == "urban" else cp.rural_rate_factor
        # population x risk sums to the population (risk has population-weighted mean 1)
        expect = cp.base_rate * factor * city.population.sum() / 1000.0 / 365.0 * days
        np.testing.assert_allclose(rate.sum(axis=1) * days, expect, rtol=1e-9)
        assert (np.abs(counts - expect) < Z4 * np.sqrt(expect)).all(), (label, counts, expect)
        totals[label] = counts
    # rural / urban counts against the factor, by the delta method on the Poisson counts
    ratio = totals["rural"] / totals["urban"]
    se = cp.rural_rate_factor * np.sqrt(1 / totals["rural"] + 1 / totals["urban"])
    assert (np.abs(ratio - cp.rural_rate_factor) < Z4 * se).all(), (ratio, cp.rural_rate_factor)


def test_the_model_uses_land_use_for_its_arrivals():
    """An all-rural district against an all-urban one, without deterrence, disorder or
    near-repeats: each category's incidents over 30 days match base rate x factor (Poisson CI).
    Needs model._arrivals to pass ``urban=city.urban`` to arrival_rates."""
    from sim.model import GovernanceModel

    over = {"dynamics.deterrence_per_visit": 0.0, "city.urban_density_per_km2": 1e12,
            **{f"incidents.{c}.disorder_sensitivity": 0.0 for c in CATEGORIES},
            **{f"incidents.{c}.near_repeat_branching": 0.0 for c in CATEGORIES},
            **{f"incidents.{c}.escalation_hazard": 0.0 for c in CATEGORIES}}
    m = GovernanceModel(None, rng=5, **SMALL, **over)
    days = 30
    m.run(days)
    cp = m.cat
    counts = np.bincount(m.incidents.category[: m.incidents.n], minlength=len(CATEGORIES))
    expect = cp.base_rate * cp.rural_rate_factor * m.city.population.sum() / 1000.0 / 365.0 * days
    assert (np.abs(counts - expect) < Z4 * np.sqrt(expect)).all(), (counts, expect)
