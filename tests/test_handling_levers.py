"""Handling mechanisms that reform levers act on, checked against their analytic laws.

* Hand-offs before fusion: a joint case passes 1 + B times, B ~ Geometric (bounce p_b), each
  pass an exponential delay of mean D and a loss with p_d; so the mean extra dispatch delay is
  D / (1 - p_b) and the share lost is 1 - E[(1 - p_d)^(1+B)] =
  1 - (1 - p_d)(1 - p_b) / (1 - p_b (1 - p_d)). Fusion (shared intake) has none.
* The top tier closes what it cannot solve with an explanation (closed on paper), never
  abandons it; below it a failure is passed up with ``escalate_prob``.
* A paper closure is reopened by complaint only when a resident reported the case.
* Absolute staff per tier sets the pools' servers; social workers take the welfare cases.
* Overloaded grid workers carry case hours over and delay their grid's community cases.
* Staff and grids are separate levers: a city total of workers is kept whatever the grid
  count.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.city import city_from_scenario
from sim.codes import Category, Handler, State
from sim.dispatch import Dispatcher
from sim.incidents import CategoryArrays, IncidentLog
from sim.patrols import Patrols
from sim.scenario import load_scenario

SMALL = {"city.width": 20, "city.height": 20, "city.population": 20_000,
         "admin.townships": 2, "admin.communities": 4, "grids.count": 30}
Z = 4.0  # two-sided ~1e-4: a correct mechanism fails about once in 16,000 runs


def _setup(**over):
    cfg = load_scenario(None, {**SMALL, **over})
    city = city_from_scenario(cfg, np.random.default_rng(1), np.random.default_rng(2))
    cat = CategoryArrays.from_scenario(cfg.incidents)
    log = IncidentLog()
    d = Dispatcher(cfg, city, cat, log, party_share_rel=np.ones(city.n_cells),
                   response_travel_days=np.zeros(city.n_cells))
    return cfg, city, log, d


def _cases(log, category: str, n: int, t: float = 0.0, reporter: int = -1) -> np.ndarray:
    ids = log.add(np.full(n, Category[category.upper()], np.int8), np.zeros(n, np.int64),
                  np.full(n, t), np.ones(n, np.float32))
    log.state[ids] = State.KNOWN
    log.t_reported[ids] = t
    log.reporter[ids] = reporter
    return ids


# --------------------------------------------------------------------------- hand-offs
@pytest.mark.parametrize("bounce,drop,delay_h", [(0.0, 0.0, 24.0), (0.3, 0.05, 12.0)])
def test_handoffs_follow_their_geometric_law(bounce, drop, delay_h):
    n = 20_000
    cfg, city, log, d = _setup(**{"fusion.enabled": False, "handling.triage_delay_hours": 0.0,
                                  "handling.handoff.bounce_prob": bounce,
                                  "handling.handoff.drop_prob": drop,
                                  "handling.handoff.delay_hours": delay_h,
                                  "handling.reopen_prob": 0.0})
    ids = _cases(log, "dispute", n)
    d.triage(ids, np.zeros(n), np.zeros(n, bool), np.random.default_rng(3), np.random.default_rng(4))
    extra_h = (log.t_dispatched[ids] - log.t_triaged[ids]) * 24
    mean_passes = 1 / (1 - bounce)
    sd_passes = math.sqrt(bounce) / (1 - bounce)
    assert log.handoffs[ids].mean() == pytest.approx(mean_passes, abs=Z * sd_passes / math.sqrt(n) + 1e-12)
    # extra delay: a sum of (1 + B) exponentials, mean D / (1 - p_b); sd from the compound law
    m = delay_h * mean_passes
    # compound sum: Var = E[N] Var[X] + Var[N] E[X]^2 = D^2 (E[N] + Var[N]), Var[N] = p_b/(1-p_b)^2
    sd = delay_h * math.sqrt(mean_passes + bounce / (1 - bounce) ** 2)
    assert extra_h.mean() == pytest.approx(m, abs=Z * sd / math.sqrt(n))
    lost_share = 1 - (1 - drop) * (1 - bounce) / (1 - bounce * (1 - drop))
    in_pools = sum(p.queue_length + p.busy + p.pending for p in d.pools)
    lost = n - in_pools
    assert lost / n == pytest.approx(lost_share, abs=Z * math.sqrt(max(lost_share * (1 - lost_share), 1e-9) / n) + 1e-12)


def test_fusion_has_no_handoffs_and_non_joint_cases_never_have_them():
    n = 500
    cfg, city, log, d = _setup(**{"fusion.enabled": True})
    ids = _cases(log, "dispute", n)
    d.triage(ids, np.zeros(n), np.zeros(n, bool), np.random.default_rng(3), np.random.default_rng(4))
    assert (log.handoffs[ids] == 0).all()
    np.testing.assert_array_equal(log.t_dispatched[ids], log.t_triaged[ids])
    cfg, city, log, d = _setup(**{"fusion.enabled": False})
    ids = _cases(log, "infrastructure", n)  # not joint
    d.triage(ids, np.zeros(n), np.zeros(n, bool), np.random.default_rng(3), np.random.default_rng(4))
    assert (log.handoffs[ids] == 0).all()


def test_a_dropped_case_is_chased_by_its_reporter_and_triaged_again():
    n = 2000
    cfg, city, log, d = _setup(**{"fusion.enabled": False, "handling.handoff.drop_prob": 1.0,
                                  "handling.handoff.bounce_prob": 0.0, "handling.reopen_prob": 1.0})
    ids = _cases(log, "dispute", n, reporter=0)
    d.triage(ids, np.zeros(n), np.zeros(n, bool), np.random.default_rng(3), np.random.default_rng(4))
    assert sum(p.queue_length + p.busy + p.pending for p in d.pools) == 0
    assert len(d.pending_chase_ids) == n and (d.pending_chase_t >= 1.0).all()
    got, t = d.due_chases(1e9)
    assert sorted(got.tolist()) == sorted(ids.tolist()) and (np.diff(t) >= 0).all()


# --------------------------------------------------------------------------- outcomes
def _run_until_settled(d, log, ids, days=400):
    for day in range(1, days):
        d.advance(float(day), np.random.default_rng(day), np.random.default_rng(1000 + day))
        if not (log.state[ids] == State.KNOWN).any():
            return


def test_the_top_tier_explains_what_it_cannot_solve_and_never_abandons_it():
    n = 50
    cfg, city, log, d = _setup(**{"incidents.infrastructure.success_prob": 0.0,
                                  "incidents.infrastructure.paper_close_prob": 0.0,
                                  "incidents.infrastructure.route": "county",
                                  "handling.escalate_prob": 1.0, "tiers.enabled": False,
                                  "handling.reopen_prob": 0.0})
    ids = _cases(log, "infrastructure", n)
    d.triage(ids, np.zeros(n), np.zeros(n, bool), np.random.default_rng(3))
    _run_until_settled(d, log, ids)
    assert (log.state[ids] == State.PAPER_CLOSED).all()
    assert (log.handler[ids] == Handler.CITY).all()
    assert not np.isnan(log.t_closed[ids]).any() and np.isnan(log.t_resolved[ids]).all()


def test_below_the_top_a_failure_is_passed_up_with_escalate_prob():
    n = 4000
    p_up = 0.3
    cfg, city, log, d = _setup(**{"incidents.infrastructure.success_prob": 0.0,
                                  "incidents.infrastructure.paper_close_prob": 0.0,
                                  "incidents.infrastructure.route": "township",
                                  "handling.escalate_prob": p_up, "tiers.enabled": False,
                                  "handling.max_attempts": 20})
    ids = _cases(log, "infrastructure", n)
    d.triage(ids, np.zeros(n), np.zeros(n, bool), np.random.default_rng(3))
    _run_until_settled(d, log, ids, days=2000)
    # township -> county (p_up) -> city (p_up) -> explained at the top
    failed_at_township = (log.escalations[ids] == 0).mean()
    assert failed_at_township == pytest.approx(1 - p_up, abs=Z * math.sqrt(p_up * (1 - p_up) / n))
    assert ((log.state[ids] == State.FAILED) == (log.handler[ids] != Handler.CITY)).all()


def test_paper_closures_of_staff_found_cases_are_not_reopened_by_complaint():
    n = 1000
    cfg, city, log, d = _setup(**{"incidents.infrastructure.success_prob": 0.0,
                                  "incidents.infrastructure.paper_close_prob": 1.0,
                                  "incidents.infrastructure.route": "township",
                                  "handling.reopen_prob": 1.0, "tiers.enabled": False})
    staff = _cases(log, "infrastructure", n, reporter=-1)
    resident = _cases(log, "infrastructure", n, reporter=7)
    ids = np.concatenate([staff, resident])
    d.triage(ids, np.zeros(2 * n), np.zeros(2 * n, bool), np.random.default_rng(3))
    _run_until_settled(d, log, ids, days=3000)
    assert (log.state[ids] == State.PAPER_CLOSED).all()
    pending = set(d.pending_reopen_ids.tolist())
    assert pending == set(resident.tolist())


# --------------------------------------------------------------------------- capacity levers
def test_absolute_staff_sets_the_tier_servers():
    cfg, city, log, d = _setup(**{"handling.township.staff": 7, "handling.county.staff": 0})
    lo, hi = d.pool_range["township"]
    assert sum(p.servers for p in d.pools[lo:hi]) == pytest.approx(7, abs=city.n_townships)
    lo, hi = d.pool_range["county"]
    assert sum(p.servers for p in d.pools[lo:hi]) == 0


def test_social_workers_take_welfare_cases_with_their_capacity():
    cfg, city, log, d = _setup(**{"handling.social_work.enabled": True,
                                  "handling.social_work.workers": 40,
                                  "handling.social_work.cases_per_worker": 1.5})
    lo, hi = d.pool_range["social_work"]
    assert sum(p.servers for p in d.pools[lo:hi]) == pytest.approx(60, abs=city.n_townships)
    ids = _cases(log, "welfare", 10)
    d.triage(ids, np.zeros(10), np.zeros(10, bool), np.random.default_rng(3))
    assert (log.handler[ids] == Handler.SOCIAL_WORK).all()
    cfg, city, log, d = _setup(**{"handling.social_work.enabled": False})
    ids = _cases(log, "welfare", 10)
    d.triage(ids, np.zeros(10), np.zeros(10, bool), np.random.default_rng(3))
    assert (log.handler[ids] == Handler.COMMUNITY).all()


def test_overloaded_workers_carry_case_hours_over_and_delay_community_cases():
    cfg = load_scenario(None, SMALL)
    city = city_from_scenario(cfg, np.random.default_rng(1), np.random.default_rng(2))
    p = Patrols(cfg, city)
    gw = cfg.grid_workers
    free = gw.hours_per_day - p.paper_h_per_worker
    case = np.full(city.n_grids, 3 * free)
    left = p.plan_workers(0, case)
    np.testing.assert_allclose(left, case - free)
    np.testing.assert_allclose(p.case_delay_days_grid, (case - free) / free)
    assert (p.worker_patrol_h_grid == 0).all()
    light = p.plan_workers(1, np.zeros(city.n_grids))
    assert (light == 0).all() and (p.case_delay_days_grid == 0).all()


def test_staff_is_its_own_lever_whatever_the_grid_count():
    totals = []
    for grids in (20, 40):
        cfg = load_scenario(None, {**SMALL, "grids.count": grids, "grid_workers.total": 33})
        city = city_from_scenario(cfg, np.random.default_rng(1), np.random.default_rng(2))
        p = Patrols(cfg, city)
        totals.append(p.workers_grid.sum())
        shares = p.workers_grid / p.workers_grid.sum()
        np.testing.assert_allclose(shares, city.grid_population / city.grid_population.sum())
    assert totals == pytest.approx([33.0, 33.0])
    cfg = load_scenario(None, {**SMALL, "grids.count": 40, "grid_workers.per_grid": 0.5})
    city = city_from_scenario(cfg, np.random.default_rng(1), np.random.default_rng(2))
    assert Patrols(cfg, city).workers_grid.sum() == pytest.approx(20.0)
