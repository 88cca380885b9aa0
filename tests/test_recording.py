"""Recording separate from noticing (issue 10, item 7).

Staff who notice a problem record it with probability p = 1 / (1 + h / tolerance), h the
paperwork hours of one report; residents who notice report by their propensity. The checks:
exact limits (no paperwork: every noticing is recorded), the binomial count at h = tolerance,
the resident split keeping the calling hazard at propensity 1, common random numbers (a
paperwork cut changes who records, never who notices), and the noticed-but-unrecorded life
cycle (stays undiscovered, keeps its noticing time, lapses).
"""

from __future__ import annotations

import numpy as np
import pytest
from component_parts import no_visits, parts  # tests/ is on sys.path under pytest

from sim.channels import record_prob
from sim.codes import Category, Channel, State
from sim.incidents import IncidentLog
from sim.scenario import load_scenario

ONLY_STAFF = {"channels.hotline.enabled": False, "channels.snap_report.enabled": False,
              "incidents.infrastructure.on_spot_fix_prob": 0.0,
              # officers look at grid matters as closely as grid workers do
              "police.grid_matter_attention": 1.0, "fusion.police_grid_attention": 1.0}
Z4 = 3.89  # two-sided 1e-4 normal quantile: a correct model fails one check in 10,000


def _many(log: IncidentLog, category: str, cells: np.ndarray, t: float) -> np.ndarray:
    k = len(cells)
    return log.add(np.full(k, Category[category.upper()], np.int8), cells.astype(np.int32),
                   np.full(k, t), np.ones(k, np.float32))


