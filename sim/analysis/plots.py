"""Plots for analysts: tidy result tables in, labelled matplotlib axes out.

Every function takes the DataFrames of :func:`sim.batch.results.load` (or a :class:`~sim.batch.results.Results`
object) or the frames of :mod:`sim.analysis.compare` / :mod:`sim.analysis.sensitivity`, draws on ``ax`` (a new
figure when None), labels its axes with the label and unit of the outcome registry (:mod:`sim.outcomes`)
and returns the axes:

========================  =========================================================================
:func:`timeseries`        a daily outcome by scenario, 95% t-interval over runs (one value per run
                          and day; survey waves only on the days they were taken)
:func:`forest`            paired differences to the baseline with their 95% paired intervals
:func:`resolution_ecdf`   ECDF of report-to-resolution time (hours, log scale) by channel or tier
:func:`city_map`          the lattice coloured by a cell column, with grid (and township/county)
                          boundaries
:func:`factor_response`   an outcome against a swept factor, 95% t-interval over runs per level
:func:`sensitivity_bars`  Sobol' S1/ST (or Morris mu*/sigma, or SRC) with their intervals
:func:`attribution_waterfall`  before → each lever's Shapley value → after
========================  =========================================================================

:func:`save` writes a PNG with the run's metadata (commit, seed, scenario or experiment,
package version) in its text chunks; :func:`plot_command` is ``govsim plot``.

Intervals are always over *runs* (replications): the model's stochastic noise, not the
uncertainty of assumed parameters.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from importlib import metadata as _md
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import stats

from sim import outcomes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sim.batch.results import Results

__all__ = [
    "CELL_INFO",
    "KINDS",
    "attribution_waterfall",
    "axis_label",
    "city_map",
    "factor_response",
    "forest",
    "new_axes",
    "plot_command",
    "plot_metadata",
    "resolution_ecdf",
    "save",
    "sensitivity_bars",
    "timeseries",
]

#: Kinds of ``govsim plot --kind``.
KINDS = ("timeseries", "forest", "ecdf", "map", "factor", "sensitivity", "attribution")

#: Labels and units of the columns of ``cells.parquet`` (for maps) not in the outcome registry.
CELL_INFO: dict[str, tuple[str, str]] = {
    "population": ("Residents", "people"),
    "urban": ("Urban cell", "1 = urban"),
    "risk": ("Background risk", "relative, mean 1"),
    "incidents": ("Incidents over the run", "incidents"),
    "undiscovered": ("Undiscovered problems at the end", "problems"),
    "backlog": ("Known open cases at the end", "cases"),
    "paper_closed": ("Closed on paper but unresolved, at the end", "cases"),
    "perceived_safety": ("Perceived safety, mean of residents", "0-1"),
    "trust": ("Trust in local government, mean of residents", "0-1"),
    "guardian_presence": ("Guardian presence", "remembered visits/day"),
}

_SHARE_UNITS = outcomes.SHARE_UNITS
_BOUNDARY_STYLE = {  # level: (line width, colour, legend text)
    "grid": (0.45, "0.15", "grid"),
    "community": (0.9, "0.1", "community"),
    "township": (1.7, "black", "township"),
    "county": (2.8, "black", "county"),
}
_SEQUENTIAL_BAD = ("incidents", "undiscovered", "backlog", "paper_closed", "risk")


# --------------------------------------------------------------------------- helpers
def _info(name: str) -> tuple[str, str]:
    """(label, unit) of an outcome or a cells.parquet column."""
    if name in outcomes.OUTCOMES:
        o = outcomes.OUTCOMES[name]
        return o.label, o.unit
    if name in CELL_INFO:
        return CELL_INFO[name]
    return name.replace("_", " "), ""


def _unit_text(unit: str) -> str:
    return {"share": "%", "share of hours": "% of hours", "0-1": "0–1 scale"}.get(unit, unit)


def axis_label(name: str) -> str:
    """``"Label (unit)"`` for an axis: shares read as percentages."""
    label, unit = _info(name)
    u = _unit_text(unit)
    return f"{label} ({u})" if u else label


def _format_axis(axis, unit: str) -> None:
    if unit in _SHARE_UNITS:
        axis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=None))


_fmt_value = outcomes.fmt_short


def new_axes(figsize: tuple[float, float] = (8.0, 4.8), *, pyplot: bool = True) -> Axes:
    """A fresh axes in seaborn's white-grid style (``pyplot=False``: a figure outside pyplot,
    for scripts and servers that must not keep figures alive)."""
    import seaborn as sns

    with sns.axes_style("whitegrid"):
        if pyplot:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=figsize, layout="constrained")
        else:
            fig = Figure(figsize=figsize, layout="constrained")
            ax = fig.subplots()
    return ax


def _ax(ax: Axes | None, figsize: tuple[float, float] = (8.0, 4.8)) -> Axes:
    return new_axes(figsize) if ax is None else ax


def _palette(n: int) -> list:
    import seaborn as sns

    return sns.color_palette("colorblind" if n <= 10 else "husl", max(n, 1))


def _done(runs: pd.DataFrame) -> pd.DataFrame:
    if "status" in runs:
        runs = runs[runs["status"] == "done"]
    return runs


def _t_half(sd: np.ndarray, n: np.ndarray, conf: float) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(n >= 2, stats.t.ppf(0.5 + conf / 2, np.maximum(n - 1, 1)), np.nan)
        return q * np.asarray(sd, dtype=float) / np.sqrt(n)


def _t_interval(x: Iterable[float], conf: float = 0.95) -> tuple[float, float, float, int]:
    a = np.asarray(list(x), dtype=float)
    a = a[np.isfinite(a)]
    n = len(a)
    if n == 0:
        return (np.nan, np.nan, np.nan, 0)
    m = float(a.mean())
    if n < 2:
        return (m, np.nan, np.nan, n)
    h = float(_t_half(np.array([a.std(ddof=1)]), np.array([n]), conf)[0])
    return (m, m - h, m + h, n)


def _is_results(obj: Any) -> bool:
    return hasattr(obj, "runs") and hasattr(obj, "metadata")


def _outcome_error(outcome: str, columns: Iterable[str], what: str) -> ValueError:
    have = [c for c in columns if c in outcomes.OUTCOMES or c in CELL_INFO]
    return ValueError(f"no column {outcome!r} in the {what}; available: {', '.join(sorted(have)) or '(none)'}")


# --------------------------------------------------------------------------- timeseries
def timeseries(results_or_df: Results | pd.DataFrame, outcome: str, by: str = "scenario",
               ax: Axes | None = None, conf: float = 0.95) -> Axes:
    """A daily outcome over days, one line per ``by`` group, with a 95% interval band over runs.

    The band is a Student-t interval over runs: the table is first reduced to exactly one value
    per run and day, so repeated rows can never narrow it. Days where the outcome is NaN are
    dropped (the survey columns are NaN except on survey days, which are drawn as points); a
    single run of the survey shows the survey's own Wilson interval instead.

    Args:
        results_or_df: a Results (its ``timeseries``, with ``scenario`` taken from ``runs`` for
            single runs) or a timeseries DataFrame with ``run_id`` and ``day``.
        outcome: a daily key of :data:`sim.metrics.DAILY_KEYS`, e.g. ``"closure_rate"``.
        by: the grouping column (default ``scenario``; any runs column of an experiment works).
        ax: axes to draw on.
        conf: confidence level of the band.
    """
    meta: dict[str, Any] = {}
    runs = None
    if _is_results(results_or_df):
        df = results_or_df.timeseries
        meta = results_or_df.metadata or {}
        runs = results_or_df.runs
        if df is None:
            raise ValueError(f"{results_or_df.path} has no daily time series"
                             " (an experiment with outputs.timeseries: false)")
    else:
        df = results_or_df
    for col in ("run_id", "day"):
        if col not in df:
            raise ValueError(f"the time series needs a {col!r} column")
    if outcome not in df:
        raise _outcome_error(outcome, df.columns, "time series")
    df = df.copy()
    if by not in df:
        if runs is not None and by in runs:
            df = df.merge(runs[["run_id", by]].drop_duplicates("run_id"), on="run_id", how="left")
        else:
            df[by] = meta.get("scenario_name") or meta.get("name") or "all runs"
    df[by] = df[by].astype(str)
    # exactly one value per run and day: intervals are over runs, never over repeated rows
    per_run = (df.groupby([by, "run_id", "day"], observed=True, sort=False)[outcome].mean()
               .dropna().reset_index())
    if per_run.empty:
        raise ValueError(f"{outcome!r} has no values (all NaN)")
    agg = (per_run.groupby([by, "day"], observed=True, sort=False)[outcome]
           .agg(["mean", "std", "count"]).reset_index().sort_values([by, "day"]))
    agg["half"] = _t_half(agg["std"].fillna(0.0), agg["count"], conf)
    sparse = df.groupby("run_id")[outcome].apply(lambda s: s.isna().mean()).mean() > 0.5
    label, unit = _info(outcome)
    ax = _ax(ax)
    groups = [g for g in dict.fromkeys(df[by]) if g in set(agg[by])]  # order of appearance
    colours = _palette(len(groups))
    max_runs = 0
    for g, colour in zip(groups, colours, strict=True):
        a = agg[agg[by] == g]
        n_runs = per_run.loc[per_run[by] == g, "run_id"].nunique()
        max_runs = max(max_runs, n_runs)
        name = f"{g} ({n_runs} run{'s' if n_runs != 1 else ''})"
        if sparse:  # survey waves: points with error bars, dodged so they do not overlap
            off = (groups.index(g) - (len(groups) - 1) / 2) * 0.6
            ax.errorbar(a["day"] + off, a["mean"], yerr=a["half"].fillna(0.0) if n_runs >= 2 else None,
                        color=colour, label=name, lw=1.4, marker="o", ms=5, capsize=3)
        else:
            ax.plot(a["day"], a["mean"], color=colour, label=name, lw=1.6)
        if n_runs >= 2 and not sparse:
            ax.fill_between(a["day"], a["mean"] - a["half"], a["mean"] + a["half"], color=colour,
                            alpha=0.22, lw=0)
        elif n_runs == 1 and outcome == "survey_share_safe" and {"survey_ci_low", "survey_ci_high"} <= set(df.columns):
            s = df[(df[by] == g) & df[outcome].notna()].sort_values("day")
            ax.errorbar(s["day"], s[outcome], yerr=[s[outcome] - s["survey_ci_low"],
                                                      s["survey_ci_high"] - s[outcome]],
                        fmt="none", ecolor=colour, capsize=3, lw=1)
    warmup = meta.get("warmup_days")
    if warmup:
        ax.axvspan(0.5, warmup + 0.5, color="0.5", alpha=0.12, lw=0,
                   label=f"warm-up ({warmup} days, not in summaries)")
    ax.set_xlabel("Day")
    ax.set_ylabel(axis_label(outcome))
    _format_axis(ax.yaxis, unit)
    if max_runs >= 2:
        band = f"{'bars' if sparse else 'band'}: {100 * conf:.0f}% t-interval over runs"
    elif outcome == "survey_share_safe":
        band = "bars: the survey wave's 95% Wilson interval"
    else:
        band = "one run: no interval"
    what = "survey waves only" if sparse else "daily"
    ax.set_title(f"{label} ({what}; {band})")
    ax.legend(title=by, fontsize="small", title_fontsize="small", loc="best")
    return ax


# --------------------------------------------------------------------------- forest
def forest(comparison_df: pd.DataFrame, ax: Axes | None = None, outcome: str | None = None,
           relative: bool | None = None) -> Axes:
    """Forest plot of paired differences to the baseline (``sim.analysis.compare`` output).

    One row per non-baseline scenario and outcome: the point is the mean paired difference, the
    thick line its 95% paired t-interval (filled point and ``*``: the interval excludes zero),
    the thin grey line the unpaired (Welch) interval for contrast, and the p-value of the paired
    t-test on the right.

    Units are never mixed: with one outcome (``outcome=`` or a frame holding one) the axis is in
    that outcome's unit; with several, each difference is divided by the baseline's mean of that
    outcome and the axis says "% of the baseline mean" (outcomes whose baseline mean is 0 are
    left out and listed in a note).
    """
    df = comparison_df
    need = {"scenario", "outcome", "baseline", "diff", "diff_ci_low", "diff_ci_high"}
    if not need <= set(df.columns):
        raise ValueError(f"forest needs a comparison frame (sim.analysis.compare) with columns {sorted(need)}")
    if outcome is not None:
        if outcome not in set(df["outcome"]):
            raise ValueError(f"outcome {outcome!r} is not in the comparison; "
                             f"available: {', '.join(dict.fromkeys(df['outcome']))}")
        df = df[df["outcome"] == outcome]
    outcomes = list(dict.fromkeys(df["outcome"]))
    if relative is None:
        relative = len(outcomes) > 1
    base_rows = df[df["scenario"] == df["baseline"]].set_index("outcome")
    rows = df[(df["scenario"] != df["baseline"])].copy()
    if rows.empty:
        raise ValueError("the comparison has no scenario besides the baseline: a forest plot needs >= 2 scenarios")
    baseline = str(rows["baseline"].iloc[0])
    left_out: list[str] = []
    cols = ["diff", "diff_ci_low", "diff_ci_high", "unpaired_ci_low", "unpaired_ci_high"]
    cols = [c for c in cols if c in rows]
    if relative:
        scale = rows["outcome"].map(lambda o: abs(base_rows["mean"].get(o, np.nan)) if "mean" in base_rows else np.nan)
        bad = ~np.isfinite(scale) | (scale == 0)
        left_out = [_info(o)[0] for o in dict.fromkeys(rows.loc[bad, "outcome"])]
        rows = rows[~bad]
        for c in cols:
            rows[c] = rows[c] / scale[~bad]
    rows = rows[np.isfinite(rows["diff"].astype(float))]
    if rows.empty:
        raise ValueError("no finite differences to plot")
    scenarios = list(dict.fromkeys(rows["scenario"]))
    many = len(scenarios) > 1
    n = len(rows)
    ax = _ax(ax, (8.5, max(2.5, 0.42 * n + 1.6)))
    colours = dict(zip(scenarios, _palette(len(scenarios)), strict=True))
    ylabels = []
    y = np.arange(n)[::-1]
    # x limits: every point and most intervals; an interval reaching beyond is clipped (arrow)
    ends = np.abs(rows[[c for c in cols if c != "diff"]].to_numpy(dtype=float)).ravel()
    ends = ends[np.isfinite(ends)]
    lim = max(1.25 * float(np.nanmax(np.abs(rows["diff"].to_numpy(dtype=float)))),
              float(np.percentile(ends, 80)) * 1.05 if len(ends) else 0.0)
    lim = lim if lim > 0 else 1.0
    clipped = False

    def seg(lo: float, hi: float, yy: float, **kw: Any) -> None:
        nonlocal clipped
        a, b = max(lo, -lim), min(hi, lim)
        ax.plot([a, b], [yy, yy], solid_capstyle="butt", **kw)
        for end, edge, mark in ((lo, -lim, "<"), (hi, lim, ">")):
            if (end < edge if mark == "<" else end > edge):
                clipped = True
                ax.plot([edge], [yy], mark, color=kw.get("color"), ms=6, clip_on=False)

    for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
        c = colours[r["scenario"]]
        if "unpaired_ci_low" in r and np.isfinite(r["unpaired_ci_low"]):
            seg(r["unpaired_ci_low"], r["unpaired_ci_high"], yi - 0.2, color="0.6", lw=1.2)
        seg(r["diff_ci_low"], r["diff_ci_high"], yi, color=c, lw=3)
        dist = bool(r.get("distinguishable", False))
        ax.plot([r["diff"]], [yi], "o", ms=7, mec=c, mfc=c if dist else "white", mew=1.8, zorder=3)
        if len(outcomes) == 1:
            name = str(r["scenario"])
        else:
            name = _info(r["outcome"])[0] + (f" — {r['scenario']}" if many else "")
        ylabels.append(name + (" *" if dist else ""))
        p = r.get("p_value", np.nan)
        if p is not None and np.isfinite(p):
            ax.annotate(f"p={p:.2g}", xy=(1.01, yi), xycoords=("axes fraction", "data"), va="center",
                        fontsize="x-small", color="0.3")
    ax.axvline(0, color="0.2", lw=1, ls="--")
    ax.set_xlim(-lim, lim)
    ax.set_yticks(y, ylabels)
    ax.set_ylim(-0.8, n - 0.2)
    if relative:
        ax.xaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=None))
        ax.set_xlabel(f"Paired difference to '{baseline}' (% of the baseline mean of each outcome)")
    else:
        o = outcomes[0]
        label, unit = _info(o)
        if unit in _SHARE_UNITS:
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{100 * v:+.1f} pp"))
            ax.set_xlabel(f"Difference in {label} to '{baseline}' (percentage points)")
        else:
            u = _unit_text(unit)
            ax.set_xlabel(f"Difference in {label} to '{baseline}'" + (f" ({u})" if u else ""))
    ax.set_ylabel("Outcome" if len(outcomes) > 1 else "Scenario")
    npairs = rows["n_pairs"].max() if "n_pairs" in rows else None
    title = f"Paired differences to '{baseline}'"
    if len(outcomes) == 1:
        title = f"{_info(outcomes[0])[0]}: paired differences to '{baseline}'"
    if npairs is not None and np.isfinite(npairs):
        title += f"\n({int(npairs)} replication pairs with common random numbers; 95% intervals)"
    ax.set_title(title, fontsize="medium")
    handles = [Line2D([], [], color="0.3", lw=3, marker="o", mfc="0.3", label="paired 95% CI excludes 0 (*)"),
               Line2D([], [], color="0.3", lw=3, marker="o", mfc="white", label="paired 95% CI includes 0")]
    if "unpaired_ci_low" in rows:
        handles.append(Line2D([], [], color="0.6", lw=1.2, label="unpaired (Welch) 95% CI"))
    if clipped:
        handles.append(Line2D([], [], color="0.3", marker=">", lw=0, label="interval continues beyond the axis"))
    if many:
        handles += [Line2D([], [], color=colours[s], lw=3, label=s) for s in scenarios]
    ax.legend(handles=handles, fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.14 if n > 3 else -0.3),
              ncol=min(3, len(handles)), frameon=False)
    if left_out:
        ax.text(0.0, -0.02, "Left out (baseline mean 0, no relative scale): " + ", ".join(left_out),
                transform=ax.transAxes, fontsize="x-small", color="0.35", va="top")
    return ax


# --------------------------------------------------------------------------- ECDF
_BY_TEXT = {"first_channel": "first reporting channel", "route": "handling route (tier)",
            "handler": "final handler", "category": "category", "scenario": "scenario"}


def resolution_ecdf(incidents_df: Results | pd.DataFrame, by: str = "first_channel",
                    ax: Axes | None = None, warmup_days: float | None = None) -> Axes:
    """ECDF of time from report to true resolution (hours, log x scale), one curve per group.

    Uses incidents whose state is ``resolved`` (as the run summary does), occurring on or after
    ``warmup_days`` (default: the run's warm-up when a Results is given). Times below one minute
    are drawn at one minute (a log axis has no zero).

    Args:
        incidents_df: a Results (its ``incidents``) or the incident table.
        by: ``"first_channel"`` (how it was found), ``"route"`` (the tier it went to),
            ``"handler"``, ``"category"``, ``"scenario"``, or None for one curve.
    """
    if _is_results(incidents_df):
        inc = incidents_df.incidents
        if inc is None:
            raise ValueError(f"{incidents_df.path} has no incident table")
        if warmup_days is None:
            warmup_days = (incidents_df.metadata or {}).get("warmup_days")
    else:
        inc = incidents_df
    need = {"t_reported", "t_resolved", "state"} | ({by} if by else set())
    if not need <= set(inc.columns):
        raise ValueError(f"the incident table lacks {sorted(need - set(inc.columns))}")
    sel = inc["state"].astype(str) == "resolved"
    if warmup_days and "t_occurred" in inc:
        sel &= inc["t_occurred"] >= warmup_days
    d = inc.loc[sel].copy()
    d["hours"] = ((d["t_resolved"] - d["t_reported"]) * 24.0).clip(lower=1 / 60)
    d = d[np.isfinite(d["hours"])]
    if d.empty:
        raise ValueError("no resolved incidents to draw")
    key = d[by].astype(str) if by else pd.Series("all", index=d.index)
    counts = key.value_counts()
    ax = _ax(ax)
    colours = _palette(len(counts))
    for (g, n), colour in zip(counts.items(), colours, strict=True):
        x = np.sort(d.loc[key == g, "hours"].to_numpy())
        yv = np.arange(1, len(x) + 1) / len(x)
        ax.step(np.r_[x[0], x], np.r_[0, yv], where="post", color=colour, lw=1.6,
                label=f"{g} (n={n:,}, median {np.median(x):.1f} h)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    for h, txt in ((24, "1 day"), (168, "1 week")):
        if d["hours"].min() < h < d["hours"].max():
            ax.axvline(h, color="0.5", lw=0.8, ls=":")
            ax.annotate(txt, xy=(h, 0.02), xytext=(3, 0), textcoords="offset points", fontsize="x-small",
                        color="0.4", rotation=90, va="bottom")
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(0, 1.01)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0))
    ax.set_xlabel("Time from report to true resolution (hours, log scale)")
    ax.set_ylabel("Resolved within this time (% of resolved incidents)")
    n_runs = d["run_id"].nunique() if "run_id" in d else 1
    pooled = f", pooled over {n_runs} runs" if n_runs > 1 else ""
    ax.set_title(f"Time to resolution by {_BY_TEXT.get(by, by) if by else 'all incidents'}{pooled}",
                 fontsize="medium")
    ax.legend(title=_BY_TEXT.get(by, by) if by else None, fontsize="small", title_fontsize="small",
              loc="upper left")
    return ax


# --------------------------------------------------------------------------- map
def _boundary_segments(labels: np.ndarray) -> np.ndarray:
    """Line segments (k, 2, 2) between neighbouring cells whose labels differ, in cell
    coordinates (cell (x, y) spans x-0.5..x+0.5, y-0.5..y+0.5)."""
    segs = []
    yy, xx = np.nonzero(labels[:, :-1] != labels[:, 1:])
    segs.append(np.stack([np.c_[xx + 0.5, yy - 0.5], np.c_[xx + 0.5, yy + 0.5]], axis=1))
    yy, xx = np.nonzero(labels[:-1, :] != labels[1:, :])
    segs.append(np.stack([np.c_[xx - 0.5, yy + 0.5], np.c_[xx + 0.5, yy + 0.5]], axis=1))
    return np.concatenate(segs, axis=0).astype(float)


def city_map(cells_df: Results | pd.DataFrame, value: str = "perceived_safety", ax: Axes | None = None,
             boundaries: str | Sequence[str] | None = "grid", cmap: str | None = None,
             cell_km: float | None = None) -> Axes:
    """The lattice coloured by a cell column, with administrative boundaries.

    North is up (row ``y = 0`` is the north edge). Cells without residents show grey where the
    value is per resident (perceived safety, trust).

    Args:
        cells_df: a Results of ``govsim run`` (its ``cells``) or the cell table (one run).
        value: a column of the cell table: ``perceived_safety``, ``trust``, ``incidents``,
            ``backlog``, ``undiscovered``, ``paper_closed``, ``population``, ``risk``,
            ``guardian_presence``, ``urban``.
        boundaries: the unit(s) whose borders are drawn: ``"grid"`` (default), ``"community"``,
            ``"township"``, ``"county"``, a sequence of them (coarser units drawn thicker), or
            None.
        cmap: a colormap name (default: viridis for safety and trust, rocket for counts).
        cell_km: side of a cell in km for the axis labels (default: from the Results' scenario).
    """
    import seaborn as sns  # noqa: F401  (registers the rocket and mako colormaps)

    if _is_results(cells_df):
        cells = cells_df.cells
        if cells is None:
            raise ValueError(f"{cells_df.path} has no cells table (maps need the results of `govsim run`)")
        if cell_km is None:
            cell_km = ((cells_df.metadata or {}).get("scenario") or {}).get("city", {}).get("cell_km")
    else:
        cells = cells_df
    if "run_id" in cells and cells["run_id"].nunique() > 1:
        raise ValueError("the cell table holds several runs; pass the rows of one run")
    for col in ("x", "y"):
        if col not in cells:
            raise ValueError(f"the cell table needs an {col!r} column")
    if value not in cells:
        raise ValueError(f"no column {value!r} in the cell table; available: "
                         f"{', '.join(c for c in cells.columns if c not in ('run_id', 'cell', 'x', 'y'))}")
    w, h = int(cells["x"].max()) + 1, int(cells["y"].max()) + 1
    xs, ys = cells["x"].to_numpy(int), cells["y"].to_numpy(int)
    arr = np.full((h, w), np.nan)
    arr[ys, xs] = cells[value].to_numpy(dtype=float)
    if cmap is None:
        cmap = "rocket_r" if value in _SEQUENTIAL_BAD else ("mako_r" if value == "population" else "viridis")
    import matplotlib as mpl

    cm = mpl.colormaps[cmap].with_extremes(bad="0.85")  # seaborn registers rocket and mako
    ax = _ax(ax, (7.0, 6.2))
    # robust colour range: a few extreme cells must not wash out the rest (arrows on the bar)
    finite = arr[np.isfinite(arr)]
    vmin = vmax = None
    extend = "neither"
    if finite.size and value != "urban":
        lo, hi = np.percentile(finite, [1, 99])
        if lo > finite.min():
            vmin, extend = lo, "min"
        if hi < finite.max():
            vmax, extend = hi, ("both" if extend == "min" else "max")
    im = ax.imshow(arr, origin="upper", cmap=cm, interpolation="nearest", vmin=vmin, vmax=vmax,
                   extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    levels: list[str] = [] if boundaries is None else ([boundaries] if isinstance(boundaries, str) else list(boundaries))
    handles = []
    order = [lv for lv in _BOUNDARY_STYLE if lv in levels]
    unknown = [lv for lv in levels if lv not in _BOUNDARY_STYLE]
    if unknown:
        raise ValueError(f"unknown boundaries {unknown}; use grid, community, township or county")
    for lv in order:
        if lv not in cells:
            raise ValueError(f"the cell table has no {lv!r} column for boundaries")
        lab = np.full((h, w), -1, dtype=np.int64)
        lab[ys, xs] = cells[lv].to_numpy()
        lw, colour, text = _BOUNDARY_STYLE[lv]
        segs = _boundary_segments(lab)
        if len(segs):
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, alpha=0.85, capstyle="round"))
            k = int(cells[lv].nunique())
            plural = text[:-1] + "ies" if text.endswith("y") else text + "s"
            handles.append(Line2D([], [], color=colour, lw=lw, label=f"{text} boundaries ({k} {plural})"))
    ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
        (-0.5, -0.5), w, h, fill=False, lw=1.2, ec="black"))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.grid(False)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    size = f"cells of {cell_km * 1000:.0f} m" if cell_km else "cells"
    ax.set_xlabel(f"x ({size}; west → east)")
    ax.set_ylabel(f"y ({size}; north → south)")
    label, unit = CELL_INFO.get(value) or _info(value)
    cb = ax.figure.colorbar(im, ax=ax, shrink=0.85, pad=0.02, extend=extend)
    u = _unit_text(unit)
    cb.set_label(f"{label} ({u})" if u else label)
    _format_axis(cb.ax.yaxis, unit)
    ax.set_title(f"{label} by cell (synthetic city)", fontsize="medium")
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(handles),
                  fontsize="x-small", frameon=False)
    return ax


# --------------------------------------------------------------------------- factor response
def _lever_ticks(levels: Sequence[Any], lever_levels: Sequence[dict] | None) -> list[str]:
    out = []
    for lv in levels:
        if lever_levels is not None and isinstance(lv, (int, np.integer)) and 0 <= lv < len(lever_levels):
            d = lever_levels[int(lv)]
            out.append(f"{lv}: " + "\n".join(f"{k.split('.')[-1]}={json.dumps(v)}" for k, v in d.items()))
        else:
            out.append(f"{lv:g}" if isinstance(lv, (float, np.floating)) else str(lv))
    return out


def factor_response(runs_df: Results | pd.DataFrame, factor: str, outcome: str, ax: Axes | None = None,
                    by: str = "scenario", conf: float = 0.95, levers: dict | None = None) -> Axes:
    """An outcome against a swept factor, mean and 95% t-interval over runs at each level.

    Each run is a grey dot; with several base scenarios (``by``) each gets its own colour.
    Where other factors vary too, a level's mean averages over them (a main effect). Factors
    with more than 12 distinct values (sampled designs) are shown as a scatter of runs with
    means of eight quantile bins.

    Args:
        runs_df: a Results (its ``runs``; lever levels get readable tick labels) or a runs table.
        factor: a factor column (``metadata["factors"]``), e.g. ``"grids.count"`` or a lever.
        outcome: a summary outcome, e.g. ``"closure_rate"``.
    """
    meta: dict[str, Any] = {}
    if _is_results(runs_df):
        meta = runs_df.metadata or {}
        runs = runs_df.runs
    else:
        runs = runs_df
    levers = levers if levers is not None else meta.get("levers") or {}
    runs = _done(runs)
    if factor not in runs:
        facs = meta.get("factors") or [c for c in runs.columns if "." in c]
        raise ValueError(f"no factor column {factor!r}; factors here: {', '.join(map(str, facs)) or '(none)'}")
    if outcome not in runs:
        raise _outcome_error(outcome, runs.columns, "runs table")
    d = runs[[factor, outcome] + ([by] if by in runs else [])].dropna(subset=[outcome]).copy()
    if by not in d:
        d[by] = "all runs"
    d[by] = d[by].astype(str)
    groups = list(dict.fromkeys(d[by]))
    colours = _palette(len(groups))
    label, unit = _info(outcome)
    ax = _ax(ax)
    levels = sorted(d[factor].dropna().unique())
    numeric = pd.api.types.is_numeric_dtype(d[factor])
    others = [f for f in (meta.get("factors") or []) if f != factor]
    rng = np.random.default_rng(0)
    if len(levels) <= 12:
        pos = {lv: (float(lv) if numeric else i) for i, lv in enumerate(levels)}
        is_lever = factor in levers
        if is_lever:
            pos = {lv: i for i, lv in enumerate(levels)}
        xs = np.array(list(pos.values()), dtype=float)
        step = np.min(np.diff(np.sort(xs))) if len(xs) > 1 else 1.0
        dodge = 0.12 * step
        for gi, (g, colour) in enumerate(zip(groups, colours, strict=True)):
            sub = d[d[by] == g]
            off = (gi - (len(groups) - 1) / 2) * dodge
            px = sub[factor].map(pos).to_numpy(float) + off + rng.uniform(-0.03, 0.03, len(sub)) * step
            ax.scatter(px, sub[outcome], s=10, color="0.55", alpha=0.5, lw=0, zorder=1)
            rows = [(pos[lv] + off, *_t_interval(sub.loc[sub[factor] == lv, outcome], conf)) for lv in levels
                    if (sub[factor] == lv).any()]
            rx, m, lo, hi, _n = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
            yerr = np.vstack([m - lo, hi - m])
            name = g if len(groups) > 1 else f"mean ± {100 * conf:.0f}% CI over runs"
            ax.errorbar(rx, m, yerr=np.nan_to_num(yerr), fmt="-o", color=colour, capsize=4, lw=1.6,
                        ms=6, label=name, zorder=3)
        ax.set_xticks(xs, _lever_ticks(levels, levers.get(factor)) if is_lever else
                      [f"{lv:g}" if isinstance(lv, (float, np.floating)) else str(lv) for lv in levels])
        if not numeric or is_lever:
            ax.set_xlim(xs.min() - 0.5 * step, xs.max() + 0.5 * step)
    else:
        for g, colour in zip(groups, colours, strict=True):
            sub = d[d[by] == g]
            ax.scatter(sub[factor], sub[outcome], s=12, color=colour, alpha=0.35, lw=0, zorder=1)
            bins = pd.qcut(sub[factor], q=min(8, sub[factor].nunique()), duplicates="drop")
            rows = [(iv.mid, *_t_interval(s[outcome], conf)) for iv, s in sub.groupby(bins, observed=True)]
            if rows:
                rx, m, lo, hi, _n = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
                ax.errorbar(rx, m, yerr=np.nan_to_num(np.vstack([m - lo, hi - m])), fmt="-o", color=colour,
                            capsize=3, lw=1.6, ms=5, zorder=3,
                            label=(g + ": " if len(groups) > 1 else "") + f"bin means ± {100 * conf:.0f}% CI")
    ax.set_xlabel(factor + (" (lever level)" if factor in levers else ""))
    ax.set_ylabel(axis_label(outcome))
    _format_axis(ax.yaxis, unit)
    note = "; other factors averaged" if others else ""
    ax.set_title(f"{label} vs {factor} (dots: runs{note})", fontsize="medium")
    ax.legend(title=by if len(groups) > 1 else None, fontsize="small", loc="best")
    return ax


# --------------------------------------------------------------------------- sensitivity
def sensitivity_bars(frame: pd.DataFrame, ax: Axes | None = None, outcome: str | None = None,
                     scenario: str | None = None) -> Axes:
    """Bars of sensitivity indices, the kind detected from the columns.

    * Sobol' (``S1, ST``): first-order and total indices with their 95% bootstrap whiskers;
    * Morris (``mu_star, sigma``): mu* bars with whiskers and sigma as diamonds; with several
      outcomes both are scaled by the largest mu* of each outcome (units differ), said on the
      axis;
    * SRC (``src``): standardised regression coefficients with their intervals.

    One block of rows per outcome (all outcomes of the frame unless ``outcome`` is given);
    with several base scenarios the first is drawn unless ``scenario`` says which.
    """
    cols = set(frame.columns)
    if {"S1", "ST"} <= cols:
        kind = "sobol"
    elif {"mu_star", "sigma"} <= cols:
        kind = "morris"
    elif "src" in cols:
        kind = "src"
    else:
        raise ValueError("sensitivity_bars needs a Sobol' (S1, ST), Morris (mu_star, sigma) or SRC (src) frame"
                         f" from sim.analysis.sensitivity; got columns {sorted(cols)}")
    df = frame
    title_scn = ""
    if "scenario" in df and df["scenario"].nunique() > 1:
        scenario = scenario or str(df["scenario"].iloc[0])
    if scenario is not None and "scenario" in df:
        df = df[df["scenario"].astype(str) == str(scenario)]
        title_scn = f" — {scenario}"
    if outcome is not None:
        if outcome not in set(df["outcome"]):
            raise ValueError(f"outcome {outcome!r} not in the frame; available: {', '.join(dict.fromkeys(df['outcome']))}")
        df = df[df["outcome"] == outcome]
    if df.empty:
        raise ValueError("nothing to plot")
    main = {"sobol": "ST", "morris": "mu_star", "src": "src"}[kind]
    outcomes = list(dict.fromkeys(df["outcome"]))
    # outcomes with no defined index at all get no block, only a note (when others remain)
    undefined = [o for o in outcomes if not df.loc[df["outcome"] == o, main].notna().any()]
    skipped: list[str] = []
    if len(undefined) < len(outcomes):
        for o in undefined:
            why = sorted({str(n) for n in df.loc[df["outcome"] == o, "note"] if str(n)}) if "note" in df else []
            skipped.append(f"{_info(o)[0]}" + (f" ({why[0]})" if why else ""))
        outcomes = [o for o in outcomes if o not in undefined]
        df = df[df["outcome"].isin(outcomes)]
    multi = len(outcomes) > 1
    # rows: a header per outcome when there are several, then its factors
    ticks: list[tuple[float, str, bool]] = []
    y = 0.0
    placed: list[tuple[float, pd.Series, float]] = []  # (y, row, scale)
    for o in outcomes:
        g = df[df["outcome"] == o]
        key = {"sobol": "ST", "morris": "mu_star", "src": "src"}[kind]
        g = g.assign(_k=g[key].abs()).sort_values("_k", ascending=False, na_position="last")
        scale = 1.0
        if kind == "morris" and multi:
            mx = np.nanmax(g["mu_star"].to_numpy(float)) if g["mu_star"].notna().any() else np.nan
            scale = 1.0 / mx if np.isfinite(mx) and mx > 0 else np.nan
        if multi:
            ticks.append((y, _info(o)[0], True))
            y += 1
        for _, r in g.iterrows():
            ticks.append((y, str(r["factor"]), False))
            placed.append((y, r, scale))
            y += 1
        y += 0.4
    ax = _ax(ax, (8.5, max(3.0, 0.36 * y + 1.5)))
    c1, c2 = _palette(2)
    bh = 0.38
    notes = []
    for yi, r, scale in placed:
        if kind == "sobol":
            vals = [("S1", -bh / 2, c1), ("ST", bh / 2, c2)]
            for name, off, col in vals:
                v, e = r[name], r.get(f"{name}_conf", np.nan)
                if np.isfinite(v):
                    ax.barh(yi + off, v, height=bh, color=col, xerr=e if np.isfinite(e) else None,
                            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.25"})
        elif kind == "morris":
            v, e, s = r["mu_star"] * scale, r.get("mu_star_conf", np.nan) * scale, r["sigma"] * scale
            if np.isfinite(v):
                ax.barh(yi, v, height=0.6, color=c1, xerr=e if np.isfinite(e) else None,
                        error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.25"})
            if np.isfinite(s):
                ax.plot([s], [yi], "D", color=c2, ms=6, mec="white", zorder=3)
        else:
            v = r["src"]
            if np.isfinite(v):
                lo, hi = r.get("src_low", np.nan), r.get("src_high", np.nan)
                xerr = [[v - lo], [hi - v]] if np.isfinite(lo) and np.isfinite(hi) else None
                ax.barh(yi, v, height=0.6, color=c1 if v >= 0 else c2, xerr=xerr,
                        error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.25"})
        main = {"sobol": "ST", "morris": "mu_star", "src": "src"}[kind]
        if not np.isfinite(r[main]):
            ax.annotate("undefined", xy=(0, yi), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize="x-small", color="0.4")
            if str(r.get("note", "")):
                notes.append(f"{r['outcome']}/{r['factor']}: {r['note']}")
    ax.set_yticks([t[0] for t in ticks], [t[1] for t in ticks])
    for lab, t in zip(ax.get_yticklabels(), ticks, strict=True):
        if t[2]:
            lab.set_fontweight("bold")
    ax.set_ylim(y - 0.6, -0.8)
    ax.axvline(0, color="0.2", lw=0.8)
    if kind == "sobol":
        ax.set_xlabel("Sobol' index (share of output variance; whiskers: 95% bootstrap CI)")
        handles = [Line2D([], [], color=c1, lw=8, label="S1 first-order"),
                   Line2D([], [], color=c2, lw=8, label="ST total (incl. interactions)")]
        ax.set_title(f"Sobol' sensitivity indices{title_scn}", fontsize="medium")
    elif kind == "morris":
        if multi:
            ax.set_xlabel("Morris μ* and σ, scaled by the largest μ* of each outcome (units differ)")
        else:
            label, unit = _info(outcomes[0])
            u = _unit_text(unit)
            ax.set_xlabel(f"Morris μ* (mean |elementary effect|) of {label}" + (f" ({u})" if u else ""))
        handles = [Line2D([], [], color=c1, lw=8, label="μ* (whiskers: 95% CI)"),
                   Line2D([], [], color=c2, marker="D", lw=0, label="σ (spread: interactions/non-linearity)")]
        ax.set_title(f"Morris elementary effects{title_scn}", fontsize="medium")
    else:
        ax.set_xlabel("Standardised regression coefficient (whiskers: 95% CI)")
        handles = [Line2D([], [], color=c1, lw=8, label="positive"), Line2D([], [], color=c2, lw=8, label="negative")]
        ax.set_title(f"Standardised regression coefficients{title_scn}", fontsize="medium")
    ax.set_ylabel("Factor" if not multi else "Outcome / factor")
    ax.legend(handles=handles, loc="lower right", fontsize="small")
    lines = []
    if skipped:
        lines.append("Not shown, no index defined: " + "; ".join(skipped))
    if notes:
        lines.append("Undefined: " + "; ".join(sorted(set(notes))))
    if lines:
        import textwrap

        text = "\n".join(textwrap.fill(t[:400], 120) for t in lines)
        note = ax.annotate(text, xy=(0, 0), xycoords="axes fraction", xytext=(0, -36), textcoords="offset points",
                           fontsize="xx-small", color="0.35", va="top")
        note.set_in_layout(False)
    return ax


# --------------------------------------------------------------------------- attribution
def attribution_waterfall(attribution_df: pd.DataFrame, outcome: str, ax: Axes | None = None) -> Axes:
    """Waterfall from the outcome with every lever off ("before"), through each lever's Shapley
    value, to the outcome with every lever on ("after"), with 95% intervals over replications.

    Args:
        attribution_df: the frame of :func:`sim.analysis.compare.attribute`.
        outcome: one of its outcomes.
    """
    need = {"outcome", "kind", "lever", "value"}
    if not need <= set(attribution_df.columns):
        raise ValueError(f"attribution_waterfall needs the frame of sim.analysis.compare.attribute (columns {sorted(need)})")
    df = attribution_df[attribution_df["outcome"] == outcome]
    if df.empty:
        raise ValueError(f"outcome {outcome!r} not in the attribution; available: "
                         f"{', '.join(dict.fromkeys(attribution_df['outcome']))}")
    def one(kind: str) -> pd.Series:
        r = df[df["kind"] == kind]
        if r.empty:
            raise ValueError(f"the attribution of {outcome!r} has no {kind!r} row")
        return r.iloc[0]

    before, after, total = one("before"), one("after"), one("total")
    levers = df[df["kind"] == "lever"]
    label, unit = _info(outcome)
    n = len(levers) + 2
    ax = _ax(ax, (max(6.5, 1.25 * n + 2.5), 4.8))
    c_before, c_up, c_down, c_after = "0.55", *_palette(3)[:2], "0.3"
    cum = float(before["value"])
    xs = np.arange(n)
    tops = [cum]
    ax.bar(0, cum, color=c_before, width=0.62, zorder=2)
    whisk = [(0, before.get("ci_low", np.nan), before.get("ci_high", np.nan))]
    for i, (_, r) in enumerate(levers.iterrows(), start=1):
        v = float(r["value"])
        ax.bar(i, v, bottom=cum, color=c_up if v >= 0 else c_down, width=0.62, zorder=2)
        ax.plot([i - 1 + 0.31, i - 0.31], [cum, cum], color="0.4", lw=0.8, zorder=1)
        whisk.append((i, cum + r.get("ci_low", np.nan), cum + r.get("ci_high", np.nan)))
        ax.annotate(_signed(v, unit), xy=(i + 0.06, cum + v / 2), xytext=(3, 0), textcoords="offset points",
                    ha="left", va="center", fontsize="x-small",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
        cum += v
        tops.append(cum)
    ax.plot([n - 2 + 0.31, n - 1 - 0.31], [cum, cum], color="0.4", lw=0.8, zorder=1)
    a = float(after["value"])
    ax.bar(n - 1, a, color=c_after, width=0.62, zorder=2)
    whisk.append((n - 1, after.get("ci_low", np.nan), after.get("ci_high", np.nan)))
    tops.append(a)
    for x, lo, hi in whisk:
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar([x], [(lo + hi) / 2], yerr=[[(hi - lo) / 2]], fmt="none", ecolor="black", capsize=4,
                        lw=1.1, zorder=4)
    for x, v in ((0, float(before["value"])), (n - 1, a)):
        ax.annotate(_fmt_value(v, unit), xy=(x + 0.06, v), xytext=(3, -3), textcoords="offset points", ha="left",
                    va="top", fontsize="x-small",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    # zoom so that the levers' steps are visible; say so when the axis does not start at 0
    lows = [w[1] for w in whisk if np.isfinite(w[1])] + tops
    highs = [w[2] for w in whisk if np.isfinite(w[2])] + tops
    lo, hi = min(lows), max(highs)
    pad = 0.15 * (hi - lo if hi > lo else abs(hi) or 1.0)
    bottom = lo - pad
    if lo > 0 and bottom > 0 and (hi - lo) < 0.5 * hi:
        ax.set_ylim(bottom, hi + pad)
        ax.text(0.01, 0.01, "y axis does not start at 0", transform=ax.transAxes, fontsize="x-small", color="0.4",
                va="bottom")
    else:
        ax.set_ylim(min(0, bottom), max(0, hi + pad))
    names = ["before\n(all levers off)", *[str(s) for s in levers["lever"]], "after\n(all levers on)"]
    ax.set_xticks(xs, names)
    ax.set_xlabel("Reform lever (Shapley value: average effect of switching it on, over all orders)")
    ax.set_ylabel(axis_label(outcome))
    _format_axis(ax.yaxis, unit)
    nrep = int(levers["n"].max()) if "n" in levers and len(levers) else None
    s = float(levers["value"].sum())
    ax.set_title(f"{label}: reform effect {_signed(float(total['value']), unit, True)} attributed to levers\n"
                 f"(sum of Shapley values {_signed(s, unit, True)}; whiskers: 95% CI over "
                 f"{nrep if nrep else '?'} replications)", fontsize="medium")
    ax.legend(handles=[Line2D([], [], color=c_up, lw=8, label="raises the outcome"),
                       Line2D([], [], color=c_down, lw=8, label="lowers the outcome")],
              fontsize="x-small", loc="best")
    return ax


def _signed(v: float, unit: str, with_unit: bool = False) -> str:
    if unit in _SHARE_UNITS:
        return f"{100 * v:+.2f} pp"
    s = _fmt_value(v, unit)
    s = s if s.startswith("-") or s == "–" else "+" + s
    return f"{s} {_unit_text(unit)}" if with_unit and unit else s


# --------------------------------------------------------------------------- saving
def _package_version() -> str:
    try:
        return _md.version("govsim")
    except _md.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def plot_metadata(results: Results | dict | None = None, **extra: Any) -> dict[str, str]:
    """The PNG text chunks for a figure of ``results``: commit (and whether the tree was dirty),
    seed, scenario or experiment name, package version, source directory, plus ``extra``."""
    meta = (results.metadata if _is_results(results) else results) or {}
    out: dict[str, str] = {"Software": f"govsim {_package_version()}"}
    git = meta.get("git") or {}
    if git.get("commit"):
        out["Commit"] = str(git["commit"]) + (" (uncommitted changes)" if git.get("dirty") else "")
    seed = meta.get("seed")
    if isinstance(seed, dict):
        seed = seed.get("entropy", seed.get("root"))
    if seed is not None:
        out["Seed"] = str(seed)
    if meta.get("kind") == "experiment":
        out["Experiment"] = str(meta.get("name", ""))
        if meta.get("scenarios"):
            out["Scenario"] = ", ".join(map(str, meta["scenarios"]))
        if meta.get("replications") is not None:
            out["Replications"] = str(meta["replications"])
    elif meta.get("scenario_name") or meta.get("scenario"):
        sc = meta.get("scenario")
        out["Scenario"] = str(meta.get("scenario_name") or (sc.get("name") if isinstance(sc, dict) else sc))
    if meta.get("scenario_digest"):
        out["Scenario digest"] = str(meta["scenario_digest"])
    version = (meta.get("versions") or {}).get("govsim")
    out["Version"] = str(version or _package_version())
    if _is_results(results):
        out["Source"] = str(results.path)
    for k, v in extra.items():
        if v is not None:
            out[str(k)] = v if isinstance(v, str) else json.dumps(v, default=str)
    return out


def _figure_of(fig_or_ax: Any) -> Figure:
    obj = fig_or_ax
    if isinstance(obj, np.ndarray):
        obj = obj.flat[0]
    while not isinstance(obj, Figure):
        nxt = getattr(obj, "figure", None)
        if nxt is None or nxt is obj:
            raise TypeError(f"cannot find the figure of {fig_or_ax!r}")
        obj = nxt
    return obj


def save(fig_or_ax: Any, path: str | Path, metadata: dict[str, Any] | None = None, dpi: int = 150) -> Path:
    """Save a figure as PNG with ``metadata`` in its text chunks (values turned into text).

    ``metadata`` is typically :func:`plot_metadata` ``(results)``: commit, seed, scenario or
    experiment, package version. Read it back with ``PIL.Image.open(path).text``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save writes PNG files with their metadata; got {path.name!r} (use a .png name)")
    fig = _figure_of(fig_or_ax)
    text = {"Software": f"govsim {_package_version()}"}
    for k, v in (metadata or {}).items():
        if v is None:
            continue
        key = str(k)[:79]
        text[key] = v if isinstance(v, str) else json.dumps(v, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata=text, bbox_inches="tight", facecolor="white")
    return path


# --------------------------------------------------------------------------- govsim plot
def _experiment_kind(meta: dict) -> str:
    return meta.get("kind", "run")


def _default_outcome(kind: str) -> str | None:
    return {"timeseries": "closure_rate", "factor": "closure_rate", "attribution": "closure_rate",
            "map": "perceived_safety", "ecdf": "first_channel"}.get(kind)


def draw(results: Results, kind: str, outcome: str | None = None) -> tuple[Figure, str]:
    """Draw plot ``kind`` for a loaded results directory on a new figure outside pyplot.

    Returns the figure and the outcome (or grouping) drawn. Raises ValueError with a hint
    when the kind does not fit the directory.
    """
    import seaborn as sns

    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; choose one of: {', '.join(KINDS)}")
    meta = results.metadata or {}
    runs = _done(results.runs)
    what = outcome or _default_outcome(kind)
    with sns.axes_style("whitegrid"):
        if kind == "timeseries":
            if results.timeseries is None:
                raise ValueError(f"{results.path} has no timeseries.parquet (the experiment had outputs.timeseries:"
                                 " false); try --kind factor or sensitivity")
            if what not in results.timeseries:
                daily = [c for c in results.timeseries.columns if c not in ("run_id", "day", "scenario")]
                raise ValueError(f"--outcome {what!r} is not a daily metric; daily metrics: {', '.join(daily)}")
            ax = new_axes((9, 4.8), pyplot=False)
            timeseries(results, what, ax=ax)
        elif kind == "forest":
            scen = list(dict.fromkeys(runs["scenario"])) if "scenario" in runs else []
            if len(scen) < 2 or "replication" not in runs:
                raise ValueError(f"a forest plot compares scenarios and {results.path} has "
                                 f"{len(scen)} ({', '.join(map(str, scen))}); use the results of "
                                 "`govsim compare A B` (>= 2 scenarios)")
            comp = _comparison(results)
            rows = len(comp[comp["scenario"] != comp["baseline"]]) if outcome is None else len(scen) - 1
            ax = new_axes((9, max(3.0, 0.42 * rows + 2.0)), pyplot=False)
            forest(comp, ax=ax, outcome=outcome)
            what = outcome or "all"
        elif kind == "ecdf":
            if results.incidents is None:
                raise ValueError(f"{results.path} has no incidents.parquet; the ECDF needs the event log of"
                                 " `govsim run` (without --no-incidents) or an experiment with outputs.incidents: true")
            if what not in results.incidents:
                raise ValueError(f"for --kind ecdf, --outcome names the grouping: first_channel (default), route,"
                                 f" handler, category or scenario; not {what!r}")
            ax = new_axes((9, 5), pyplot=False)
            resolution_ecdf(results, by=what, ax=ax)
        elif kind == "map":
            if results.cells is None:
                raise ValueError(f"{results.path} has no cells.parquet: a map needs the results of a single"
                                 " `govsim run` (experiments and comparisons keep no cell table)")
            ax = new_axes((7.5, 6.8), pyplot=False)
            city_map(results, value=what, ax=ax, boundaries=("grid", "township", "county"))
        elif kind == "factor":
            factors = [f for f in (meta.get("factors") or []) if f in runs]
            if not factors:
                raise ValueError(f"{results.path} swept no factor (no 'factors' in its metadata); a factor plot needs"
                                 " an experiment with factors, e.g. `govsim experiment run grid_count_sweep`")
            if what not in runs:
                raise _outcome_error(what, runs.columns, "runs table")
            k = len(factors)
            ncols = min(k, 3)
            nrows = math.ceil(k / ncols)
            fig = Figure(figsize=(5.4 * ncols, 4.4 * nrows + 0.4), layout="constrained")
            axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
            for a in axes[k:]:
                a.set_visible(False)
            for i, (a, f) in enumerate(zip(axes[:k], factors, strict=True)):
                factor_response(results, f, what, ax=a)
                if k > 1:
                    a.set_title(f, fontsize="medium")
                    if i and a.get_legend() is not None:
                        a.get_legend().remove()
            if k > 1:
                fig.suptitle(f"{_info(what)[0]} against each factor (dots: runs; other factors averaged)")
            ax = axes[0]
        elif kind == "sensitivity":
            frame = _sensitivity_frame(results)
            n_rows = len(frame[frame["outcome"] == outcome]) if outcome else len(frame) + frame["outcome"].nunique()
            ax = new_axes((9, max(3.2, 0.36 * n_rows + 1.8)), pyplot=False)
            sensitivity_bars(frame, ax=ax, outcome=outcome)
            what = outcome or "all"
        else:  # attribution
            from sim.analysis.compare import attribute

            levers = list((meta.get("levers") or {}).keys())
            if not levers:
                raise ValueError(f"{results.path} has no levers: attribution needs an experiment over every on/off"
                                 " combination of named levers (e.g. experiments/reform_levers.yaml)")
            if what not in runs:
                raise _outcome_error(what, runs.columns, "runs table")
            scen = list(dict.fromkeys(runs["scenario"]))
            try:
                att = attribute(results, levers=levers, outcomes=[what], scenario=scen[0])
            except ValueError as exc:
                raise ValueError(f"cannot attribute {what!r} in {results.path}: {exc}") from None
            if att.empty:
                raise ValueError(f"no values of {what!r} to attribute")
            ax = new_axes((max(7, 1.3 * len(levers) + 4.5), 5), pyplot=False)
            attribution_waterfall(att, what, ax=ax)
    return _figure_of(ax), str(what)


def _comparison(results: Results) -> pd.DataFrame:
    from sim.analysis.compare import compare

    f = Path(results.path) / "comparison.parquet"
    if f.is_file():
        return pd.read_parquet(f)
    return compare(results)


def _sensitivity_frame(results: Results) -> pd.DataFrame:
    adir = Path(results.path) / "analysis"
    for name in ("sobol", "morris", "src"):
        f = adir / f"{name}.parquet"
        if f.is_file():
            return pd.read_parquet(f)
    kind = (results.metadata.get("design") or {}).get("kind")
    if kind in ("sobol", "morris", "latin_hypercube"):
        raise ValueError(f"{results.path} has no analysis yet: run `govsim experiment analyze {results.path}` first")
    raise ValueError(f"{results.path} is not a sensitivity experiment (design: {kind or 'none'}); sensitivity bars"
                     " need a sobol, morris or latin_hypercube design analysed with `govsim experiment analyze`."
                     + (" For a full factorial sweep use --kind factor." if kind == "full_factorial" else ""))


def plot_command(results_dir: str | Path, kind: str, outcome: str | None = None,
                 out: str | Path | None = None) -> Path:
    """``govsim plot DIR --kind KIND [--outcome NAME] [--out FILE.png]``: draw and save one plot.

    Kinds: ``timeseries`` (daily outcome by scenario, default ``closure_rate``), ``forest``
    (paired differences of a comparison; all outcomes scaled to the baseline unless
    ``--outcome``), ``ecdf`` (time to resolution; ``--outcome`` is the grouping:
    ``first_channel`` or ``route``), ``map`` (a cell column of a single run, default
    ``perceived_safety``), ``factor`` (an outcome against each swept factor), ``sensitivity``
    (Sobol'/Morris bars from ``analysis/``), ``attribution`` (Shapley waterfall of a lever
    experiment, default ``closure_rate``).

    Returns:
        The PNG written (default ``DIR/plots/<kind>-<outcome>.png``), with the run's commit,
        seed, scenario or experiment and version in its text chunks.

    Raises:
        ValueError: unknown kind or outcome, or a kind that does not fit the directory.
        FileNotFoundError: not a results directory.
    """
    from sim.batch.results import load

    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; choose one of: {', '.join(KINDS)}")
    results_dir = Path(results_dir)
    res = load(results_dir, incidents=kind == "ecdf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig, what = draw(res, kind, outcome)
    path = Path(out) if out else results_dir / "plots" / f"{kind}-{what}.png"
    return save(fig, path, plot_metadata(res, Plot=kind, Outcome=what))
