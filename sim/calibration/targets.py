"""Target values from model runs, weighted statistics of an ensemble, and the ABC distance.

A target is computed per replication (replication ``r`` of every scenario shares its seed, so
a difference between two scenarios is paired): a ``level`` is the outcome in its scenario, a
``difference`` is after minus before, a ``relative_change`` is after / before - 1. With
``per: resident_year`` the outcome is divided by the population and the years after warm-up.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sim.calibration.spec import Target


def target_values(runs: pd.DataFrame, targets: Sequence[Target], *, days: int,
                  warmup_days: int) -> pd.DataFrame:
    """One row per (point_id, replication), one column per target (NaN where a run it needs
    failed or is missing)."""
    done = runs[runs["status"] == "done"]
    index = pd.MultiIndex.from_frame(runs[["point_id", "replication"]].drop_duplicates()
                                     .sort_values(["point_id", "replication"]))
    out = pd.DataFrame(index=index)
    years = (days - warmup_days) / 365.0
    for t in targets:
        col = t.spec.outcome
        if col not in done.columns:
            out[t.name] = np.nan
            continue
        vals = done[["point_id", "replication", "scenario", col]].copy()
        vals[col] = pd.to_numeric(vals[col], errors="coerce").astype(float)
        if t.spec.per == "resident_year":
            vals[col] = vals[col] / (done["population"].astype(float) * years)
        wide = vals.set_index(["point_id", "replication", "scenario"])[col].unstack("scenario")
        wide = wide.reindex(index)
        labels = t.labels
        if any(lab not in wide.columns for lab in labels):
            out[t.name] = np.nan
            continue
        if t.spec.kind == "level":
            v = wide[labels[0]]
        elif t.spec.kind == "difference":
            v = wide[labels[1]] - wide[labels[0]]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = wide[labels[1]] / wide[labels[0]] - 1.0
        out[t.name] = v.replace([np.inf, -np.inf], np.nan).to_numpy()
    return out


def point_means(values: pd.DataFrame) -> pd.DataFrame:
    """Mean of each target over the replications of each point (NaN if any replication is
    missing: a partial mean would not be paired with the others)."""
    g = values.groupby(level="point_id")
    means = g.mean()
    means[g.count() < g.size().to_numpy()[:, None]] = np.nan
    return means


def distance(means: np.ndarray, targets: Sequence[Target]) -> np.ndarray:
    """ABC distance of each point: root mean square of (model - observed) / error over the
    targets (inf when a target is undefined)."""
    z = np.array([t.spec.value for t in targets])
    e = np.array([t.error_sd for t in targets])
    d = np.sqrt(np.mean(((np.atleast_2d(means) - z) / e) ** 2, axis=1))
    return np.where(np.isfinite(d), d, np.inf)


def weighted_quantile(x: np.ndarray, q: float | Sequence[float], w: np.ndarray | None = None) -> np.ndarray:
    """Quantiles of ``x`` under weights ``w`` (the inverted CDF of the weighted sample); NaNs
    are left out."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    ok = np.isfinite(x) & (w > 0)
    if not ok.any():
        return np.full(np.shape(q), np.nan)
    return np.quantile(x[ok], q, weights=w[ok], method="inverted_cdf")


def weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and (population) variance, NaNs left out."""
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    ok = np.isfinite(x) & (w > 0)
    if not ok.any():
        return np.nan, np.nan
    m = float(np.average(x[ok], weights=w[ok]))
    return m, float(np.average((x[ok] - m) ** 2, weights=w[ok]))


def ess(w: np.ndarray) -> float:
    """Kish's effective sample size of weights ``w``."""
    w = np.asarray(w, dtype=float)
    return float(w.sum() ** 2 / np.sum(w ** 2)) if w.sum() > 0 else 0.0


def systematic_resample(w: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic resampling: ``m`` indices into ``w`` whose counts follow the weights (each
    index drawn floor or ceil of ``m w_i`` times)."""
    w = np.asarray(w, dtype=float)
    positions = (rng.random() + np.arange(m)) / m
    return np.searchsorted(np.cumsum(w / w.sum()), positions).clip(0, len(w) - 1)
