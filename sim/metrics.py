"""Outcome metrics: what is recorded each day, and the run summary.

Counts are in people and incidents, never agents: incidents arise from the population itself,
and per-resident quantities (perceived safety, trust) are means over resident agents, each
standing for the same number of people.

Two tables, never mixed (STYLE.md practice 6):

* daily (``model.datacollector`` / ``timeseries.parquet``): one row per day, the keys of
  :data:`DAILY_KEYS`;
* run summary (``model.summary()`` / ``runs.parquet``): one row per run, computed from the
  event log for incidents occurring after the warm-up, plus daily aggregates.

Times are skewed, so the summary gives medians and 90th percentiles, in hours.
:mod:`sim.outcomes` gives each metric its label, unit and better direction.

Closure is measured the way an administration measures it (DESIGN.md section 8, issue 10):
per period of :data:`PERIOD_DAYS` days (a "month") counted from the end of the warm-up
(period ``k`` = days ``[w + 30k, w + 30k + 30)``, ``w`` = warm-up days), over the cases
*reported* in the period:

* ``closure_rate`` (办结率): officially closed (resolved, or closed on paper) by the end of the
  period;
* ``on_time_rate`` (按时办结率): officially closed within the category's ``deadline_days`` of
  the report;
* ``true_resolution_rate``: truly resolved by the end of the period;

each over *all* cases reported in the period, so a case still open counts against all three.
The official closure counted is the one in force in the log: a closure overturned by a
reopening complaint is not a closure, and the case counts from its next closure. A period
enters the run summary only if it has ended by the end of the run; for the on-time rate a case
counts only once its own deadline has passed by the end of the run (a case whose deadline is
still running can neither be late nor on time yet). The summary pools the counts of those periods
(:func:`pool`); :func:`monthly` gives the table per period. The end-of-run figures of earlier
versions, state at the end of the run over every recorded case, remain as
``closure_rate_cumulative`` and ``true_resolution_rate_cumulative``. The daily ``closure_rate``
and ``resolution_rate`` are the same windowed measures over the last 30 days' reports, as of
the end of each day (on days 30, 60, ... they equal the month just ended).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.codes import CAT, CATEGORIES, CH, CHANNELS, HANDLER_POOLS, State
from sim.incidents import (
    KNOWN,
    LAPSED,
    PAPER_CLOSED,
    RESOLVED,
    UNDISCOVERED,
)
from sim.safety import wilson_interval

if TYPE_CHECKING:
    from sim.incidents import IncidentLog
    from sim.model import GovernanceModel

#: Length of the reporting period of the windowed closure figures, days (a month).
PERIOD_DAYS = 30

DAILY_KEYS: tuple[str, ...] = (
    "occurred", *(f"occurred_{c}" for c in CATEGORIES),
    "discovered", "recorded", *(f"reports_{c}" for c in CHANNELS),
    *(f"first_reports_{c}" for c in CHANNELS), "duplicate_reports",
    "on_spot_fixes", "closed", "resolved", "paper_closed", "failed", "escalated", "reopened",
    "lapsed", "became_public_safety", "harm", "mediation_attempts", "mediation_success",
    "backlog", "latent_open", "paper_closed_open", "open_total",
    "closure_rate", "resolution_rate", "closure_rate_cumulative",
    "true_resolution_rate_cumulative", "mean_wait_hours",
    "perceived_safety", "trust", "reporting_propensity",
    "survey_share_safe", "survey_ci_low", "survey_ci_high", "survey_n",
    "worker_utilisation", "worker_paperwork_hours", "worker_case_hours", "worker_patrol_hours",
    "patrol_coverage", "police_visits", "guardian_visits", "rider_reports", "volunteer_reports",
    "feedback_fixed", "feedback_not_fixed", "feedback_silence",
    *(f"utilisation_{h}" for h in HANDLER_POOLS),
)


def _get(key: str, model: GovernanceModel) -> float:
    return model.today[key]


def model_reporters() -> dict[str, Any]:
    """DataCollector reporters: one per daily key (picklable: functools.partial, no lambdas)."""
    return {k: functools.partial(_get, k) for k in DAILY_KEYS}


class Counters:
    """Running totals of terminal states (incidents never leave them), so the daily table
    needs no pass over the whole event log."""

    def __init__(self) -> None:
        self.failed = 0
        self.lapsed = 0
        # cases that may still be reported (for the daily windowed closure), and the reported
        # ones whose report time is not yet behind the window: each case is looked at while it
        # is unreported and for 30 days after its report, never via a pass over the whole log
        self._seen = 0
        self._unreported = np.zeros(0, dtype=np.int64)
        self._window = np.zeros(0, dtype=np.int64)

    def window_ids(self, log: IncidentLog, start: float) -> np.ndarray:
        """Ids of the cases reported at or after ``start`` (a superset of any later window:
        ``start`` must not decrease between calls)."""
        cand = np.concatenate([self._unreported, np.arange(self._seen, log.n, dtype=np.int64)])
        self._seen = log.n
        reported = ~np.isnan(log.t_reported[cand])
        # an unreported case in a terminal state (lapsed, ...) can never be reported
        self._unreported = cand[~reported & (log.state[cand] <= PAPER_CLOSED)]
        w = np.concatenate([self._window, cand[reported]])
        self._window = w[log.t_reported[w] >= start]
        return self._window


def record_day(model: GovernanceModel, new_ids, det, hstats, harmed, visits, survey) -> None:
    """Fill ``model.today`` with the day's metrics (called once per step, after everything)."""
    t = model.today
    log = model.incidents
    res = model.residents
    city = model.city
    p = model.patrols
    d = model.day
    cats = log.category[new_ids]
    t["occurred"] = len(new_ids)
    occ = np.bincount(cats, minlength=len(CATEGORIES))
    for c, k in CAT.items():
        t[f"occurred_{c}"] = int(occ[k])
    t["discovered"] = int(det.noticed)  # someone noticed it (recorded or not)
    t["recorded"] = int(det.first_by_channel.sum())
    for c, k in CH.items():
        t[f"reports_{c}"] = int(det.reports_by_channel[k])
        t[f"first_reports_{c}"] = int(det.first_by_channel[k])
    t["duplicate_reports"] = int(det.reports_by_channel.sum() - det.first_by_channel.sum())
    t["on_spot_fixes"] = len(det.on_spot_ids)
    t["resolved"] = hstats["resolved"] + len(det.on_spot_ids) + len(det.settled_ids)
    t["paper_closed"] = hstats["paper_closed"]
    t["closed"] = t["resolved"] + t["paper_closed"]
    t["failed"] = hstats["failed"]
    t["escalated"] = hstats["escalated"]
    t["lapsed"] = det.lapsed
    t["harm"] = harmed
    t["mediation_attempts"] = hstats["mediation_done"]
    t["mediation_success"] = hstats["mediation_success"]
    # counts of open states from the open set; terminal states by running totals
    op = log.open_ids()
    ost = log.state[op]
    st = np.bincount(ost, minlength=len(State))
    model.counters.failed += hstats["failed"]
    model.counters.lapsed += det.lapsed
    n_resolved = log.n - len(op) - model.counters.failed - model.counters.lapsed
    t["backlog"] = int(st[KNOWN])
    t["latent_open"] = int(((ost == UNDISCOVERED) & model.cat.latent[log.category[op]]).sum())
    t["paper_closed_open"] = int(st[PAPER_CLOSED])
    t["open_total"] = len(op)
    recorded = log.n - st[UNDISCOVERED] - model.counters.lapsed
    t["closure_rate_cumulative"] = float((n_resolved + st[PAPER_CLOSED]) / recorded) if recorded else np.nan
    t["true_resolution_rate_cumulative"] = float(n_resolved / recorded) if recorded else np.nan
    lo = float(d + 1 - PERIOD_DAYS)
    w = window_counts(log, lo, float(d + 1), ids=model.counters.window_ids(log, lo))
    t["closure_rate"] = w["closed"] / w["reported"] if w["reported"] else np.nan
    t["resolution_rate"] = w["resolved"] / w["reported"] if w["reported"] else np.nan
    t["mean_wait_hours"] = 24.0 * hstats["wait_sum"] / hstats["started"] if hstats["started"] else np.nan
    for h in HANDLER_POOLS:
        cap = hstats.get(f"cap_{h}", 0.0)
        t[f"utilisation_{h}"] = hstats.get(f"busy_{h}", 0.0) / cap if cap > 0 else np.nan
    t["perceived_safety"] = model.safety.mean()
    t["trust"] = float(res.trust.mean()) if res.n else np.nan
    t["reporting_propensity"] = float(np.average(model.cell_propensity, weights=city.population + 1e-12))
    if survey is not None:
        t["survey_share_safe"], t["survey_ci_low"], t["survey_ci_high"] = (
            survey.share_safe, survey.ci_low, survey.ci_high)
        t["survey_n"] = survey.n
    else:
        t["survey_share_safe"] = t["survey_ci_low"] = t["survey_ci_high"] = np.nan
        t["survey_n"] = 0
    gw = model.config.grid_workers
    t["worker_utilisation"] = float(p.worker_util_grid.mean())
    t["worker_paperwork_hours"] = p.per_worker(p.worker_paper_h_grid)
    t["worker_case_hours"] = p.per_worker(p.worker_case_h_grid)
    t["worker_patrol_hours"] = p.per_worker(p.worker_patrol_h_grid)
    recent = p.last_worker_visit >= d - gw.target_revisit_days + 1
    pop = city.population
    t["patrol_coverage"] = float(pop[recent].sum() / max(1, pop.sum()))
    t["police_visits"] = float(visits.police.sum())
    t["guardian_visits"] = float(visits.guardians(model.config.dynamics.community_volunteer_guardian_weight).sum())
    t["rider_reports"] = det.rider_reports
    t["volunteer_reports"] = det.volunteer_reports


