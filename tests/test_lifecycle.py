"""The incident life cycle on the event log (DESIGN.md sections 4-6, 8).

Two runs of a small city:

* ``default_like``: default parameters on a 24x24 city of 30,000 people, one year;
* ``stress``: the same city with every category's success probability cut to 0.4 and
  max_attempts 3, 150 days: many escalations, reopenings (by rediscovery) and abandoned
  (failed) cases, so rare paths are exercised. Reporters' complaints are off in it
  (reopen_prob 0): with them, cases get handled twice at once (see
  ``test_reopening_complaints_never_duplicate_a_case``), which would break every invariant.

Semantics encoded here (from sim/dispatch.py and sim/channels.py):

* occurred <= discovered (first noticed) <= reported <= triaged <= dispatched <= started < ended
  (dispatched after triaged by the hand-offs before fusion); an incident may be noticed and
  not recorded (it keeps ``t_discovered`` and stays undiscovered to the system);
* ``t_triaged``/``t_dispatched``/``route`` keep the FIRST triage; a reopened case is triaged
  again without changing them; ``t_started``/``t_ended`` are those of the LATEST attempt,
  ``t_reopened`` the latest reopening, ``t_closed`` the latest (official) closure;
* an on-the-spot fix (route ``on_spot``) is never triaged: closed = resolved =
  reported + on_spot_hours / 24, found by grid patrol or joint screening, no resident reporter;
* RESOLVED: closed == resolved (== ended of the last attempt unless on the spot);
  PAPER_CLOSED: closed == ended; FAILED: failed == ended, below the top (city) tier, which
  closes what it cannot solve with an explanation (paper-closed);
* a case can be reopened only from PAPER_CLOSED, so a case with a closure stamp that is
  neither RESOLVED nor PAPER_CLOSED has been reopened, and the reopening followed that
  closure; the last attempt of a finished reopened case started after the reopening;
* feedback (closed loop on) goes to resident reporters only, ``feedback.delay_hours`` after
  the closure or the failure; fixed for RESOLVED, not fixed otherwise;
* LAPSED: non-latent, never recorded, lapsed = occurred + report_window_days.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim.dispatch as dispatch
from sim.incidents import ESCALATION, HANDLER_NAMES, RESOLVED
from sim.model import GovernanceModel
from sim.scenario import CATEGORIES, CHANNELS

BASE = {
    "city.width": 24,
    "city.height": 24,
    "city.population": 30_000,
    "admin.communities": 6,
    "grids.count": 50,
}
STRESS = {
    **BASE,
    "handling.reopen_prob": 0.0,
    "handling.max_attempts": 3,
    **{f"incidents.{c}.success_prob": 0.4 for c in CATEGORIES},
    **{f"incidents.{c}.paper_close_prob": 0.5 for c in CATEGORIES},
}
CONFIGS = {"default_like": (3, BASE, 365), "stress": (5, STRESS, 150)}
_CACHE: dict[str, GovernanceModel] = {}

T_FIELDS = ("t_occurred", "t_discovered", "t_reported", "t_triaged", "t_dispatched",
            "t_started", "t_ended", "t_closed", "t_resolved", "t_failed", "t_reopened",
            "t_feedback", "t_lapsed")


def _model(name: str) -> GovernanceModel:
    if name not in _CACHE:
        seed, ov, days = CONFIGS[name]
        _CACHE[name] = GovernanceModel(rng=seed, **ov).run(days)
    return _CACHE[name]


@pytest.fixture(scope="module", params=list(CONFIGS))
def run(request):
    return _model(request.param)


class Log:
    """The event log as plain arrays, with a few derived masks."""

    def __init__(self, m: GovernanceModel):
        df = m.incident_table()
        self.df = df
        self.m = m
        self.days = m.steps
        self.n = len(df)
        for f in T_FIELDS:
            setattr(self, f, df[f].to_numpy())
        # categorical labels as plain strings, "nan" where unset
        for col, attr in (("state", "state"), ("route", "route"), ("handler", "handler"),
                          ("first_channel", "first"), ("feedback", "feedback")):
            setattr(self, attr, df[col].astype(object).fillna("nan").astype(str).to_numpy())
        self.reporter = df["reporter"].to_numpy()
        self.reopens = df["reopens"].to_numpy()
        self.attempts = df["attempts"].to_numpy()
        self.escalations = df["escalations"].to_numpy()
        cat = m.incidents.view("category")
        self.latent = m.cat.latent[cat]
        self.window = m.cat.report_window_days[cat]
        self.on_spot_hours = m.cat.on_spot_hours[cat]

    def has(self, f: str) -> np.ndarray:
        return ~np.isnan(getattr(self, f))


@pytest.fixture(scope="module")
def log(run):
    return Log(run)


def _le(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Number of violations of a <= b where both exist (and mask holds)."""
    both = ~np.isnan(a) & ~np.isnan(b)
    if mask is not None:
        both &= mask
    return int((a[both] > b[both]).sum())


