"""Confidence intervals of means: one implementation of each, from ``scipy.stats``.

* :func:`t_interval`: the two-sided Student-t interval of a mean, ``mean ± t_{(1+c)/2, n-1}
  s / sqrt(n)`` (``scipy.stats.ttest_1samp(x).confidence_interval(c)``). Used for means over
  runs (:mod:`sim.analysis.compare`, the factor plots), for paired differences (the runs of two
  scenarios share their seeds, so their differences are one sample), and for Shapley values
  over replications.
* :func:`t_half_width`: the half-width ``t_{(1+c)/2, df} s / sqrt(n)`` from summary
  statistics, vectorised: the bands of the time-series plots (one interval per group and day)
  and the pooled-variance intervals of the factorial main effects (``df`` given).
* :func:`welch_interval`: Welch's interval of a difference of two means with unequal variances
  (``scipy.stats.ttest_ind(x, y, equal_var=False).confidence_interval(c)``), shown beside the
  paired interval to show what pairing buys.

Every interval here is over *runs* (replications): it covers the model's stochastic noise,
not the uncertainty of assumed parameters.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["t_half_width", "t_interval", "welch_interval"]


def t_interval(x: Any, conf: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval of the mean.

    Args:
        x: the values (NaN values are left out).
        conf: confidence level, e.g. 0.95.

    Returns:
        ``(mean, low, high)``: all NaN without values, NaN bounds with a single value, and
        ``(mean, mean, mean)`` when every value is the same (no noise to cover).
    """
    a = np.asarray(x, dtype=float)
    a = a[~np.isnan(a)]
    n = len(a)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    m = float(a.mean())
    if n < 2:
        return (m, math.nan, math.nan)
    if np.ptp(a) == 0:  # scipy would warn about precision loss and return the same
        return (m, m, m)
    with warnings.catch_warnings():
        # nearly equal values: scipy warns of lost precision; the interval is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_1samp(a, 0.0).confidence_interval(conf)
    return (m, float(ci.low), float(ci.high))


def t_half_width(sd: Any, n: Any, conf: float = 0.95, df: Any = None) -> np.ndarray:
    """Half-width ``t_{(1+conf)/2, df} * sd / sqrt(n)`` of a t-interval, element-wise.

    Args:
        sd: standard deviation(s) of the values (``ddof=1``), or the root of a pooled variance.
        n: number(s) of values the mean is taken over.
        conf: confidence level.
        df: degrees of freedom (default ``n - 1``; a pooled variance has its own).

    Returns:
        The half-widths, NaN where ``df < 1`` (fewer than two values: no interval).
    """
    n = np.asarray(n, dtype=float)
    df = n - 1 if df is None else np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(df >= 1, stats.t.ppf(0.5 + conf / 2, np.maximum(df, 1)), np.nan)
        return q * np.asarray(sd, dtype=float) / np.sqrt(n)


def welch_interval(x: Any, y: Any, conf: float = 0.95) -> tuple[float, float]:
    """Welch's two-sided interval of ``mean(x) - mean(y)`` (unequal variances, unpaired).

    Returns:
        ``(low, high)``: NaN with fewer than two values on either side, the difference itself
        when neither sample varies.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return (math.nan, math.nan)
    if x.var(ddof=1) == 0 and y.var(ddof=1) == 0:  # zero standard error: nothing to cover
        d = float(x.mean() - y.mean())
        return (d, d)
    with warnings.catch_warnings():
        # nearly equal values: scipy warns of lost precision; the interval is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(conf)
    return (float(ci.low), float(ci.high))