# --------------------------------------------------------------------------- windowed closure
def window_counts(log: IncidentLog, start: float, end: float,
                  ids: np.ndarray | None = None) -> dict[str, int]:
    """Cases reported in ``[start, end)``: how many, how many officially closed (the closure in
    force) by ``end``, how many truly resolved by ``end``.

    Args:
        log: the event log.
        start, end: the window of report times, model days.
        ids: candidate cases (a superset of those reported in the window); None: all.
    """
    ids = np.arange(log.n) if ids is None else ids
    t_rep = log.t_reported[ids]
    with np.errstate(invalid="ignore"):  # unreported cases have t_reported = NaN
        ids = ids[(t_rep >= start) & (t_rep < end)]
    st = log.state[ids]
    closed = ((st == RESOLVED) | (st == PAPER_CLOSED)) & (log.t_closed[ids] <= end)
    resolved = (st == RESOLVED) & (log.t_resolved[ids] <= end)
    return {"reported": len(ids), "closed": int(closed.sum()), "resolved": int(resolved.sum())}


def monthly(source: GovernanceModel | IncidentLog, days: float | None = None,
            deadline_days: np.ndarray | None = None, warmup_days: float = 0) -> pd.DataFrame:
    """Closure as administrations measure it, one row per period of :data:`PERIOD_DAYS` days
    (see the module docstring).

    Args:
        source: a model (its event log, days simulated and category deadlines are used) or an
            :class:`~sim.incidents.IncidentLog` (then give ``days`` and ``deadline_days``).
        days: the end of the observation, model days (default: the model's days simulated).
        deadline_days: (n_categories,) deadline of each category, days (default: the
            model's).
        warmup_days: the periods start here; cases reported before it are left out.

    Returns:
        One row per period from 0 to the last one with a reported case: ``period``,
        ``start_day``, ``end_day``, ``reported``, ``closed_by_period_end``, ``closed_on_time``,
        ``resolved_by_period_end``, the three rates (``closure_rate``, ``on_time_rate``,
        ``true_resolution_rate``; NaN where the period has not ended by ``days``), the number
        of cases whose deadline has passed (``due``, the on-time rate's denominator), and the
        flag ``complete`` (the period has ended).
    """
    if hasattr(source, "incidents"):
        log = source.incidents
        days = float(source.steps) if days is None else float(days)
        deadline_days = source.cat.deadline_days if deadline_days is None else deadline_days
    else:
        log = source
        if days is None or deadline_days is None:
            raise TypeError("monthly(log, ...) needs days and deadline_days")
    deadline_days = np.asarray(deadline_days, dtype=np.float64)
    n = log.n
    t_rep = log.t_reported[:n]
    ids = np.flatnonzero(~np.isnan(t_rep))
    origin = float(warmup_days)
    ids = ids[t_rep[ids] >= origin]
    t_rep = t_rep[ids]
    period = np.floor((t_rep - origin) / PERIOD_DAYS).astype(np.int64)
    n_periods = int(period.max()) + 1 if len(ids) else 0
    end = origin + (period + 1.0) * PERIOD_DAYS
    st = log.state[ids]
    official = (st == RESOLVED) | (st == PAPER_CLOSED)
    t_clo = log.t_closed[ids]
    closed = official & (t_clo <= end)
    deadline = t_rep + deadline_days[log.category[ids]]
    due = deadline <= days
    on_time = official & (t_clo <= deadline) & due
    resolved = (st == RESOLVED) & (log.t_resolved[ids] <= end)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(period[mask], minlength=n_periods)

    k = np.arange(n_periods)
    df = pd.DataFrame({
        "period": k,
        "start_day": origin + k * PERIOD_DAYS,
        "end_day": origin + (k + 1) * PERIOD_DAYS,
        "reported": np.bincount(period, minlength=n_periods),
        "due": count(due),
        "closed_by_period_end": count(closed),
        "closed_on_time": count(on_time),
        "resolved_by_period_end": count(resolved),
    })
    df["complete"] = df["end_day"] <= days
    done = df["complete"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        for rate, num, den in (("closure_rate", "closed_by_period_end", "reported"),
                               ("on_time_rate", "closed_on_time", "due"),
                               ("true_resolution_rate", "resolved_by_period_end", "reported")):
            d = df[den].to_numpy(dtype=float)
            df[rate] = np.where(done & (d > 0), df[num].to_numpy(dtype=float) / d, np.nan)
    return df


def pool(table: pd.DataFrame) -> dict[str, float]:
    """The run summary's windowed figures from :func:`monthly`'s table: counts summed over the
    periods that have ended, then divided, so each period weighs by its reported cases (for
    on-time, by its cases whose deadline has passed)."""
    used = table["complete"]
    used_ot = used & (table["due"] > 0)
    rep = float(table.loc[used, "reported"].sum())
    rep_ot = float(table.loc[used_ot, "due"].sum())
    return {
        "closure_rate": table.loc[used, "closed_by_period_end"].sum() / rep if rep else np.nan,
        "on_time_rate": table.loc[used_ot, "closed_on_time"].sum() / rep_ot if rep_ot else np.nan,
        "true_resolution_rate": (table.loc[used, "resolved_by_period_end"].sum() / rep
                                 if rep else np.nan),
        "closure_periods": int(used.sum()),
        "on_time_periods": int(used_ot.sum()),
    }


def _q(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q)) if len(x) else float("nan")