# --------------------------------------------------------------------------- time stamps


def test_log_is_not_trivial(log):
    assert log.n > 4000
    for s in ("resolved", "known", "lapsed"):
        assert (log.state == s).any(), s
    assert (log.route == "on_spot").any()
    assert (log.reopens > 0).any() and (log.escalations > 0).any()


def test_main_chain_is_ordered(log):
    chain = ("t_occurred", "t_discovered", "t_reported", "t_triaged", "t_dispatched",
             "t_started", "t_ended")
    for a, b in zip(chain, chain[1:]):
        assert _le(getattr(log, a), getattr(log, b)) == 0, f"{a} > {b}"
    both = log.has("t_started")
    assert (log.t_ended[both] > log.t_started[both]).all()
    # dispatch is immediate after triage unless the case was handed between offices (no
    # shared intake before fusion): both stamps record the first triage
    assert np.array_equal(log.has("t_triaged"), log.has("t_dispatched"))
    tri = log.has("t_triaged") & (log.df["handoffs"].to_numpy() == 0)
    assert (log.t_triaged[tri] == log.t_dispatched[tri]).all()
    # every step before a stamp happened
    for a, b in zip(chain, chain[1:]):
        assert not (log.has(b) & ~log.has(a)).any(), f"{b} without {a}"


def test_closure_resolution_failure_lapse_stamps(log):
    for f in ("t_closed", "t_resolved", "t_failed", "t_reopened"):
        assert _le(log.t_reported, getattr(log, f)) == 0, f"{f} before t_reported"
    assert _le(log.t_occurred, log.t_lapsed) == 0
    # on-the-spot fixes: never triaged; closed when the fix is done
    spot = log.route == "on_spot"
    assert (log.handler[spot] == "on_spot").all()
    assert (log.state[spot] == "resolved").all()
    assert not log.has("t_triaged")[spot].any() and not log.has("t_started")[spot].any()
    assert np.allclose(log.t_closed[spot], log.t_reported[spot] + log.on_spot_hours[spot] / 24)
    assert np.isin(log.first[spot], ["grid_patrol", "joint_screening"]).all()
    assert (log.reporter[spot] == -1).all()
    assert (log.attempts[spot] == 1).all()
    # otherwise a route exists exactly when the case was triaged
    assert np.array_equal(log.route != "nan", log.has("t_triaged") | spot)
    assert np.array_equal(log.handler != "nan", log.route != "nan")


def test_reopening_stamps(log):
    reo = log.reopens > 0
    assert np.array_equal(reo, log.has("t_reopened"))
    # closure stamp outside RESOLVED / PAPER_CLOSED: only after a reopening of that closure
    other = log.has("t_closed") & ~np.isin(log.state, ["resolved", "paper_closed"])
    assert reo[other].all()
    assert _le(log.t_closed, log.t_reopened, other) == 0
    # a finished reopened case was handled again after its last reopening
    fin = reo & np.isin(log.state, ["resolved", "paper_closed", "failed"])
    assert fin.any()
    assert _le(log.t_reopened, log.t_started, fin) == 0
    assert _le(log.t_reopened, log.t_closed, fin & (log.state != "failed")) == 0


def test_feedback_after_closure(log):
    """Resolved or paper-closed cases with a resident reporter hear back delay_hours after the
    closure; the kind matches the state; no one else gets feedback."""
    delay = log.m.config.feedback.delay_hours / 24
    assert log.m.config.feedback.closed_loop
    fb = log.has("t_feedback")
    assert (log.reporter[fb] >= 0).all()
    assert np.array_equal(fb, log.feedback != "nan")
    for state, kind in (("resolved", "fixed"), ("paper_closed", "not_fixed")):
        sel = (log.state == state) & (log.reporter >= 0) & (log.route != "on_spot")
        assert sel.any() or state == "paper_closed"
        assert (log.feedback[sel] == kind).all()
        assert np.allclose(log.t_feedback[sel], log.t_closed[sel] + delay)
        assert _le(log.t_closed, log.t_feedback, sel) == 0


@pytest.mark.parametrize("run", [
    "default_like",
    "stress",
], indirect=True)
def test_feedback_after_failure(run):
    log = Log(run)
    delay = run.config.feedback.delay_hours / 24
    sel = (log.state == "failed") & (log.reporter >= 0)
    assert (log.feedback[sel] == "not_fixed").all()
    assert _le(log.t_failed, log.t_feedback, sel) == 0
    assert np.allclose(log.t_feedback[sel], log.t_failed[sel] + delay)


