"""Residents' deliberation meetings (issue 10): the channel ``deliberation``.

Checked by construction on hand-built logs: the meeting calendar (staggered, exactly
``days / interval_days`` meetings per community), what a meeting raises (capacity, the most
severe first, what residents know), what it settles and sends to triage or reopens, nothing on
off days or when disabled, and common random numbers (the other channels' decisions on the
day are identical with meetings on or off).
"""

from __future__ import annotations

import numpy as np
import pytest
from component_parts import no_visits, parts  # tests/ is on sys.path under pytest

from sim.channels import DELIB, N_DAILY
from sim.codes import Category, Handler, State
from sim.incidents import IncidentLog

NO_DAILY = {f"channels.{c}.enabled": False for c in
            ("hotline", "snap_report", "grid_patrol", "police_patrol", "joint_screening", "drone")}
ON = {"channels.deliberation.enabled": True, "channels.deliberation.interval_days": 10.0}
Z4 = 3.89


def _add(log, category, cells, t, severity):
    k = len(cells)
    return log.add(np.full(k, Category[category.upper()], np.int8), np.asarray(cells, np.int32),
                   np.full(k, t), np.asarray(severity, np.float32))


def test_meeting_calendar_is_staggered_and_exact():
    for iv in (10.0, 2.5, 7.3):
        *_, ch = parts(**{**ON, "channels.deliberation.interval_days": iv})
        n = ch.city.n_communities
        days = 100
        count = np.zeros(n, int)
        for d in range(days):
            comm, t = ch.meetings(d)
            assert ((t >= d) & (t < d + 1)).all()
            np.add.at(count, comm, 1)
        phase = iv * np.arange(n) / n
        np.testing.assert_array_equal(count, np.ceil((days - phase) / iv).astype(int))
    _, _, _, _, off = parts()
    assert len(off.meetings(0)[0]) == 0


def _community_log(city, cat, comm: int):
    """A hand-built community 0 log: 3 undiscovered disputes (inside their window), 4
    undiscovered latent problems (visibility 1), 2 known cases and 2 paper-closed latent
    problems, severities 1..11 in that order; plus one problem in another community."""
    cells = np.flatnonzero((city.community == comm) & (city.population > 0))
    other = np.flatnonzero((city.community != comm) & (city.population > 0))[0]
    c = cells[0]
    log = IncidentLog()
    sev = np.arange(1, 12, dtype=float)
    disputes = _add(log, "dispute", [c] * 3, 8.0, sev[0:3])
    log.victim[disputes] = [3, 5, 7]
    latent = _add(log, "infrastructure", [c] * 4, 5.0, sev[3:7])
    known = _add(log, "infrastructure", [c] * 2, 5.0, sev[7:9])
    log.state[known] = State.KNOWN
    log.t_reported[known] = log.t_discovered[known] = 5.5
    paper = _add(log, "environment", [c] * 2, 5.0, sev[9:11])
    log.state[paper] = State.PAPER_CLOSED
    log.t_discovered[paper] = log.t_reported[paper] = 5.5
    log.t_closed[paper] = 6.0
    elsewhere = _add(log, "infrastructure", [other], 5.0, [50.0])
    return log, disputes, latent, known, paper, elsewhere


VISIBLE = {"incidents.infrastructure.visibility": 1.0, "incidents.environment.visibility": 1.0}


@pytest.mark.parametrize("settle", [0.0, 1.0])
def test_a_meeting_raises_the_most_severe_it_knows_and_settles_or_sends_them_on(settle):
    cap = 8
    _cfg, city, res, cat, ch = parts(**NO_DAILY, **ON, **VISIBLE, **{
        "channels.deliberation.requests_per_meeting": cap,
        "channels.deliberation.settle_prob": settle})
    log, disputes, latent, known, paper, elsewhere = _community_log(city, cat, 0)
    det = ch.discover(10, log, no_visits(city.n_cells), res.cell_propensity(), np.random.default_rng(0))
    # community 0 meets at t = 10.0 (phase 0); 11 problems known, the 8 most severe raised:
    # both paper-closed, both known, all four latent, none of the disputes
    raised = np.concatenate([latent, known, paper])
    assert det.meetings == 1 and det.raised == cap
    assert (log.reports[raised, DELIB] == 1).all()
    assert (log.reports[disputes, DELIB] == 0).all() and log.reports[elsewhere, DELIB] == 0
    assert det.reports_by_channel[DELIB] == cap and det.first_by_channel[DELIB] == 4
    assert (log.state[disputes] == State.UNDISCOVERED).all()
    assert (log.state[elsewhere] == State.UNDISCOVERED).all()
    assert (log.state[known] == State.KNOWN).all()  # follow-ups of cases in hand
    assert (log.first_channel[latent] == DELIB).all()
    assert (log.t_discovered[latent] == 10.0).all() and (log.t_reported[latent] == 10.0).all()
    assert det.noticed == 4
    if settle == 1.0:
        assert (log.state[latent] == State.RESOLVED).all()
        assert (log.handler[latent] == Handler.ON_SPOT).all()
        assert (log.t_resolved[latent] == 10.0).all()
        assert (log.state[paper] == State.RESOLVED).all()
        assert (log.t_closed[paper] == 10.0).all() and (log.t_resolved[paper] == 10.0).all()
        assert sorted(det.settled_ids.tolist()) == sorted([*latent, *paper])
        assert len(det.new_ids) == 0 and len(det.reopened_ids) == 0
    else:
        assert (log.state[latent] == State.KNOWN).all() and len(det.settled_ids) == 0
        assert sorted(det.new_ids.tolist()) == sorted(latent.tolist())
        np.testing.assert_array_equal(det.new_report_t, 10.0)
        assert sorted(det.reopened_ids.tolist()) == sorted(paper.tolist())
        assert (log.state[paper] == State.PAPER_CLOSED).all()  # the dispatcher reopens them


