"""Scenario comparison and reform attribution.

* a lever with no effect on an outcome: the paired interval covers zero;
* a lever with a large effect: the paired interval excludes zero;
* common random numbers make the paired interval narrower than the unpaired one;
* Shapley values add up to the total effect in every replication, and a lever with no effect
  gets zero;
* the interval helpers (sim.analysis.intervals) give the textbook t and Welch intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.analysis.compare import attribute, compare, shapley_weights
from sim.analysis.intervals import t_half_width, t_interval, welch_interval
from sim.batch import build_experiment, load, run_experiment

TINY = {"city.width": 12, "city.height": 12, "city.population": 5000, "admin.townships": 2,
        "admin.communities": 3, "grids.count": 9, "police.officers": 5, "volunteers.community": 1000,
        "volunteers.volunteer_police": 7, "volunteers.riders": 11}


def _run(tmp_path, name, scenarios, factors=None, reps=6, days=60):
    raw = {"name": name, "scenarios": scenarios, "factors": factors or {}, "replications": reps,
           "seed": 2024, "days": days, "warmup_days": 10, "outputs": {"timeseries": False}}
    exp = build_experiment(raw, name)
    return load(run_experiment(exp, out=tmp_path / name, workers=2), incidents=False)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    scen = [
        {"label": "base", "scenario": "default.yaml", "set": TINY},
        # drones are switched off, so their number changes nothing at all
        {"label": "no_effect", "scenario": "default.yaml", "set": {**TINY, "channels.drone.cells_per_day": 50}},
        # pre-reform paperwork: a large effect on workload
        {"label": "paperwork", "scenario": "default.yaml",
         "set": {**TINY, "paperwork.forms": 118, "paperwork.inspection_items": 100}},
        # more officers: a real but modest effect on many outcomes
        {"label": "officers", "scenario": "default.yaml", "set": {**TINY, "police.officers": 8}},
    ]
    return _run(tmp, "cmp", scen)


def test_no_effect_lever_interval_covers_zero(comparison):
    df = compare(comparison, baseline="base")
    row = df[(df.scenario == "no_effect") & (df.outcome == "true_resolution_rate")].iloc[0]
    assert row.diff_ci_low <= 0 <= row.diff_ci_high
    assert not row.distinguishable


def test_large_effect_lever_interval_excludes_zero(comparison):
    df = compare(comparison, baseline="base")
    row = df[(df.scenario == "paperwork") & (df.outcome == "worker_utilisation")].iloc[0]
    assert row.diff_ci_low > 0.2  # 118 forms + 100 items add ~3.6 h to an 8 h day
    assert row.distinguishable and row.p_value < 0.001


def test_pairing_narrows_the_interval(comparison):
    df = compare(comparison, baseline="base").set_index(["scenario", "outcome"])
    # outcomes driven by the shared streams (arrivals, reporting, the survey sample); rare
    # counts such as harm depend on which incidents are open, so pairing helps them little
    for outcome in ("incidents_occurred", "incidents_recorded", "survey_share_safe"):
        r = df.loc[("officers", outcome)]
        paired = r.diff_ci_high - r.diff_ci_low
        unpaired = r.unpaired_ci_high - r.unpaired_ci_low
        assert paired < unpaired, (outcome, paired, unpaired)


def test_compare_table_shape(comparison):
    df = compare(comparison)
    assert set(df.scenario) == {"base", "no_effect", "paperwork", "officers"}
    assert (df[df.scenario == "base"]["baseline"] == "base").all()
    assert df[df.scenario != "base"]["diff"].notna().all()
    with pytest.raises(ValueError, match="baseline"):
        compare(comparison, baseline="nope")


def test_shapley_weights_sum_to_one():
    for k in range(1, 7):
        w = shapley_weights(k)
        # each lever sees C(k-1, s) coalitions of size s
        from math import comb
        assert sum(comb(k - 1, s) * w[s] for s in range(k)) == pytest.approx(1.0)


@pytest.mark.slow
def test_attribution_efficiency_and_null_lever(tmp_path):
    factors = {
        "paperwork": [{"paperwork.forms": 118, "paperwork.inspection_items": 100},
                      {"paperwork.forms": 49, "paperwork.inspection_items": 26}],
        "snap": [{"channels.snap_report.enabled": False}, {"channels.snap_report.enabled": True}],
        "drones": [{"channels.drone.cells_per_day": 0}, {"channels.drone.cells_per_day": 60}],
    }
    res = _run(tmp_path, "levers", [{"label": "d", "scenario": "default.yaml", "set": TINY}],
               factors=factors, reps=4)
    att = attribute(res)  # levers read from the metadata
    for outcome, sub in att.groupby("outcome"):
        sub = sub.set_index("lever")
        total = sub.loc["reform effect", "value"]
        levers = sub[sub.kind == "lever"]
        assert set(levers.index) == {"paperwork", "snap", "drones"}
        assert levers["value"].sum() == pytest.approx(total, rel=1e-9, abs=1e-9), outcome
        assert sub.loc["drones", "value"] == pytest.approx(0.0, abs=1e-12), outcome
    util = att[(att.outcome == "worker_utilisation")].set_index("lever")
    assert util.loc["paperwork", "ci_high"] < -0.2  # the paperwork cut frees hours


def test_attribution_needs_every_combination(tmp_path):
    runs = pd.DataFrame({"scenario": "x", "replication": [0, 0, 0], "a": [0, 1, 0], "b": [0, 0, 1],
                         "status": "done", "harm": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="every on/off combination"):
        attribute(runs, levers=["a", "b"], outcomes=["harm"])
    full = pd.concat([runs, runs.iloc[[0]].assign(a=1, b=1, harm=7.0)])
    att = attribute(full, levers=["a", "b"], outcomes=["harm"]).set_index("lever")
    # v(0)=1, v(a)=2, v(b)=3, v(ab)=7: phi_a = (1 + 4)/2, phi_b = (2 + 5)/2
    assert att.loc["a", "value"] == pytest.approx(2.5)
    assert att.loc["b", "value"] == pytest.approx(3.5)
    assert np.isclose(att.loc["reform effect", "value"], 6.0)


# --------------------------------------------------------------------------- interval helpers
def test_t_interval_is_the_textbook_interval():
    from scipy import stats

    x = np.array([3.1, 2.4, 5.0, 4.2, np.nan, 3.3])
    v = x[~np.isnan(x)]
    half = stats.t.ppf(0.95, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    m, lo, hi = t_interval(x, conf=0.9)
    assert m == pytest.approx(v.mean()) and lo == pytest.approx(m - half)
    assert hi == pytest.approx(m + half)
    assert float(t_half_width(v.std(ddof=1), len(v), 0.9)) == pytest.approx(half)
    # pooled variances bring their own degrees of freedom
    assert float(t_half_width(1.0, 4, 0.95, df=9)) == pytest.approx(stats.t.ppf(0.975, 9) / 2)
    assert np.isnan(t_half_width(np.array([1.0]), np.array([1]), 0.95)).all()
    assert t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)  # no noise: a point
    assert np.isnan(t_interval([1.0])[1]) and np.isnan(t_interval([])[0])


def test_welch_interval_is_the_textbook_interval():
    from scipy import stats

    x, y = np.array([1.0, 2.5, 2.0, 3.0]), np.array([0.1, 0.4, 0.2, 1.5, 0.9])
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = stats.t.ppf(0.975, df) * np.sqrt(vx + vy)
    lo, hi = welch_interval(x, y)
    d = x.mean() - y.mean()
    assert lo == pytest.approx(d - half) and hi == pytest.approx(d + half)
    assert welch_interval([1.0, 1.0], [0.0, 0.0]) == (1.0, 1.0)
    assert all(np.isnan(welch_interval([1.0], [0.0, 1.0])))