def test_non_latent_discovered_within_report_window(log):
    dis = log.has("t_discovered") & ~log.latent
    assert (log.t_discovered[dis] <= log.t_occurred[dis] + log.window[dis]).all()


# --------------------------------------------------------------------------- states


def test_states_consistent_with_stamps(log):
    st = log.state
    days = log.days
    assert np.isin(st, ["undiscovered", "known", "paper_closed", "resolved", "failed",
                        "lapsed"]).all()
    never = ("t_reported", "t_triaged", "t_started", "t_closed", "t_resolved",
             "t_failed", "t_reopened", "t_feedback")
    und = st == "undiscovered"
    lap = st == "lapsed"
    for f in never:
        assert not log.has(f)[und | lap].any(), f
    # someone may have noticed an incident the system never heard of (not recorded)
    seen = (und | lap) & log.has("t_discovered")
    assert (log.t_discovered[seen] >= log.t_occurred[seen]).all()
    seen_lap = lap & log.has("t_discovered")
    assert (log.t_discovered[seen_lap] <= log.t_lapsed[seen_lap]).all()
    assert (log.df["n_reports"].to_numpy()[und | lap] == 0).all()
    assert (log.reporter[und | lap] == -1).all() and (log.first[und | lap] == "nan").all()
    # undiscovered non-latent incidents are still inside their window at the last check
    assert (log.t_occurred[und & ~log.latent] + log.window[und & ~log.latent] > days - 1).all()
    # lapsed: non-latent, never found, lapsed at the end of the window, on a past day
    assert not log.latent[lap].any()
    assert np.array_equal(log.has("t_lapsed"), lap)
    assert np.allclose(log.t_lapsed[lap], log.t_occurred[lap] + log.window[lap])
    assert (log.t_lapsed[lap] <= days - 1).all()
    # known: found, reported and triaged, not finished
    kn = st == "known"
    for f in ("t_discovered", "t_reported", "t_triaged"):
        assert log.has(f)[kn].all(), f
    # a closure stamp on a known case is a paper closure it was reopened from
    assert (log.reopens[kn & log.has("t_closed")] > 0).all()
    # paper closed: officially closed after an attempt, not resolved
    pc = st == "paper_closed"
    assert log.has("t_closed")[pc].all() and (log.t_closed[pc] == log.t_ended[pc]).all()
    # resolved: closed and resolved at once
    res = st == "resolved"
    assert np.array_equal(log.has("t_resolved"), res)
    assert (log.t_resolved[res] == log.t_closed[res]).all()
    pool = res & (log.route != "on_spot")
    assert (log.t_resolved[pool] == log.t_ended[pool]).all()
    assert (log.attempts[pool] >= 1).all()
    # failed: returned as unsolvable at the end of its last attempt, below the top tier (the
    # city tier closes what it cannot solve with an explanation: paper-closed, never failed)
    fail = st == "failed"
    assert np.array_equal(log.has("t_failed"), fail)
    assert (log.t_failed[fail] == log.t_ended[fail]).all()
    max_att = log.m.config.handling.max_attempts
    assert (log.attempts[fail] <= max_att).all()
    assert not (log.handler[fail] == "city").any()
    assert (log.escalations <= log.attempts).all()
    # nothing happens after the clock: day d is [d, d+1)
    assert (log.t_occurred < days).all()
    assert (log.t_discovered[log.has("t_discovered")] < days).all()
    assert (log.t_ended[log.has("t_ended")] <= days).all()


# --------------------------------------------------------------------------- counting


