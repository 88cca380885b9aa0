"""Each model component built and tested on its own, without a GovernanceModel.

The components take explicit inputs (the scenario, the city, the incident log, arrays) and
return what happened, so each can be checked against what it must do by construction:
patrol hours against the hour budget, detections against certain and impossible channels,
the dispatcher against a case that always succeeds or always fails, the safety model against
the closed form of its relaxation, feedback against the trust-update formula.
"""

from __future__ import annotations

import numpy as np
import pytest
from component_parts import SMALL, no_visits, parts  # tests/ is on sys.path under pytest

from sim.channels import Channels
from sim.codes import CATEGORIES, Category, Channel, Feedback, Handler, State
from sim.dispatch import NEXT_TIER, Dispatcher, FeedbackEvents
from sim.incidents import IncidentLog
from sim.patrols import Patrols
from sim.safety import SafetyModel, wilson_interval


def _parts4(**overrides):
    return parts(**overrides)[:4]


# --------------------------------------------------------------------------- patrols
def test_patrols_case_work_comes_before_patrol_and_workload_counts_demand():
    cfg, city, _, _ = _parts4()
    p = Patrols(cfg, city)
    gw = cfg.grid_workers
    budget = gw.per_grid * gw.hours_per_day
    paper = min(budget, gw.per_grid * p.paper_h_per_worker)
    case = np.linspace(0.0, 2 * budget, city.n_grids)
    p.plan_workers(0, case)
    np.testing.assert_allclose(p.worker_paper_h_grid, paper)
    np.testing.assert_allclose(p.worker_case_h_grid, np.minimum(case, budget - paper))
    np.testing.assert_allclose(p.worker_patrol_h_grid,
                               np.maximum(0.0, budget - paper - np.minimum(case, budget - paper)))
    np.testing.assert_allclose(p.worker_paper_h_grid + p.worker_case_h_grid + p.worker_patrol_h_grid,
                               budget)
    demand = gw.per_grid * p.paper_h_per_worker + case + p.required_patrol_h
    np.testing.assert_allclose(p.worker_util_grid, demand / budget)


def test_patrols_draw_counts_match_the_staff_and_presence_is_an_ewma():
    cfg, city, _, _ = _parts4(**{"channels.drone.enabled": True, "channels.drone.cells_per_day": 5})
    p = Patrols(cfg, city)
    v = p.draw(3, np.random.default_rng(1), np.zeros(city.n_grids))
    pc, vp = cfg.police, cfg.volunteers
    # stochastic rounding per beat: each beat's visits are the floor or the ceiling of its mean
    mean = (p.officers_per_beat * pc.patrol_hours_per_day / pc.visit_hours_per_cell
            + p.vpolice_per_beat * vp.volunteer_police_active_share * vp.volunteer_cells_per_day)
    total = v.police.sum()
    assert np.floor(mean).sum() <= total <= np.ceil(mean).sum()
    assert v.rider.sum() == int(vp.riders * vp.rider_cells_per_day)
    assert v.drone.sum() == 5
    assert (v.worker >= 0).all() and (v.volunteer >= 0).all()
    decay = np.exp(-1.0 / cfg.dynamics.presence_memory_days)
    g = v.guardians(cfg.dynamics.community_volunteer_guardian_weight)
    np.testing.assert_allclose(p.presence, (1 - decay) * g)


def test_patrols_with_fusion_staff_every_grid_beat():
    cfg, city, _, _ = _parts4(**{"fusion.enabled": True, "police.officers": 90})
    p = Patrols(cfg, city)
    assert p.n_beats == city.n_grids
    assert p.officers_per_beat.sum() == 90
    assert p.officers_per_beat.min() == 90 // city.n_grids


# --------------------------------------------------------------------------- channels
def _one_incident(log: IncidentLog, category: str, cell: int, t: float) -> int:
    return int(log.add(np.array([Category[category.upper()]], np.int8), np.array([cell]),
                       np.array([t]), np.array([1.0], np.float32))[0])


def test_channels_a_certain_patrol_finds_a_latent_problem_and_fixes_it_on_the_spot():
    cfg, city, res, cat = _parts4(**{"incidents.infrastructure.patrol_detect_prob": 1.0,
                                    "incidents.infrastructure.on_spot_fix_prob": 1.0,
                                    "incidents.infrastructure.on_spot_hours": 2.0,
                                    "paperwork.report_hours_per_form": 0.0})  # staff record all
    ch = Channels(cfg, city, cat, res)
    log = IncidentLog()
    cell = int(np.argmax(city.population))
    i = _one_incident(log, "infrastructure", cell, 5.0)
    visits = no_visits(city.n_cells)
    visits.worker[cell] = 50.0
    det = ch.discover(5, log, visits, res.cell_propensity(), np.random.default_rng(0))
    assert log.state[i] == State.RESOLVED
    assert log.handler[i] == Handler.ON_SPOT
    assert det.first_by_channel[Channel.GRID_PATROL] == 1
    assert det.on_spot_ids.tolist() == [i]
    assert det.on_spot_hours.sum() == pytest.approx(2.0)
    assert det.on_spot_hours[city.grid[cell]] == pytest.approx(2.0)
    assert 5.0 <= log.t_discovered[i] <= log.t_reported[i] <= log.t_closed[i]


