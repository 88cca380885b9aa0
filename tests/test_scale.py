"""Results independent of ``population.scale`` (issue 10, item 9).

A resident agent stands for ``scale`` people, and events arise from people: an agent meets
about ``scale`` times the victimisations and fed-back reports of one person. Each reaches the
agent's own state with probability agents / people of its cell (``ResidentPopulation.
represented``), so that every agent lives one person's history. Checked exactly on the
thinning itself, then on the default scenario at scale 1 and 10 with paired seeds: surveyed
share, windowed closure, the change in mean trust and in mean perceived safety agree within
a paired t interval from the replication spread.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sim.agents import ResidentPopulation
from sim.city import city_from_scenario
from sim.safety import SafetyModel
from sim.scenario import load_scenario

SMALL = {"city.width": 20, "city.height": 20, "city.population": 20_000,
         "admin.townships": 2, "admin.communities": 4, "grids.count": 30}


def _population(scale: float, seed: int = 9):
    cfg = load_scenario(None, {**SMALL, "population.scale": scale})
    city = city_from_scenario(cfg, np.random.default_rng(7), np.random.default_rng(8))
    return cfg, city, ResidentPopulation(cfg, city.population, np.random.default_rng(seed))


def test_at_scale_one_every_event_reaches_its_agent_without_a_draw():
    _, _, res = _population(1.0)
    idx = np.arange(0, res.n, 7)
    assert res.represented(idx, 3).all()
    assert res._thin_day is None  # no generator made: scale-1 runs draw nothing extra


def test_at_scale_ten_an_event_reaches_its_agent_with_probability_agents_over_people():
    _, city, res = _population(10.0)
    assert res.n == pytest.approx(20_000 / 10, rel=0.05)
    # every agent meets 50 events: the kept count is binomial with p = agents / people
    idx = np.repeat(np.arange(res.n), 50)
    kept = res.represented(idx, 5)
    p = res.per_cell[res.home[idx]] / city.population[res.home[idx]]
    assert 0.09 < p.mean() < 0.11
    z = (kept.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
    assert abs(z) < 4
    # the draws are a function of the seed and the day, not of earlier calls
    again = _population(10.0)[2]
    again.represented(idx[:10], 4)  # a different day first
    np.testing.assert_array_equal(again.represented(idx, 5), kept)


def test_victimisation_at_scale_ten_drops_safety_of_the_represented_victims_only():
    cfg, city, res = _population(10.0)
    s = SafetyModel(cfg.safety, city, res)
    res.safety[:] = 0.9
    victims = np.arange(res.n)
    s.victimise(victims, 7)
    hit = np.flatnonzero(res.safety < 0.9)
    expected = _population(10.0)[2].represented(victims, 7)
    np.testing.assert_array_equal(hit, victims[expected])
    np.testing.assert_allclose(res.safety[hit], 0.9 - cfg.safety.victim_drop, atol=1e-6)
    assert (res.victimisations == 1).all()  # the counters record every event


def test_people_without_an_agent_report_at_the_mean_propensity():
    _, city, res = _population(100.0)
    empty = (res.per_cell == 0) & (city.population > 0)
    assert empty.any()
    prop = res.cell_propensity()
    np.testing.assert_allclose(prop[empty], res.base.astype(np.float64).mean(), rtol=1e-6)
    assert (prop[city.population == 0] == 0).all()


# --------------------------------------------------------------------------- whole model
SEEDS = (1, 2, 3, 4, 5)
DAYS, WARMUP = 90, 30  # two complete months after the warm-up, two survey waves
# the default scenario on half its population (50,000 people: 5,000 agents at scale 10), so
# that ten runs stay short
CITY = {"city.population": 50_000}


@pytest.fixture(scope="module")
def paired_runs():
    """Per seed and scale: surveyed share (with its counts), windowed closure, and the change
    in mean trust and mean perceived safety over the run (the change, because the initial
    draw of a 5,000-agent population has its own sampling noise that scale 10 does not
    bias)."""
    from sim import GovernanceModel

    out = {1: [], 10: []}
    for seed in SEEDS:
        for scale in (1, 10):
            m = GovernanceModel("default", rng=seed, **CITY, **{"population.scale": scale})
            trust0 = float(m.residents.trust.mean())
            safety0 = float(m.residents.safety.mean())
            m.run(DAYS)
            s = m.summary(WARMUP)
            out[scale].append({
                "survey_share_safe": s["survey_share_safe"],
                "survey_yes": s["survey_share_safe"] * s["survey_n"], "survey_n": s["survey_n"],
                "closure_rate": s["closure_rate"],
                "trust_change": s["trust_mean"] - trust0,
                "safety_change": s["perceived_safety_mean"] - safety0,
            })
    return out


@pytest.mark.parametrize("outcome", ["survey_share_safe", "closure_rate", "trust_change",
                                     "safety_change"])
def test_scale_one_and_ten_agree_within_the_replication_interval(paired_runs, outcome):
    """Paired difference (scale 10 - scale 1) over the seeds: its mean lies within the 99%
    paired t interval, sd(d) / sqrt(k) x t(0.995, k - 1). For the survey the standard error is
    at least the binomial one of the pooled answers (all seeds' shares can be equal)."""
    a = np.array([r[outcome] for r in paired_runs[1]])
    b = np.array([r[outcome] for r in paired_runs[10]])
    d = b - a
    k = len(d)
    se = d.std(ddof=1) / np.sqrt(k)
    if outcome == "survey_share_safe":
        n1 = sum(r["survey_n"] for r in paired_runs[1])
        n10 = sum(r["survey_n"] for r in paired_runs[10])
        p1 = sum(r["survey_yes"] for r in paired_runs[1]) / n1
        p10 = sum(r["survey_yes"] for r in paired_runs[10]) / n10
        se = max(se, np.sqrt(p1 * (1 - p1) / n1 + p10 * (1 - p10) / n10))
    tol = stats.t.ppf(0.995, k - 1) * se
    assert abs(d.mean()) <= tol, (outcome, d.mean(), tol, a, b)