def test_every_incident_counted_once(run, log):
    ts = run.timeseries()
    counts = run.incidents.state_counts()
    assert ts["occurred"].sum() == log.n == sum(counts.values())
    for c in CATEGORIES:
        assert ts[f"occurred_{c}"].sum() == (log.df["category"] == c).sum()
    opened = counts["undiscovered"] + counts["known"] + counts["paper_closed"]
    assert log.n == counts["resolved"] + opened + counts["failed"] + counts["lapsed"]
    assert run.open_counts() == {k: counts[k] for k in ("undiscovered", "known", "paper_closed")}
    # recorded = everything that left UNDISCOVERED other than by lapsing; discovered (someone
    # noticed it) includes those and the incidents noticed but never recorded
    recorded = log.n - counts["undiscovered"] - counts["lapsed"]
    assert log.has("t_reported").sum() == ts["recorded"].sum() == recorded
    assert ts["discovered"].sum() == log.has("t_discovered").sum() >= recorded
    # flows that end in a final state: daily sums equal the final counts
    assert ts["resolved"].sum() == counts["resolved"]
    assert ts["failed"].sum() == counts["failed"]
    assert ts["lapsed"].sum() == counts["lapsed"]
    assert ts["on_spot_fixes"].sum() == (log.route == "on_spot").sum()
    assert ts["escalated"].sum() == log.escalations.sum()
    assert ts["harm"].sum() == log.df["harm"].sum()
    # feedback is felt when it reaches the reporter: cases whose feedback falls after the last
    # day are told but not yet heard
    heard = log.t_feedback < log.days
    fixed_fb = (log.state == "resolved") & (log.reporter >= 0) & (log.route != "on_spot") & heard
    assert ts["feedback_fixed"].sum() == fixed_fb.sum()
    # disputes turned public safety: logged tomorrow, so the last day's are still pending
    pending = int((run._pending_origin == ESCALATION).sum())
    assert ts["became_public_safety"].sum() == log.df["became_public_safety"].sum()
    logged = (log.df["origin"] == "escalation").sum()
    assert logged + pending == log.df["became_public_safety"].sum()
    # end-of-run snapshots
    last = ts.iloc[-1]
    assert last["backlog"] == counts["known"]
    assert last["paper_closed_open"] == counts["paper_closed"]
    assert last["open_total"] == opened
    assert last["latent_open"] == ((log.state == "undiscovered") & log.latent).sum()


def test_channel_counts_add_up(run, log):
    ts = run.timeseries()
    summ = run.summary()
    recorded = int(log.has("t_reported").sum())
    first = log.df["first_channel"].value_counts()
    assert sum(int(first.get(ch, 0)) for ch in CHANNELS) == recorded
    reports = run.incidents.reports[: log.n]
    rec = log.has("t_reported")
    ch_idx = np.array([CHANNELS.index(c) for c in log.first[rec]])
    assert (reports[np.flatnonzero(rec), ch_idx] >= 1).all(), "the first channel reported it"
    for j, ch in enumerate(CHANNELS):
        n_first = int(first.get(ch, 0))
        n_rep = int(log.df[f"reports_{ch}"].sum())
        assert n_rep >= n_first, ch
        assert n_rep == reports[:, j].sum()
        assert ts[f"reports_{ch}"].sum() == n_rep == summ[f"reports_{ch}"], ch
        assert ts[f"first_reports_{ch}"].sum() == n_first == summ[f"first_reports_{ch}"], ch
    total_reports = int(log.df["n_reports"].sum())
    assert ts["duplicate_reports"].sum() == total_reports - recorded == summ["duplicate_reports"]
    assert summ["incidents_recorded"] == recorded
    assert summ["incidents_occurred"] == log.n


def test_daily_reopenings_add_up(run, log):
    assert log.reopens.sum() > 0
    assert run.timeseries()["reopened"].sum() == log.reopens.sum() == run.summary()["reopened"]


def test_reopening_complaints_never_duplicate_a_case():
    m = GovernanceModel(rng=5, **{**STRESS, "handling.reopen_prob": 1.0})
    resolved = np.zeros(0, dtype=bool)
    for _ in range(150):
        m.step()
        in_pools = [i for p in m.dispatcher.pools for i in p.waiting_ids() + p.in_service_ids()]
        assert len(in_pools) == len(set(in_pools)), f"day {m.day}: a case is in a pool twice"
        st = m.incidents.view("state")
        assert (st[: len(resolved)][resolved] == RESOLVED).all(), f"day {m.day}: un-RESOLVED"
        resolved = st == RESOLVED


def test_no_case_is_clamped_below_the_city_tier(monkeypatch):
    clamps: dict[str, int] = {}
    submit = dispatch.Dispatcher._submit

    def spy(self, ids, handler, t_arr, rng):
        cells = self.log.cell[ids]
        for h, c, t in zip(handler.tolist(), cells.tolist(), t_arr.tolist(), strict=True):
            name = HANDLER_NAMES[h]
            pool = self.pools[int(self.pool_index(name, np.array([c]))[0])]
            if t < pool.now:
                clamps[name] = clamps.get(name, 0) + 1
        return submit(self, ids, handler, t_arr, rng)

    monkeypatch.setattr(dispatch.Dispatcher, "_submit", spy)
    m = GovernanceModel(rng=3, **BASE).run(120)
    assert sum(clamps.values()) == m.dispatcher.clamped, "the spy sees every clamp"
    assert {k: v for k, v in clamps.items() if k != "city"} == {}
