"""Small shared helpers for the model-level tests (arrivals, queue, life cycle, CRN, levers).

Exposed as fixtures so that test modules need not import this file.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.scenario import CATEGORIES

# A small city: 400 cells, 20,000 people; one county, two townships, four communities.
SMALL_CITY = {
    "city.width": 20,
    "city.height": 20,
    "city.population": 20_000,
    "admin.townships": 2,
    "admin.communities": 4,
    "grids.count": 30,
}


def _only(category: str, per_day: float, population: int = SMALL_CITY["city.population"],
          **cat_overrides) -> dict:
    """Overrides under which only ``category`` occurs, at ``per_day`` expected background
    incidents per day for the whole city (base rate is per 1000 residents per year), with no
    near repeats, no deterrence, no broken-windows feedback and the urban rate in rural cells
    too unless overridden."""
    ov = {f"incidents.{c}.base_rate": 0.0 for c in CATEGORIES if c != category}
    p = f"incidents.{category}."
    ov[p + "base_rate"] = per_day * 365.0 * 1000.0 / population
    ov[p + "near_repeat_branching"] = 0.0
    ov[p + "deterrable"] = False
    ov[p + "disorder_sensitivity"] = 0.0
    ov[p + "rural_rate_factor"] = 1.0  # the same rate in every cell, so the city total is known
    ov["dynamics.deterrence_per_visit"] = 0.0
    for k, v in cat_overrides.items():
        ov[p + k] = v
    return ov


def _day_added(model) -> np.ndarray:
    """Day index on which each incident (row of the log) was appended: the log is append-only
    and the daily ``occurred`` column counts the incidents appended that day."""
    per_day = model.timeseries()["occurred"].to_numpy().astype(np.int64)
    assert per_day.sum() == model.incidents.n
    return np.repeat(np.arange(len(per_day)), per_day)


@pytest.fixture(scope="session")
def small_city() -> dict:
    """Overrides for a small city (copy before changing)."""
    return dict(SMALL_CITY)


@pytest.fixture(scope="session")
def only_category():
    return _only


@pytest.fixture(scope="session")
def day_added():
    return _day_added


@pytest.fixture(scope="session")
def tiny_calibration_dir(tmp_path_factory):
    """A finished calibration of the tiny problem (tests/calibration_parts.py), run once per
    test process (about 30 s)."""
    from calibration_parts import run_tiny

    return run_tiny(tmp_path_factory.mktemp("calibration") / "tiny")