def test_channels_disabled_channels_find_nothing_and_unreported_incidents_lapse():
    cfg, city, res, cat = _parts4(**{f"channels.{c}.enabled": False for c in
                                    ("hotline", "snap_report", "grid_patrol", "police_patrol",
                                     "joint_screening", "drone")})
    ch = Channels(cfg, city, cat, res)
    log = IncidentLog()
    cell = int(np.argmax(city.population))
    latent = _one_incident(log, "hazard", cell, 0.0)
    dispute = _one_incident(log, "dispute", cell, 0.0)
    visits = no_visits(city.n_cells)
    visits.worker[:] = visits.police[:] = 100.0
    window = cat.report_window_days[Category.DISPUTE]
    day = int(np.ceil(window)) + 1
    det = ch.discover(day, log, visits, res.cell_propensity(), np.random.default_rng(0))
    assert det.first_by_channel.sum() == 0 and det.reports_by_channel.sum() == 0
    assert log.state[latent] == State.UNDISCOVERED
    assert log.state[dispute] == State.LAPSED and det.lapsed == 1
    assert log.t_lapsed[dispute] == pytest.approx(window)


# --------------------------------------------------------------------------- dispatcher
def _dispatcher(cfg, city, cat, log):
    return Dispatcher(cfg, city, cat, log, party_share_rel=np.ones(city.n_cells),
                      response_travel_days=np.zeros(city.n_cells))


def test_dispatcher_resolves_certain_cases_and_tells_the_reporter():
    cfg, city, res, cat = _parts4(**{"incidents.infrastructure.success_prob": 1.0,
                                    "incidents.infrastructure.route": "township",
                                    "tiers.enabled": False})
    log = IncidentLog()
    ids = np.array([_one_incident(log, "infrastructure", c, 0.0) for c in range(0, 40, 4)])
    log.state[ids] = State.KNOWN
    log.t_reported[ids] = 0.1
    log.reporter[ids] = np.arange(len(ids))
    d = _dispatcher(cfg, city, cat, log)
    d.triage(ids, log.t_reported[ids], np.zeros(len(ids), bool), np.random.default_rng(1))
    assert (log.route[ids] == Handler.TOWNSHIP).all()
    assert (log.t_triaged[ids] >= log.t_reported[ids]).all()
    out = None
    for day in range(1, 60):
        out = d.advance(float(day), np.random.default_rng(day), np.random.default_rng(100 + day))
        if (log.state[ids] == State.RESOLVED).all():
            break
    assert (log.state[ids] == State.RESOLVED).all()
    assert (log.t_resolved[ids] >= log.t_triaged[ids]).all()
    assert d.clamped == 0
    assert out is not None and out.feedback.closed_loop
    assert (log.feedback_kind[ids] == Feedback.FIXED).all()
    np.testing.assert_allclose(log.t_feedback[ids], log.t_closed[ids] + cfg.feedback.delay_hours / 24)


def test_dispatcher_escalates_failures_tier_by_tier_then_abandons():
    max_att = 3
    cfg, city, res, cat = _parts4(**{"incidents.infrastructure.success_prob": 0.0,
                                    "incidents.infrastructure.paper_close_prob": 0.0,
                                    "incidents.infrastructure.route": "community",
                                    "handling.max_attempts": max_att, "tiers.enabled": False,
                                    "handling.escalate_prob": 1.0})
    log = IncidentLog()
    i = _one_incident(log, "infrastructure", 0, 0.0)
    log.state[i] = State.KNOWN
    log.t_reported[i] = 0.0
    d = _dispatcher(cfg, city, cat, log)
    d.triage(np.array([i]), np.array([0.0]), np.zeros(1, bool), np.random.default_rng(1))
    failed = 0
    for day in range(1, 400):
        failed += d.advance(float(day), np.random.default_rng(day), np.random.default_rng(500 + day)).stats["failed"]
        if log.state[i] == State.FAILED:
            break
    assert log.state[i] == State.FAILED and failed == 1
    assert log.attempts[i] == max_att and log.escalations[i] == max_att - 1
    # the last handler is max_att - 1 tiers above the first
    h = "community"
    for _ in range(max_att - 1):
        h = NEXT_TIER[h]
    assert log.handler[i] == Handler[h.upper()]


