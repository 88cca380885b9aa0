"""Figures of outcomes over runs and scenarios: the daily time series, the forest plot of a
comparison, and the distribution of times to resolution.

Each takes tidy tables (or a :class:`~sim.batch.results.Results`), draws on ``ax`` (a new figure
when None), labels itself from the outcome registry (:mod:`sim.outcomes`) and returns the axes.
Intervals are over runs (:mod:`sim.analysis.intervals`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.lines import Line2D

from sim import outcomes as registry
from sim.analysis.intervals import t_half_width
from sim.analysis.plot_base import (
    axes_or_new,
    format_axis,
    is_results,
    outcome_error,
    palette,
    with_unit,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sim.batch.results import Results

__all__ = ["forest", "resolution_ecdf", "timeseries"]


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
    if is_results(results_or_df):
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
        raise outcome_error(outcome, df.columns, "time series")
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
    agg["half"] = t_half_width(agg["std"].fillna(0.0), agg["count"], conf)
    sparse = df.groupby("run_id")[outcome].apply(lambda s: s.isna().mean()).mean() > 0.5
    label, unit = registry.label(outcome), registry.unit(outcome)
    ax = axes_or_new(ax)
    groups = [g for g in dict.fromkeys(df[by]) if g in set(agg[by])]  # order of appearance
    colours = palette(len(groups))
    max_runs = 0
    for g, colour in zip(groups, colours, strict=True):
        a = agg[agg[by] == g]
        n_runs = per_run.loc[per_run[by] == g, "run_id"].nunique()
        max_runs = max(max_runs, n_runs)
        name = f"{g} ({n_runs} run{'s' if n_runs != 1 else ''})"
        if sparse:  # survey waves: points with error bars, dodged so they do not overlap
            off = (groups.index(g) - (len(groups) - 1) / 2) * 0.6
            ax.errorbar(a["day"] + off, a["mean"],
                        yerr=a["half"].fillna(0.0) if n_runs >= 2 else None,
                        color=colour, label=name, lw=1.4, marker="o", ms=5, capsize=3)
        else:
            ax.plot(a["day"], a["mean"], color=colour, label=name, lw=1.6)
        if n_runs >= 2 and not sparse:
            ax.fill_between(a["day"], a["mean"] - a["half"], a["mean"] + a["half"], color=colour,
                            alpha=0.22, lw=0)
        elif (n_runs == 1 and outcome == "survey_share_safe"
              and {"survey_ci_low", "survey_ci_high"} <= set(df.columns)):
            s = df[(df[by] == g) & df[outcome].notna()].sort_values("day")
            ax.errorbar(s["day"], s[outcome], yerr=[s[outcome] - s["survey_ci_low"],
                                                      s["survey_ci_high"] - s[outcome]],
                        fmt="none", ecolor=colour, capsize=3, lw=1)
    warmup = meta.get("warmup_days")
    if warmup:
        ax.axvspan(0.5, warmup + 0.5, color="0.5", alpha=0.12, lw=0,
                   label=f"warm-up ({warmup} days, not in summaries)")
    ax.set_xlabel("Day")
    ax.set_ylabel(registry.axis_label(outcome))
    format_axis(ax.yaxis, unit)
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
        raise ValueError("forest needs a comparison frame (sim.analysis.compare) "
                         f"with columns {sorted(need)}")
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
        raise ValueError("the comparison has no scenario besides the baseline: "
                         "a forest plot needs >= 2 scenarios")
    baseline = str(rows["baseline"].iloc[0])
    left_out: list[str] = []
    cols = ["diff", "diff_ci_low", "diff_ci_high", "unpaired_ci_low", "unpaired_ci_high"]
    cols = [c for c in cols if c in rows]
    if relative:
        scale = rows["outcome"].map(lambda o: abs(base_rows["mean"].get(o, np.nan))
                                    if "mean" in base_rows else np.nan)
        bad = ~np.isfinite(scale) | (scale == 0)
        left_out = [registry.label(o) for o in dict.fromkeys(rows.loc[bad, "outcome"])]
        rows = rows[~bad]
        for c in cols:
            rows[c] = rows[c] / scale[~bad]
    rows = rows[np.isfinite(rows["diff"].astype(float))]
    if rows.empty:
        raise ValueError("no finite differences to plot")
    scenarios = list(dict.fromkeys(rows["scenario"]))
    many = len(scenarios) > 1
    n = len(rows)
    ax = axes_or_new(ax, (8.5, max(2.5, 0.42 * n + 1.6)))
    colours = dict(zip(scenarios, palette(len(scenarios)), strict=True))
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
            name = registry.label(r["outcome"]) + (f" — {r['scenario']}" if many else "")
        ylabels.append(name + (" *" if dist else ""))
        p = r.get("p_value", np.nan)
        if p is not None and np.isfinite(p):
            ax.annotate(f"p={p:.2g}", xy=(1.01, yi), xycoords=("axes fraction", "data"),
                        va="center", fontsize="x-small", color="0.3")
    ax.axvline(0, color="0.2", lw=1, ls="--")
    ax.set_xlim(-lim, lim)
    ax.set_yticks(y, ylabels)
    ax.set_ylim(-0.8, n - 0.2)
    if relative:
        ax.xaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=None))
        ax.set_xlabel(f"Paired difference to '{baseline}' (% of the baseline mean of each outcome)")
    else:
        o = outcomes[0]
        label, unit = registry.label(o), registry.unit(o)
        if unit in registry.SHARE_UNITS:
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{100 * v:+.1f} pp"))
            ax.set_xlabel(f"Difference in {label} to '{baseline}' (percentage points)")
        else:
            ax.set_xlabel(with_unit(f"Difference in {label} to '{baseline}'", unit))
    ax.set_ylabel("Outcome" if len(outcomes) > 1 else "Scenario")
    npairs = rows["n_pairs"].max() if "n_pairs" in rows else None
    title = f"Paired differences to '{baseline}'"
    if len(outcomes) == 1:
        title = f"{registry.label(outcomes[0])}: paired differences to '{baseline}'"
    if npairs is not None and np.isfinite(npairs):
        title += f"\n({int(npairs)} replication pairs with common random numbers; 95% intervals)"
    ax.set_title(title, fontsize="medium")
    handles = [Line2D([], [], color="0.3", lw=3, marker="o", mfc="0.3",
                      label="paired 95% CI excludes 0 (*)"),
               Line2D([], [], color="0.3", lw=3, marker="o", mfc="white",
                      label="paired 95% CI includes 0")]
    if "unpaired_ci_low" in rows:
        handles.append(Line2D([], [], color="0.6", lw=1.2, label="unpaired (Welch) 95% CI"))
    if clipped:
        handles.append(Line2D([], [], color="0.3", marker=">", lw=0,
                              label="interval continues beyond the axis"))
    if many:
        handles += [Line2D([], [], color=colours[s], lw=3, label=s) for s in scenarios]
    ax.legend(handles=handles, fontsize="x-small", loc="upper center",
              bbox_to_anchor=(0.5, -0.14 if n > 3 else -0.3), ncol=min(3, len(handles)),
              frameon=False)
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
    if is_results(incidents_df):
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
    ax = axes_or_new(ax)
    colours = palette(len(counts))
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
            ax.annotate(txt, xy=(h, 0.02), xytext=(3, 0), textcoords="offset points",
                        fontsize="x-small", color="0.4", rotation=90, va="bottom")
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