def _noticed_recorded(log: IncidentLog, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    noticed = ~np.isnan(log.t_discovered[ids])
    recorded = log.state[ids] != State.UNDISCOVERED
    return noticed, recorded


def test_record_prob_formula():
    cfg = load_scenario(None, {"paperwork.forms": 100, "paperwork.report_hours_per_form": 0.02,
                               "paperwork.record_tolerance_hours": 2.0})
    assert record_prob(cfg.paperwork) == pytest.approx(0.5)
    cfg0 = load_scenario(None, {"paperwork.report_hours_per_form": 0.0})
    assert record_prob(cfg0.paperwork) == 1.0


def test_without_paperwork_staff_record_everything_they_notice():
    _cfg, city, res, _cat, ch = parts(**ONLY_STAFF, **{"paperwork.report_hours_per_form": 0.0,
                                                      "incidents.infrastructure.patrol_detect_prob": 0.3})
    log = IncidentLog()
    cells = np.repeat(np.flatnonzero(city.population > 0)[:100], 20)
    ids = _many(log, "infrastructure", cells, 2.5)
    v = no_visits(city.n_cells)
    v.worker[:] = 1.0
    v.police[:] = 1.0
    total_noticed = 0
    for day in range(3, 6):
        det = ch.discover(day, log, v, res.cell_propensity(), np.random.default_rng(day))
        total_noticed += det.noticed
    noticed, recorded = _noticed_recorded(log, ids)
    assert noticed.sum() > 100  # the check has something to check
    assert (noticed == recorded).all()
    assert total_noticed == noticed.sum()


@pytest.mark.parametrize("channel", ["grid_patrol", "police_patrol"])
def test_at_the_tolerance_staff_record_half_of_what_they_notice(channel):
    _cfg, city, res, _cat, ch = parts(**ONLY_STAFF, **{
        "paperwork.forms": 100, "paperwork.report_hours_per_form": 0.02,
        "paperwork.record_tolerance_hours": 2.0, "incidents.infrastructure.patrol_detect_prob": 1.0,
        f"channels.{'police_patrol' if channel == 'grid_patrol' else 'grid_patrol'}.enabled": False})
    log = IncidentLog()
    cells = np.repeat(np.flatnonzero(city.population > 0)[:100], 40)
    ids = _many(log, "infrastructure", cells, 2.0)
    v = no_visits(city.n_cells)
    getattr(v, "worker" if channel == "grid_patrol" else "police")[:] = 1.0  # one visit: one decision
    det = ch.discover(3, log, v, res.cell_propensity(), np.random.default_rng(11))
    noticed, recorded = _noticed_recorded(log, ids)
    n = len(ids)
    assert noticed.all() and det.noticed == n  # certain detection, one visit each
    k = int(recorded.sum())
    assert abs(k - n / 2) < Z4 * np.sqrt(n / 4), (k, n)
    assert det.first_by_channel[Channel[channel.upper()]] == k
    # the unrecorded stay undiscovered to the system but keep their noticing time
    assert (log.state[ids[~recorded]] == State.UNDISCOVERED).all()
    assert (log.t_discovered[ids] >= 3.0).all() and np.isnan(log.t_reported[ids[~recorded]]).all()


def _paired(forms: int):
    cfg, city, res, _cat, ch = parts(**ONLY_STAFF, **{"paperwork.forms": forms,
                                                      "incidents.infrastructure.patrol_detect_prob": 0.5})
    log = IncidentLog()
    cells = np.repeat(np.flatnonzero(city.population > 0)[:100], 30)
    ids = _many(log, "infrastructure", cells, 2.0)
    v = no_visits(city.n_cells)
    v.worker[:] = 1.0
    v.police[:] = 1.0
    ch.discover(3, log, v, res.cell_propensity(), np.random.default_rng(5))
    return cfg, log, ids


def test_paperwork_cut_records_more_of_the_same_noticings_crn():
    cfg118, log118, ids = _paired(118)
    cfg49, log49, _ = _paired(49)
    n118, r118 = _noticed_recorded(log118, ids)
    n49, r49 = _noticed_recorded(log49, ids)
    # common random numbers: the same problems are noticed at the same times ...
    assert (n118 == n49).all()
    np.testing.assert_array_equal(log118.t_discovered[ids], log49.t_discovered[ids])
    # ... and every problem recorded under 118 forms is recorded under 49
    assert (r49 >= r118).all()
    # recorded per noticed: with two staff channels, 1 - (1 - q p)^2 over 1 - (1 - q)^2 at q = 0.5
    for cfg, rec in ((cfg118, r118), (cfg49, r49)):
        p = record_prob(cfg.paperwork)
        share = (1 - (1 - 0.5 * p) ** 2) / (1 - 0.25)
        k, n = int(rec.sum()), int(n118.sum())
        assert abs(k - n * share) < Z4 * np.sqrt(n * share * (1 - share)), (cfg.paperwork.forms, k, n, share)
    assert r49.sum() > r118.sum()


def test_residents_notice_more_than_they_report_and_keep_the_hazard_at_propensity_one():
    share = 0.4
    _cfg, city, _res, cat, ch = parts(**{
        "channels.snap_report.enabled": False, "channels.grid_patrol.enabled": False,
        "channels.police_patrol.enabled": False, "channels.hotline.report_share": share})
    log = IncidentLog()
    cell = int(np.argmax(city.population))
    n = 4000
    ids = _many(log, "infrastructure", np.full(n, cell), 2.0)
    prop = np.ones(city.n_cells)  # the reference propensity
    ch.discover(3, log, no_visits(city.n_cells), prop, np.random.default_rng(3))
    noticed, recorded = _noticed_recorded(log, ids)
    lam = cat.public_report_hazard[Category.INFRASTRUCTURE] * city.population[cell] / 100.0
    for k, p in ((recorded.sum(), -np.expm1(-lam)), (noticed.sum(), -np.expm1(-lam / share))):
        assert abs(k - n * p) < Z4 * np.sqrt(n * p * (1 - p)), (k, n * p)
    assert (recorded <= noticed).all()
    # at propensity >= 1 / share everyone who notices calls
    log2 = IncidentLog()
    ids2 = _many(log2, "infrastructure", np.full(n, cell), 2.0)
    ch.discover(3, log2, no_visits(city.n_cells), prop / share, np.random.default_rng(3))
    noticed2, recorded2 = _noticed_recorded(log2, ids2)
    assert (noticed2 == recorded2).all()
    np.testing.assert_array_equal(noticed2, noticed)  # CRN: propensity changes reporting only


def test_a_victim_who_does_not_call_is_noticed_and_the_case_lapses():
    _cfg, city, res, cat, ch = parts(**{"incidents.dispute.victim_report_prob": 0.0,
                                        "channels.grid_patrol.enabled": False,
                                        "channels.police_patrol.enabled": False})
    log = IncidentLog()
    cell = int(np.argmax(city.population))
    i = int(_many(log, "dispute", np.array([cell]), 4.25)[0])
    det = ch.discover(4, log, no_visits(city.n_cells), res.cell_propensity(), np.random.default_rng(0))
    assert det.noticed == 1 and det.first_by_channel.sum() == 0
    assert log.state[i] == State.UNDISCOVERED and log.t_discovered[i] == pytest.approx(4.25)
    day = int(np.ceil(4.25 + cat.report_window_days[Category.DISPUTE]))
    det = ch.discover(day, log, no_visits(city.n_cells), res.cell_propensity(), np.random.default_rng(1))
    assert log.state[i] == State.LAPSED and det.lapsed == 1
    assert log.t_discovered[i] == pytest.approx(4.25)  # noticed, never recorded: the dark figure


def test_model_paperwork_cut_raises_recorded_per_noticed():
    """Paired runs (same seed) of the small default district: the share of noticed incidents
    that get recorded rises with the cut, by more than three binomial standard errors."""
    from sim.model import GovernanceModel

    out = {}
    for forms in (118, 49):
        m = GovernanceModel("default", rng=3, **{"paperwork.forms": forms}).run(60)
        n = m.incidents.n
        noticed = ~np.isnan(m.incidents.t_discovered[:n])
        recorded = ~np.isnan(m.incidents.t_reported[:n])
        assert (recorded <= noticed).all()
        out[forms] = (int(recorded.sum()), int(noticed.sum()))
    (k1, n1), (k2, n2) = out[118], out[49]
    p1, p2 = k1 / n1, k2 / n2
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert p2 - p1 > 3 * se, (p1, p2, se)