def test_dispatcher_reopen_sends_a_case_one_tier_up():
    cfg, city, res, cat = _parts4(**{"incidents.infrastructure.route": "township", "tiers.enabled": False})
    log = IncidentLog()
    i = _one_incident(log, "infrastructure", 0, 0.0)
    log.state[i] = State.PAPER_CLOSED
    log.handler[i] = Handler.TOWNSHIP
    d = _dispatcher(cfg, city, cat, log)
    assert d.reopen(np.array([i]), np.array([2.0]), np.random.default_rng(0)) == 1
    assert log.state[i] == State.KNOWN and log.reopens[i] == 1
    assert log.handler[i] == Handler[NEXT_TIER["township"].upper()]


# --------------------------------------------------------------------------- residents, safety
def test_feedback_moves_trust_by_the_configured_formula():
    cfg, city, res, cat = _parts4()
    fb = cfg.feedback
    who = np.array([0, 1, 2, 3], dtype=np.int32)
    before = res.trust[who].astype(np.float64)
    counts = res.hear_feedback(FeedbackEvents(who, np.array([True, True, False, False]), True, np.full(4, 10.0)), 10)
    assert counts == {"feedback_fixed": 2, "feedback_not_fixed": 2, "feedback_silence": 0}
    np.testing.assert_allclose(res.trust[who[:2]], before[:2] + fb.trust_gain * (1 - before[:2]), rtol=1e-6)
    np.testing.assert_allclose(res.trust[who[2:]], before[2:] * (1 - fb.trust_loss_failure), rtol=1e-6)
    assert (res.last_event_day[who] == 10).all()
    silent = res.hear_feedback(FeedbackEvents(who[:1], np.array([True]), False, np.full(1, 11.0)), 11)
    assert silent["feedback_silence"] == 1


def test_safety_relaxes_to_baseline_geometrically_without_events():
    cfg, city, res, cat = _parts4(**{"safety.spread_per_day": 0.0})
    s = SafetyModel(cfg.safety, city, res)
    res.safety[:] = 0.5
    start = res.safety.astype(np.float64).copy()
    z = np.zeros(city.n_cells)
    days = 10
    for _ in range(days):
        s.update(z, z, z)
    r = cfg.safety.relax_per_day
    expect = res.baseline + (1 - r) ** days * (start - res.baseline)
    np.testing.assert_allclose(res.safety, expect, atol=1e-5)
    assert s.mean() == pytest.approx(float(res.safety.mean()), rel=1e-6)


def test_victimisation_drops_safety_and_the_survey_samples_residents():
    cfg, city, res, cat = _parts4()
    s = SafetyModel(cfg.safety, city, res)
    before = float(res.safety[5])
    s.victimise(np.array([5, -1]), 3)
    assert res.safety[5] == pytest.approx(max(0.0, before - cfg.safety.victim_drop), abs=1e-6)
    assert res.victimisations[5] == 1 and res.last_event_day[5] == 3
    wave = s.survey(29, np.random.default_rng(0))
    assert wave.n == min(cfg.safety.survey_sample, res.n)
    assert wave.ci_low <= wave.share_safe <= wave.ci_high


def test_wilson_interval_agrees_with_scipy():
    """The closed form in sim.safety (kept so the frozen baseline does not move by a rounding
    ulp) is scipy's binomtest Wilson interval."""
    from scipy import stats

    for k, n in ((0, 10), (3, 10), (975, 1000), (1000, 1000), (51, 10819)):
        ci = stats.binomtest(k, n).proportion_ci(0.95, "wilson")
        np.testing.assert_allclose(wilson_interval(k, n), (ci.low, ci.high), rtol=1e-12, atol=1e-15)


def test_every_category_has_a_code():
    assert [Category[c.upper()] for c in CATEGORIES] == list(range(len(CATEGORIES)))


def test_the_outcome_registry_covers_every_recorded_metric():
    """Every daily column and every run-summary key is declared once in sim.outcomes, in the
    table it appears in (adding an outcome is one registry entry plus its computation)."""
    from sim import GovernanceModel, outcomes
    from sim.metrics import DAILY_KEYS

    daily = [k for k in DAILY_KEYS if outcomes.OUTCOMES.get(k) is None
             or outcomes.OUTCOMES[k].table == "run"]
    assert not daily, f"daily metrics missing from sim.outcomes: {daily}"
    m = GovernanceModel(None, rng=1, **SMALL).run(35)
    run = [k for k in m.summary(5) if outcomes.OUTCOMES.get(k) is None
           or outcomes.OUTCOMES[k].table == "daily"]
    assert not run, f"run metrics missing from sim.outcomes: {run}"
    for name, o in outcomes.OUTCOMES.items():
        assert o.name == name and o.label and o.better in ("higher", "lower", None)
