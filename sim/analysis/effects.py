"""Main effects of a full factorial design and standardized regression coefficients (SRC) of a
Latin hypercube: the sensitivity measures that need no SALib estimator.

* :func:`factorial_effects`: the mean outcome at every level of every factor, its main effect
  and a t-interval from the replication noise pooled within design points
  (:func:`sim.analysis.intervals.t_half_width`);
* :func:`src_indices`: a least-squares fit of the standardized point means on the standardized
  factors, with percentile-bootstrap intervals.

Conventions (done runs only, one group per base scenario, NaN plus a ``note`` where an index
is undefined) are those of :mod:`sim.analysis.sensitivity`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.compare import done_runs
from sim.analysis.indices import (
    per_scenario,
    point_means,
    require_columns,
    salib_problem,
)
from sim.analysis.intervals import t_half_width, t_interval

__all__ = ["FACTORIAL_COLUMNS", "SRC_COLUMNS", "factorial_effects", "src_indices"]

FACTORIAL_COLUMNS = ["scenario", "outcome", "factor", "level", "mean", "ci_low", "ci_high", "n",
                     "effect", "note"]
SRC_COLUMNS = ["scenario", "outcome", "factor", "src", "src_low", "src_high", "r2", "n_points",
               "note"]


# ----------------------------------------------------------------------------------------------
# Full factorial
# ----------------------------------------------------------------------------------------------

def _level_label(value: Any, design_levels: Sequence[Any]) -> tuple[str, int]:
    """A stable text label for a factor level and its position in the design's level list."""
    for i, lv in enumerate(design_levels):
        try:
            if lv == value or (isinstance(lv, (int, float)) and not isinstance(lv, bool)
                               and isinstance(value, (int, float, np.number))
                               and math.isclose(float(lv), float(value), rel_tol=1e-9)):
                return str(lv), i
        except (TypeError, ValueError):
            continue
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if isinstance(value, np.generic):
        value = value.item()
    return str(value), len(design_levels)


