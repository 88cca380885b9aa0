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
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

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
    from sim.model import GovernanceModel

DAILY_KEYS: tuple[str, ...] = (
    "occurred", *(f"occurred_{c}" for c in CATEGORIES),
    "discovered", "recorded", *(f"reports_{c}" for c in CHANNELS),
    *(f"first_reports_{c}" for c in CHANNELS), "duplicate_reports",
    "on_spot_fixes", "closed", "resolved", "paper_closed", "failed", "escalated", "reopened",
    "lapsed", "became_public_safety", "harm", "mediation_attempts", "mediation_success",
    "backlog", "latent_open", "paper_closed_open", "open_total",
    "closure_rate", "resolution_rate", "mean_wait_hours",
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
    t["discovered"] = int(det.first_by_channel.sum())
    t["recorded"] = int(det.first_by_channel.sum())
    for c, k in CH.items():
        t[f"reports_{c}"] = int(det.reports_by_channel[k])
        t[f"first_reports_{c}"] = int(det.first_by_channel[k])
    t["duplicate_reports"] = int(det.reports_by_channel.sum() - det.first_by_channel.sum())
    t["on_spot_fixes"] = len(det.on_spot_ids)
    t["resolved"] = hstats["resolved"] + len(det.on_spot_ids)
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
    t["closure_rate"] = float((n_resolved + st[PAPER_CLOSED]) / recorded) if recorded else np.nan
    t["resolution_rate"] = float(n_resolved / recorded) if recorded else np.nan
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
    per = max(1, gw.per_grid)
    t["worker_utilisation"] = float(p.worker_util_grid.mean())
    t["worker_paperwork_hours"] = float(p.worker_paper_h_grid.mean() / per)
    t["worker_case_hours"] = float(p.worker_case_h_grid.mean() / per)
    t["worker_patrol_hours"] = float(p.worker_patrol_h_grid.mean() / per)
    recent = p.last_worker_visit >= d - gw.target_revisit_days + 1
    pop = city.population
    t["patrol_coverage"] = float(pop[recent].sum() / max(1, pop.sum()))
    t["police_visits"] = float(visits.police.sum())
    t["guardian_visits"] = float(visits.guardians(model.config.dynamics.community_volunteer_guardian_weight).sum())
    t["rider_reports"] = det.rider_reports
    t["volunteer_reports"] = det.volunteer_reports


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
    out["closure_rate"] = closed_m.sum() / recorded if recorded else np.nan
    out["true_resolution_rate"] = resolved_m.sum() / recorded if recorded else np.nan
    out["resolved_share_of_occurred"] = resolved_m.sum() / occurred if occurred else np.nan
    dt_close = (t_clo - t_rep)[closed_m]
    ps = cat == CAT["public_safety"]
    out["public_safety_clearance"] = (
        float(resolved_m[ps].sum() / ps.sum()) if ps.any() else np.nan
    )
    out["on_time_rate"] = (
        float((dt_close <= cp.deadline_days[cat[closed_m]]).mean()) if closed_m.any() else np.nan
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
