"""Scenario comparison and reform attribution, with their uncertainty.

* :func:`summarise_runs`: mean of each outcome per scenario with a t-interval over runs.
* :func:`compare`: each scenario against a baseline, paired by replication. Replication ``r``
  of every scenario runs with the same seed (common random numbers), so the paired
  difference removes the noise the scenarios share; the interval is a paired t-interval
  (Student t on the per-replication differences) and the p-value a paired t-test. The
  unpaired (Welch) interval is reported beside it, to show what pairing buys.
* :func:`attribute`: Shapley values of reform levers from an experiment over all 2^k on/off
  combinations (``experiments/reform_levers.yaml``): for each replication, lever j gets
  ``phi_j = sum_S |S|! (k-|S|-1)! / k! * (v(S + j) - v(S))`` over lever sets S without j, where
  ``v(S)`` is the outcome with exactly the levers in S switched on. Per replication the values
  add up exactly to ``v(all) - v(none)`` (efficiency); the intervals are t-intervals over
  replications.

The intervals come from :mod:`sim.analysis.intervals` (Student t and Welch, via scipy).
All functions take the runs table (``sim.batch.results.load(DIR).runs``) or the Results object,
use only runs with status ``done``, and return tidy DataFrames.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sim import outcomes as registry
from sim.analysis.intervals import t_interval, welch_interval

__all__ = ["attribute", "compare", "comparison_of", "done_runs", "shapley_weights",
           "summarise_runs", "t_interval"]


def done_runs(results: Any) -> pd.DataFrame:
    """The runs that finished (``status == "done"``) of a Results or a runs table: every
    analysis uses only these (failed runs are listed in ``runs.parquet`` with their error)."""
    runs = results.runs if hasattr(results, "runs") else results
    if "status" in runs:
        runs = runs[runs["status"] == "done"]
    return runs


def summarise_runs(results: Any, outcomes: list[str] | None = None, conf: float = 0.95,
                   by: str = "scenario") -> pd.DataFrame:
    """Mean and t-interval over runs of each outcome per scenario (tidy)."""
    runs = done_runs(results)
    outcomes = [o for o in (outcomes or registry.COMPARE) if o in runs]
    rows = []
    for key, sub in runs.groupby(by, sort=False):
        for o in outcomes:
            m, lo, hi = t_interval(sub[o].to_numpy(), conf)
            rows.append({by: key, "outcome": o, "label": registry.label(o),
                         "unit": registry.unit(o), "n": int(sub[o].notna().sum()),
                         "mean": m, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def scenarios_and_baseline(runs: pd.DataFrame, baseline: str | None) -> tuple[list[str], str]:
    """The scenario labels of finished runs (in order of appearance) and the baseline (default:
    the first).

    Raises:
        ValueError: no finished runs, or ``baseline`` is not one of the scenarios.
    """
    scenarios = list(dict.fromkeys(runs["scenario"]))
    if not scenarios:
        raise ValueError("no finished runs to compare")
    baseline = baseline or scenarios[0]
    if baseline not in scenarios:
        raise ValueError(f"baseline {baseline!r} is not one of the scenarios {scenarios}")
    return scenarios, baseline


def compare(results: Any, baseline: str | None = None, outcomes: list[str] | None = None,
            conf: float = 0.95) -> pd.DataFrame:
    """Each scenario against the baseline, paired by replication.

    Args:
        results: a Results object or runs table with ``scenario`` and ``replication`` columns.
        baseline: the baseline scenario label (default: the first scenario).
        outcomes: outcome columns (default :data:`sim.outcomes.COMPARE` that are present).
        conf: confidence level of the intervals.

    Returns:
        One row per scenario and outcome: ``mean, ci_low, ci_high`` of the scenario, and for
        non-baseline scenarios ``diff`` (scenario - baseline, mean of paired differences),
        ``diff_ci_low, diff_ci_high`` (paired t), ``p_value`` (paired t-test),
        ``unpaired_ci_low, unpaired_ci_high`` (Welch), ``n_pairs`` and ``distinguishable``
        (the paired interval excludes zero). ``method`` names the test.
    """
    runs = done_runs(results)
    scenarios, baseline = scenarios_and_baseline(runs, baseline)
    outcomes = [o for o in (outcomes or registry.COMPARE) if o in runs]
    # pairs are (replication, design point) when a scenario has several design points
    several_points = ("point_id" in runs
                      and runs.groupby("scenario")["point_id"].nunique().max() > 1)
    key = ["replication"] + (["point_id"] if several_points else [])
    base = runs[runs["scenario"] == baseline].set_index(key)
    summary = summarise_runs(runs, outcomes, conf)
    rows = []
    for s in scenarios:
        sub = runs[runs["scenario"] == s].set_index(key)
        for o in outcomes:
            srow = summary[(summary["scenario"] == s)
                           & (summary["outcome"] == o)].iloc[0].to_dict()
            row = {**srow, "baseline": baseline}
            if s != baseline:
                joined = pd.concat([sub[o].rename("x"), base[o].rename("y")], axis=1,
                                   join="inner").dropna()
                d = (joined["x"] - joined["y"]).to_numpy(dtype=float)
                m, lo, hi = t_interval(d, conf)
                if len(d) >= 2 and np.std(d, ddof=1) > 0:
                    p = float(stats.ttest_1samp(d, 0.0).pvalue)
                elif len(d) >= 1:
                    p = 0.0 if m != 0 else 1.0  # identical differences: no sampling noise left
                    lo = hi = m
                else:
                    p = np.nan
                xa, ya = sub[o].dropna().to_numpy(float), base[o].dropna().to_numpy(float)
                ulo, uhi = welch_interval(xa, ya, conf)
                row.update(diff=m, diff_ci_low=lo, diff_ci_high=hi, p_value=p, n_pairs=len(d),
                           unpaired_ci_low=ulo, unpaired_ci_high=uhi,
                           distinguishable=bool(not np.isnan(lo) and (lo > 0 or hi < 0)),
                           method="paired t (replications share seeds)")
            rows.append(row)
    return pd.DataFrame(rows)


def comparison_of(results: Any) -> pd.DataFrame:
    """The comparison of a results directory: the ``comparison.parquet`` that ``govsim compare``
    wrote (with the baseline it was asked for), else :func:`compare` against the first scenario.
    """
    f = Path(results.path) / "comparison.parquet"
    if f.is_file():
        return pd.read_parquet(f)
    return compare(results)


def shapley_weights(k: int) -> dict[int, float]:
    """Weight of a coalition of size s in lever j's Shapley sum: s! (k-s-1)! / k!."""
    return {s: math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)}