def factorial_effects(
    runs: pd.DataFrame,
    design: Mapping[str, Any],
    outcomes: Sequence[str],
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Main effects of a full factorial design, per scenario, outcome, factor and level.

    For every level of every factor: the mean outcome over all done runs at that level (all
    combinations of the other factors, all replications), the number of runs ``n`` (runs with
    a NaN outcome are left out), the main effect ``level mean - grand mean``, and a Student-t
    confidence interval of the level mean.

    The interval is ``mean ± t_{(1+c)/2, df} sqrt(s2 / n)`` with ``s2`` the replication
    (within design point) variance pooled over the points at that level and ``df`` its degrees
    of freedom, ``sum(n_point - 1)``. The levels of the other factors are fixed by the design,
    not sampled, so only the replication noise makes the level mean uncertain; the naive
    standard deviation over all runs at the level would also count the other factors' effects
    and give far too wide intervals. Noise may differ between levels of the factor (``s2`` is
    per level) but is assumed equal across the other factors' levels within a level. Without
    replications (``df = 0``) the naive t-interval over the runs at the level is given instead
    and ``note`` says so; it is conservative. With a single run at a level the interval is NaN.

    In a balanced design (no failed runs) the effects of a factor sum to zero and are the
    additive main effects of the ANOVA decomposition; failed runs make the design unbalanced
    and the effects then also carry part of the other factors' effects.

    Args:
        runs: the runs table; the factor columns hold the values as run, ``point_id``
            identifies the cell (factor combination); without it the factor columns do.
        design: ``metadata["design"]`` of kind ``"full_factorial"`` with ``factors``
            ``{name: [levels...]}`` (used for the order of the levels).
        outcomes: outcome columns.
        conf_level: confidence level of the t-interval.

    Returns:
        Columns ``scenario, outcome, factor, level, mean, ci_low, ci_high, n, effect, note``;
        ``level`` is text (levels of different factors can have different types), in the order
        of the design's level list.
    """
    factors: Mapping[str, Sequence[Any]] = design.get("factors") or {}
    if not factors:
        raise ValueError("full_factorial design has no factors")
    require_columns(runs, list(factors), "factors")
    require_columns(runs, outcomes, "outcomes")
    cell_keys = ["point_id"] if "point_id" in runs else list(factors)
    rows: list[dict[str, Any]] = []
    for scenario, g in per_scenario(done_runs(runs)):
        cell = g.groupby(cell_keys, sort=False, dropna=False).ngroup().to_numpy()
        for outcome in outcomes:
            y_all = g[outcome].to_numpy(dtype=float)
            fin = np.isfinite(y_all)
            grand = float(y_all[fin].mean()) if fin.any() else math.nan
            for factor, levels in factors.items():
                groups: list[tuple[int, str, np.ndarray, np.ndarray]] = []
                for value, idx in g.groupby(factor, sort=False, dropna=False).indices.items():
                    label, order = _level_label(value, list(levels))
                    keep = idx[fin[idx]]
                    groups.append((order, label, y_all[keep], cell[keep]))
                groups.sort(key=lambda t: (t[0], t[1]))
                for _, label, y, c in groups:
                    n = int(y.size)
                    mean = float(y.mean()) if n else math.nan
                    note = ""
                    ss, df = 0.0, 0
                    for cid in np.unique(c):
                        yc = y[c == cid]
                        ss += float(((yc - yc.mean()) ** 2).sum())
                        df += yc.size - 1
                    if df > 0:  # pooled replication variance, with its own df
                        half = float(t_half_width(math.sqrt(ss / df), n, conf_level, df=df))
                        lo, hi = mean - half, mean + half
                    elif n >= 2:
                        _, lo, hi = t_interval(y, conf_level)
                        note = ("no replications: interval over runs, includes the other "
                                "factors' effects (conservative)")
                    else:
                        lo = hi = math.nan
                    rows.append({"scenario": scenario, "outcome": outcome, "factor": factor,
                                 "level": label, "mean": mean, "ci_low": lo, "ci_high": hi,
                                 "n": n, "effect": mean - grand, "note": note})
    out = pd.DataFrame(rows, columns=FACTORIAL_COLUMNS)
    out["n"] = out["n"].astype("int64")
    return out


# ----------------------------------------------------------------------------------------------
# Latin hypercube: standardized regression coefficients
# ----------------------------------------------------------------------------------------------

def _src_fit(Z: np.ndarray, yz: np.ndarray) -> tuple[np.ndarray, float]:
    beta, *_ = np.linalg.lstsq(Z, yz, rcond=None)
    resid = yz - Z @ beta
    ss = float(yz @ yz)
    return beta, (1.0 - float(resid @ resid) / ss) if ss > 0 else math.nan


def _standardize(a: np.ndarray) -> np.ndarray:
    sd = a.std(axis=0, ddof=1)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, np.nan)


def src_indices(
    runs: pd.DataFrame,
    design: Mapping[str, Any],
    outcomes: Sequence[str],
    conf_level: float = 0.95,
    seed: int = 0,
    *,
    n_boot: int = 1000,
) -> pd.DataFrame:
    """Standardized regression coefficients (SRC) of a Latin hypercube (or any random) design.

    Each outcome is averaged over the replications of a design point; the point averages and
    the factor values are standardized (zero mean, unit sd) and the outcome is regressed on all
    factors by least squares. The coefficient of a factor is its SRC: the change of the outcome,
    in sd, per sd of the factor with the others held fixed. For a near-linear response
    (``r2`` close to 1) ``SRC^2`` is the share of the output variance due to the factor; a low
    ``r2`` (say below 0.7) means the response is non-linear or interacting and SRCs rank
    factors poorly (use a Sobol' design then).

    Confidence intervals are percentile bootstrap intervals from ``n_boot`` resamples of the
    design points (with their replications; this is the run bootstrap when there is one
    replication), re-standardizing in every resample.

    References:
        Saltelli, A., Ratto, M., Andres, T., et al. (2008). Global Sensitivity Analysis: The
        Primer, section 1.2.5. Wiley.

    Args:
        runs: the runs table.
        design: ``metadata["design"]`` with ``problem`` (for the factor names).
        outcomes: outcome columns.
        conf_level: level of the bootstrap interval.
        seed: seed of the bootstrap.
        n_boot: bootstrap resamples.

    Returns:
        Columns ``scenario, outcome, factor, src, src_low, src_high, r2, n_points, note``.
    """
    problem = salib_problem(design)
    names = list(problem["names"])
    k = len(names)
    require_columns(runs, names, "factors")
    require_columns(runs, outcomes, "outcomes")
    alpha = 1.0 - conf_level
    rows: list[dict[str, Any]] = []
    for scenario, g in per_scenario(runs):
        pts = point_means(g, names, outcomes, None, scenario, "SRC")
        X = pts[names].to_numpy(dtype=float)
        for outcome in outcomes:
            y = pts[outcome].to_numpy(dtype=float)
            ok = np.isfinite(y)
            Xo, yo = X[ok], y[ok]
            n = int(ok.sum())
            note = ""
            if (~ok).any():
                note = f"{int((~ok).sum())} design point(s) with NaN outcome left out"
            src = lo = hi = np.full(k, np.nan)
            r2 = math.nan
            const_x = Xo.std(axis=0) == 0 if n else np.ones(k, bool)
            if n < k + 2:
                note = "; ".join(x for x in (note, f"undefined: {n} points for {k} factors") if x)
            elif np.ptp(yo) <= 1e-12 * max(1.0, float(np.max(np.abs(yo)))):
                note = "; ".join(x for x in (note, "undefined: outcome is constant") if x)
            else:
                use = ~const_x
                src = np.full(k, np.nan)
                b, r2 = _src_fit(_standardize(Xo[:, use]), _standardize(yo))
                src[use] = b
                rng = np.random.default_rng(seed)
                boots = np.full((n_boot, k), np.nan)
                for i in range(n_boot):
                    idx = rng.integers(0, n, n)
                    Zb, yb = _standardize(Xo[idx][:, use]), _standardize(yo[idx])
                    if not (np.all(np.isfinite(Zb)) and np.all(np.isfinite(yb))):
                        continue  # a resample without spread in some column
                    boots[i, use] = _src_fit(Zb, yb)[0]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    lo = np.nanquantile(boots, alpha / 2, axis=0)
                    hi = np.nanquantile(boots, 1 - alpha / 2, axis=0)
                if const_x.any():
                    note = "; ".join(x for x in (note, "factor(s) without spread: "
                                                 + ", ".join(np.array(names)[const_x])) if x)
            for j, name in enumerate(names):
                rows.append({"scenario": scenario, "outcome": outcome, "factor": name,
                             "src": float(src[j]), "src_low": float(lo[j]),
                             "src_high": float(hi[j]), "r2": float(r2), "n_points": n,
                             "note": note})
    return pd.DataFrame(rows, columns=SRC_COLUMNS)