def summarise(model: GovernanceModel, warmup_days: int = 0) -> dict[str, float]:
    """One row of run-level outcomes (see the module docstring)."""
    log = model.incidents
    n = log.n
    cp = model.cat
    sel = log.t_occurred[:n] >= warmup_days
    st = log.state[:n][sel]
    cat = log.category[:n][sel]
    t_occ = log.t_occurred[:n][sel]
    t_dis = log.t_discovered[:n][sel]
    t_rep = log.t_reported[:n][sel]
    t_tri = log.t_triaged[:n][sel]
    t_clo = log.t_closed[:n][sel]
    t_res = log.t_resolved[:n][sel]
    reports = log.reports[:n][sel]
    first = log.first_channel[:n][sel]
    out: dict[str, float] = {}
    occurred = int(sel.sum())
    recorded_m = ~np.isnan(t_rep)
    recorded = int(recorded_m.sum())
    closed_m = (st == RESOLVED) | (st == PAPER_CLOSED)
    resolved_m = st == RESOLVED
    out["incidents_occurred"] = occurred
    for c, k in CAT.items():
        out[f"occurred_{c}"] = int((cat == k).sum())
    out["incidents_discovered"] = int((~np.isnan(t_dis)).sum())
    out["incidents_recorded"] = recorded
    for c, k in CH.items():
        out[f"reports_{c}"] = int(reports[:, k].sum())
        out[f"first_reports_{c}"] = int((first == k).sum())
    out["duplicate_reports"] = int(reports.sum()) - recorded
    out.update(pool(monthly(model, warmup_days=warmup_days)))
    out["closure_rate_cumulative"] = closed_m.sum() / recorded if recorded else np.nan
    out["true_resolution_rate_cumulative"] = resolved_m.sum() / recorded if recorded else np.nan
    out["resolved_share_of_occurred"] = resolved_m.sum() / occurred if occurred else np.nan
    dt_close = (t_clo - t_rep)[closed_m]
    ps = cat == CAT["public_safety"]
    out["public_safety_clearance"] = (
        float(resolved_m[ps].sum() / ps.sum()) if ps.any() else np.nan
    )
    dis = ~np.isnan(t_dis)
    out["time_to_discovery_median_h"] = _q((t_dis - t_occ)[dis] * 24, 0.5)
    out["time_to_discovery_p90_h"] = _q((t_dis - t_occ)[dis] * 24, 0.9)
    out["time_to_close_median_h"] = _q(dt_close * 24, 0.5)
    out["time_to_close_p90_h"] = _q(dt_close * 24, 0.9)
    dt_res = (t_res - t_rep)[resolved_m]
    out["time_to_resolution_median_h"] = _q(dt_res * 24, 0.5)
    out["time_to_resolution_p90_h"] = _q(dt_res * 24, 0.9)
    tri = ~np.isnan(t_tri)
    out["dispatch_delay_median_h"] = _q((t_tri - t_rep)[tri] * 24, 0.5)
    all_st = log.state[:n]
    out["backlog_end"] = int((all_st == KNOWN).sum())
    out["latent_open_end"] = int(((all_st == UNDISCOVERED) & cp.latent[log.category[:n]]).sum())
    out["paper_closed_open_end"] = int((all_st == PAPER_CLOSED).sum())
    out["failed"] = int((st == State.FAILED).sum())
    out["lapsed"] = int((st == LAPSED).sum())
    out["reopened"] = int(log.reopens[:n][sel].sum())
    out["escalations"] = int(log.escalations[:n][sel].sum())
    out["became_public_safety"] = int(log.became_public_safety[:n][sel].sum())

    df = model.datacollector.model_vars
    days = np.arange(1, len(df["occurred"]) + 1)
    after = days > warmup_days

    def dsum(key: str) -> float:
        return float(np.asarray(df[key], dtype=float)[after].sum())

    def dmean(key: str) -> float:
        v = np.asarray(df[key], dtype=float)[after]
        v = v[~np.isnan(v)]
        return float(v.mean()) if len(v) else np.nan

    out["harm"] = dsum("harm")
    att = dsum("mediation_attempts")
    out["mediation_success_rate"] = dsum("mediation_success") / att if att else np.nan
    res = model.residents
    out["perceived_safety_mean"] = float(res.safety.mean()) if res.n else np.nan
    # survey: pool every wave after warm-up (each wave is an independent sample)
    waves = [s for s in model.safety.surveys if s.day >= warmup_days]
    n_s = sum(s.n for s in waves)
    yes = sum(round(s.share_safe * s.n) for s in waves)
    out["survey_waves"] = len(waves)
    out["survey_n"] = n_s
    out["survey_share_safe"] = yes / n_s if n_s else np.nan
    out["survey_ci_low"], out["survey_ci_high"] = wilson_interval(yes, n_s)
    out["trust_mean"] = float(res.trust.mean()) if res.n else np.nan
    out["worker_utilisation"] = dmean("worker_utilisation")
    out["worker_paperwork_hours"] = dmean("worker_paperwork_hours")
    out["worker_patrol_hours"] = dmean("worker_patrol_hours")
    out["patrol_coverage"] = dmean("patrol_coverage")
    for h, u in model.dispatcher.utilisation_by_handler().items():
        out[f"utilisation_{h}"] = u
    riders = model.config.volunteers.riders
    n_days = int(after.sum())
    out["rider_reports_per_rider_month"] = (
        dsum("rider_reports") / riders / (n_days / 30.4375) if riders and n_days else np.nan
    )
    out["days"] = len(days)
    out["warmup_days"] = warmup_days
    out["population"] = int(model.city.population.sum())
    out["grids"] = model.city.n_grids
    out["people_per_grid"] = out["population"] / model.city.n_grids
    return {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in out.items()}