def attribute(results: Any, levers: list[str] | None = None, outcomes: list[str] | None = None,
              conf: float = 0.95, scenario: str | None = None) -> pd.DataFrame:
    """Shapley attribution of the reform's effect to its levers.

    Args:
        results: Results or runs of an experiment over all on/off combinations of ``levers``
            (columns holding 0/1 or False/True; 1 = the reform's setting).
        levers: lever columns (default: the experiment's levers from its metadata, or every
            column holding only 0/1).
        outcomes: outcomes to attribute (default :data:`sim.outcomes.COMPARE` present).
        conf: confidence level.
        scenario: which base scenario label to use when there are several.

    Returns:
        Tidy rows per outcome: one per lever (``kind = "lever"``, ``value`` its Shapley value
        with ``ci_low, ci_high`` over replications), plus ``kind = "before"`` (all levers off),
        ``"after"`` (all on) and ``"total"`` (after - before). Shapley values add up to the total
        in every replication, hence also on average.
    """
    runs = done_runs(results)
    meta = getattr(results, "metadata", {}) or {}
    if scenario is not None:
        runs = runs[runs["scenario"] == scenario]
    elif runs["scenario"].nunique() > 1:
        raise ValueError(f"several scenarios {sorted(runs['scenario'].unique())}: "
                         "say which with scenario=")
    if levers is None:
        levers = list(meta.get("levers") or meta.get("factors") or [])
        if not levers:
            levers = [c for c in runs.columns if c not in ("replication", "point_id")
                      and runs[c].dropna().isin([0, 1]).all() and runs[c].nunique() == 2]
    if not levers:
        raise ValueError("no levers given or found")
    k = len(levers)
    outcomes = [o for o in (outcomes or registry.COMPARE) if o in runs]
    on = runs[levers].astype(int).to_numpy()
    if not np.isin(on, [0, 1]).all():
        raise ValueError(f"lever columns {levers} must hold 0/1 (off/on)")
    code = (on * (1 << np.arange(k))).sum(axis=1)
    table = runs.assign(_code=code)
    missing = set(range(1 << k)) - set(code)
    if missing:
        raise ValueError(f"attribution needs every on/off combination of {levers}; "
                         f"missing {len(missing)} of {1 << k}")
    w = shapley_weights(k)
    rows = []
    for o in outcomes:
        v = table.pivot_table(index="replication", columns="_code", values=o, aggfunc="mean")
        v = v.dropna()
        if v.empty:
            continue
        vals = v.to_numpy()  # (reps, 2^k), column = coalition code
        cols = list(v.columns)
        idx = {c: i for i, c in enumerate(cols)}
        phi = np.zeros((len(v), k))
        for j in range(k):
            for s_code in range(1 << k):
                if s_code >> j & 1:
                    continue
                size = s_code.bit_count()
                phi[:, j] += w[size] * (vals[:, idx[s_code | (1 << j)]] - vals[:, idx[s_code]])
        before, after = vals[:, idx[0]], vals[:, idx[(1 << k) - 1]]
        label, unit = registry.label(o), registry.unit(o)
        for kind, name, x in (("before", "all levers off", before),
                              ("after", "all levers on", after),
                              ("total", "reform effect", after - before)):
            m, lo, hi = t_interval(x, conf)
            rows.append({"outcome": o, "label": label, "unit": unit, "kind": kind, "lever": name,
                         "value": m, "ci_low": lo, "ci_high": hi, "n": len(x)})
        for j, lever in enumerate(levers):
            m, lo, hi = t_interval(phi[:, j], conf)
            rows.append({"outcome": o, "label": label, "unit": unit, "kind": "lever",
                         "lever": lever, "value": m, "ci_low": lo, "ci_high": hi,
                         "n": len(phi)})
    return pd.DataFrame(rows)