def test_with_spare_capacity_the_disputes_are_raised_too():
    _cfg, city, res, cat, ch = parts(**NO_DAILY, **ON, **VISIBLE, **{
        "channels.deliberation.requests_per_meeting": 100,
        "channels.deliberation.settle_prob": 0.0})
    log, disputes, *_ = _community_log(city, cat, 0)
    det = ch.discover(10, log, no_visits(city.n_cells), res.cell_propensity(), np.random.default_rng(0))
    assert det.raised == 11 and det.first_by_channel[DELIB] == 7
    assert (log.state[disputes] == State.KNOWN).all()
    assert log.reporter[disputes].tolist() == [3, 5, 7]  # the victims raise their disputes


def test_settled_share_is_binomial():
    settle, n = 0.6, 3000
    _cfg, city, res, _cat, ch = parts(**NO_DAILY, **ON, **VISIBLE, **{
        "channels.deliberation.requests_per_meeting": n,
        "channels.deliberation.settle_prob": settle})
    c = np.flatnonzero((city.community == 0) & (city.population > 0))[0]
    log = IncidentLog()
    _add(log, "infrastructure", [c] * n, 5.0, np.ones(n))
    det = ch.discover(10, log, no_visits(city.n_cells), res.cell_propensity(), np.random.default_rng(4))
    k = len(det.settled_ids)
    assert det.raised == n and k + len(det.new_ids) == n
    assert abs(k - n * settle) < Z4 * np.sqrt(n * settle * (1 - settle)), k


def test_latent_problems_are_known_with_their_visibility():
    vis, n = 0.3, 3000
    _cfg, city, res, _cat, ch = parts(**NO_DAILY, **ON, **{
        "incidents.infrastructure.visibility": vis,
        "channels.deliberation.requests_per_meeting": n})
    c = np.flatnonzero((city.community == 0) & (city.population > 0))[0]
    log = IncidentLog()
    _add(log, "infrastructure", [c] * n, 5.0, np.ones(n))
    det = ch.discover(10, log, no_visits(city.n_cells), res.cell_propensity(), np.random.default_rng(4))
    assert abs(det.raised - n * vis) < Z4 * np.sqrt(n * vis * (1 - vis))


@pytest.mark.parametrize("case", ["off_day", "disabled", "later_problem"])
def test_nothing_happens_without_a_meeting(case):
    over = {**NO_DAILY, **VISIBLE, **({} if case == "disabled" else ON)}
    _cfg, city, res, cat, ch = parts(**over)
    log, *_ = _community_log(city, cat, 0)
    if case == "later_problem":  # the problems occur after the meeting
        log.t_occurred[: log.n] = 10.5
        day = 10
    else:
        day = 11 if case == "off_day" else 10
    before = {k: v[: log.n].copy() for k, v in log.cols.items()}
    det = ch.discover(day, log, no_visits(city.n_cells), res.cell_propensity(), np.random.default_rng(0))
    assert det.raised == 0 and det.reports_by_channel.sum() == 0 and len(det.settled_ids) == 0
    for k, v in before.items():
        np.testing.assert_array_equal(log.cols[k][: log.n], v, err_msg=k)


def test_meetings_leave_other_channels_draws_unchanged_crn():
    """A meeting day with every daily channel at work: switching meetings on changes nothing
    the other channels noticed, recorded or reported that day."""
    out = {}
    for on in (False, True):
        over = {**VISIBLE, "channels.deliberation.enabled": on,
                "channels.deliberation.interval_days": 10.0,
                "channels.deliberation.requests_per_meeting": 50}
        _cfg, city, res, _cat, ch = parts(**over)
        rng = np.random.default_rng(1)
        log = IncidentLog()
        cells = rng.choice(np.flatnonzero(city.population > 0), 2000)
        _add(log, "infrastructure", cells, 9.0, rng.lognormal(0, 1, 2000))
        _add(log, "dispute", cells[:500], 10.2, rng.lognormal(0, 1, 500))
        v = no_visits(city.n_cells)
        v.worker[:] = 1.0
        v.police[:] = 1.0
        v.rider[:] = 20.0
        det = ch.discover(10, log, v, res.cell_propensity(), np.random.default_rng(2))
        out[on] = (det, log)
    (d0, l0), (d1, l1) = out[False], out[True]
    assert d1.meetings > 0 and d1.raised > 0 and d0.raised == 0
    np.testing.assert_array_equal(d0.reports_by_channel[:N_DAILY], d1.reports_by_channel[:N_DAILY])
    np.testing.assert_array_equal(d0.first_by_channel[:N_DAILY], d1.first_by_channel[:N_DAILY])
    np.testing.assert_array_equal(l0.reports[: l0.n, :N_DAILY], l1.reports[: l1.n, :N_DAILY])
    daily = l1.first_channel[: l1.n] != DELIB
    for col in ("first_channel", "t_reported", "state", "reporter"):
        np.testing.assert_array_equal(l0.cols[col][: l0.n][daily], l1.cols[col][: l1.n][daily], err_msg=col)
    assert d0.rider_reports == d1.rider_reports and len(d0.on_spot_ids) == len(d1.on_spot_ids)
    # what the meetings recorded was unrecorded without them
    by_meeting = ~daily
    assert by_meeting.any()
    assert (l0.state[: l0.n][by_meeting] == State.UNDISCOVERED).all()
