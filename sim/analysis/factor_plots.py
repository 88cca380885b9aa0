"""Figures of experiments: an outcome against a swept factor, sensitivity indices as bars, and
the Shapley attribution of a reform to its levers as a waterfall.

Each takes the runs table (or a :class:`~sim.batch.results.Results`) or the frames of
:mod:`sim.analysis.sensitivity` / :func:`sim.analysis.compare.attribute`, draws on ``ax`` (a new
figure when None), labels itself from the outcome registry (:mod:`sim.outcomes`) and returns
the axes.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from sim import outcomes as registry
from sim.analysis.compare import done_runs
from sim.analysis.intervals import t_interval
from sim.analysis.plot_base import (
    axes_or_new,
    format_axis,
    is_results,
    outcome_error,
    palette,
    unit_text,
    with_unit,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sim.batch.results import Results

__all__ = ["attribution_waterfall", "factor_response", "sensitivity_bars"]


# --------------------------------------------------------------------------- factor response
def _lever_ticks(levels: Sequence[Any], lever_levels: Sequence[dict] | None) -> list[str]:
    out = []
    for lv in levels:
        if (lever_levels is not None and isinstance(lv, (int, np.integer))
                and 0 <= lv < len(lever_levels)):
            d = lever_levels[int(lv)]
            out.append(f"{lv}: " + "\n".join(f"{k.split('.')[-1]}={json.dumps(v)}"
                                              for k, v in d.items()))
        else:
            out.append(f"{lv:g}" if isinstance(lv, (float, np.floating)) else str(lv))
    return out


def factor_response(runs_df: Results | pd.DataFrame, factor: str, outcome: str,
                    ax: Axes | None = None, by: str = "scenario", conf: float = 0.95,
                    levers: dict | None = None) -> Axes:
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
    if is_results(runs_df):
        meta = runs_df.metadata or {}
        runs = runs_df.runs
    else:
        runs = runs_df
    levers = levers if levers is not None else meta.get("levers") or {}
    runs = done_runs(runs)
    if factor not in runs:
        facs = meta.get("factors") or [c for c in runs.columns if "." in c]
        raise ValueError(f"no factor column {factor!r}; "
                         f"factors here: {', '.join(map(str, facs)) or '(none)'}")
    if outcome not in runs:
        raise outcome_error(outcome, runs.columns, "runs table")
    d = runs[[factor, outcome] + ([by] if by in runs else [])].dropna(subset=[outcome]).copy()
    if d.empty:
        raise ValueError(f"{outcome!r} has no values (all NaN) in the finished runs")
    if by not in d:
        d[by] = "all runs"
    d[by] = d[by].astype(str)
    groups = list(dict.fromkeys(d[by]))
    colours = palette(len(groups))
    label, unit = registry.label(outcome), registry.unit(outcome)
    ax = axes_or_new(ax)
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
            jitter = rng.uniform(-0.03, 0.03, len(sub)) * step
            px = sub[factor].map(pos).to_numpy(float) + off + jitter
            ax.scatter(px, sub[outcome], s=10, color="0.55", alpha=0.5, lw=0, zorder=1)
            rows = [(pos[lv] + off, *t_interval(sub.loc[sub[factor] == lv, outcome], conf))
                    for lv in levels if (sub[factor] == lv).any()]
            rx, m, lo, hi = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
            yerr = np.vstack([m - lo, hi - m])
            name = g if len(groups) > 1 else f"mean ± {100 * conf:.0f}% CI over runs"
            ax.errorbar(rx, m, yerr=np.nan_to_num(yerr), fmt="-o", color=colour, capsize=4, lw=1.6,
                        ms=6, label=name, zorder=3)
        ax.set_xticks(xs, _lever_ticks(levels, levers.get(factor)) if is_lever else
                      [f"{lv:g}" if isinstance(lv, (float, np.floating)) else str(lv)
                       for lv in levels])
        if not numeric or is_lever:
            ax.set_xlim(xs.min() - 0.5 * step, xs.max() + 0.5 * step)
    else:
        for g, colour in zip(groups, colours, strict=True):
            sub = d[d[by] == g]
            ax.scatter(sub[factor], sub[outcome], s=12, color=colour, alpha=0.35, lw=0, zorder=1)
            bins = pd.qcut(sub[factor], q=min(8, sub[factor].nunique()), duplicates="drop")
            rows = [(iv.mid, *t_interval(s[outcome], conf))
                    for iv, s in sub.groupby(bins, observed=True)]
            if rows:
                rx, m, lo, hi = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
                ax.errorbar(rx, m, yerr=np.nan_to_num(np.vstack([m - lo, hi - m])), fmt="-o",
                            color=colour, capsize=3, lw=1.6, ms=5, zorder=3,
                            label=((g + ": " if len(groups) > 1 else "")
                                   + f"bin means ± {100 * conf:.0f}% CI"))
    ax.set_xlabel(factor + (" (lever level)" if factor in levers else ""))
    ax.set_ylabel(registry.axis_label(outcome))
    format_axis(ax.yaxis, unit)
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
        raise ValueError("sensitivity_bars needs a Sobol' (S1, ST), Morris (mu_star, sigma) or "
                         "SRC (src) frame from sim.analysis.sensitivity; "
                         f"got columns {sorted(cols)}")
    df = frame
    title_scn = ""
    if "scenario" in df and df["scenario"].nunique() > 1:
        scenario = scenario or str(df["scenario"].iloc[0])
    if scenario is not None and "scenario" in df:
        df = df[df["scenario"].astype(str) == str(scenario)]
        title_scn = f" — {scenario}"
    if outcome is not None:
        if outcome not in set(df["outcome"]):
            raise ValueError(f"outcome {outcome!r} not in the frame; "
                             f"available: {', '.join(dict.fromkeys(df['outcome']))}")
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
            why = (sorted({str(n) for n in df.loc[df["outcome"] == o, "note"] if str(n)})
                   if "note" in df else [])
            skipped.append(registry.label(o) + (f" ({why[0]})" if why else ""))
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
            ticks.append((y, registry.label(o), True))
            y += 1
        for _, r in g.iterrows():
            ticks.append((y, str(r["factor"]), False))
            placed.append((y, r, scale))
            y += 1
        y += 0.4
    ax = axes_or_new(ax, (8.5, max(3.0, 0.36 * y + 1.5)))
    c1, c2 = palette(2)
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
            v, e = r["mu_star"] * scale, r.get("mu_star_conf", np.nan) * scale
            s = r["sigma"] * scale
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
            ax.annotate("undefined", xy=(0, yi), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize="x-small", color="0.4")
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
            ax.set_xlabel("Morris μ* and σ, scaled by the largest μ* of each outcome "
                          "(units differ)")
        else:
            o = outcomes[0]
            ax.set_xlabel("Morris μ* (mean |elementary effect|) of "
                          + with_unit(registry.label(o), registry.unit(o)))
        handles = [Line2D([], [], color=c1, lw=8, label="μ* (whiskers: 95% CI)"),
                   Line2D([], [], color=c2, marker="D", lw=0,
                          label="σ (spread: interactions/non-linearity)")]
        ax.set_title(f"Morris elementary effects{title_scn}", fontsize="medium")
    else:
        ax.set_xlabel("Standardised regression coefficient (whiskers: 95% CI)")
        handles = [Line2D([], [], color=c1, lw=8, label="positive"),
                   Line2D([], [], color=c2, lw=8, label="negative")]
        ax.set_title(f"Standardised regression coefficients{title_scn}", fontsize="medium")
    ax.set_ylabel("Factor" if not multi else "Outcome / factor")
    ax.legend(handles=handles, loc="lower right", fontsize="small")
    lines = []
    if skipped:
        lines.append("Not shown, no index defined: " + "; ".join(skipped))
    if notes:
        lines.append("Undefined: " + "; ".join(sorted(set(notes))))
    if lines:
        text = "\n".join(textwrap.fill(t[:400], 120) for t in lines)
        note = ax.annotate(text, xy=(0, 0), xycoords="axes fraction", xytext=(0, -36),
                           textcoords="offset points", fontsize="xx-small", color="0.35", va="top")
        note.set_in_layout(False)
    return ax


# --------------------------------------------------------------------------- attribution
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}


def attribution_waterfall(attribution_df: pd.DataFrame, outcome: str,
                          ax: Axes | None = None) -> Axes:
    """Waterfall from the outcome with every lever off ("before"), through each lever's Shapley
    value, to the outcome with every lever on ("after"), with 95% intervals over replications.

    Args:
        attribution_df: the frame of :func:`sim.analysis.compare.attribute`.
        outcome: one of its outcomes.
    """
    need = {"outcome", "kind", "lever", "value"}
    if not need <= set(attribution_df.columns):
        raise ValueError("attribution_waterfall needs the frame of "
                         f"sim.analysis.compare.attribute (columns {sorted(need)})")
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
    label, unit = registry.label(outcome), registry.unit(outcome)
    n = len(levers) + 2
    ax = axes_or_new(ax, (max(6.5, 1.25 * n + 2.5), 4.8))
    c_before, c_up, c_down, c_after = "0.55", *palette(3)[:2], "0.3"
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
        ax.annotate(_signed(v, unit), xy=(i + 0.06, cum + v / 2), xytext=(3, 0),
                    textcoords="offset points", ha="left", va="center", fontsize="x-small",
                    bbox=_LABEL_BOX)
        cum += v
        tops.append(cum)
    ax.plot([n - 2 + 0.31, n - 1 - 0.31], [cum, cum], color="0.4", lw=0.8, zorder=1)
    a = float(after["value"])
    ax.bar(n - 1, a, color=c_after, width=0.62, zorder=2)
    whisk.append((n - 1, after.get("ci_low", np.nan), after.get("ci_high", np.nan)))
    tops.append(a)
    for x, lo, hi in whisk:
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar([x], [(lo + hi) / 2], yerr=[[(hi - lo) / 2]], fmt="none", ecolor="black",
                        capsize=4, lw=1.1, zorder=4)
    for x, v in ((0, float(before["value"])), (n - 1, a)):
        ax.annotate(registry.fmt_short(v, unit), xy=(x + 0.06, v), xytext=(3, -3),
                    textcoords="offset points", ha="left", va="top", fontsize="x-small",
                    bbox=_LABEL_BOX)
    # zoom so that the levers' steps are visible; say so when the axis does not start at 0
    lows = [w[1] for w in whisk if np.isfinite(w[1])] + tops
    highs = [w[2] for w in whisk if np.isfinite(w[2])] + tops
    lo, hi = min(lows), max(highs)
    pad = 0.15 * (hi - lo if hi > lo else abs(hi) or 1.0)
    bottom = lo - pad
    if lo > 0 and bottom > 0 and (hi - lo) < 0.5 * hi:
        ax.set_ylim(bottom, hi + pad)
        ax.text(0.01, 0.01, "y axis does not start at 0", transform=ax.transAxes,
                fontsize="x-small", color="0.4", va="bottom")
    else:
        ax.set_ylim(min(0, bottom), max(0, hi + pad))
    names = ["before\n(all levers off)", *[str(s) for s in levers["lever"]],
             "after\n(all levers on)"]
    ax.set_xticks(xs, names)
    ax.set_xlabel("Reform lever (Shapley value: average effect of switching it on, "
                  "over all orders)")
    ax.set_ylabel(registry.axis_label(outcome))
    format_axis(ax.yaxis, unit)
    nrep = int(levers["n"].max()) if "n" in levers and len(levers) else None
    s = float(levers["value"].sum())
    effect = _signed(float(total["value"]), unit, True)
    ax.set_title(f"{label}: reform effect {effect} attributed to levers\n"
                 f"(sum of Shapley values {_signed(s, unit, True)}; whiskers: 95% CI over "
                 f"{nrep if nrep else '?'} replications)", fontsize="medium")
    ax.legend(handles=[Line2D([], [], color=c_up, lw=8, label="raises the outcome"),
                       Line2D([], [], color=c_down, lw=8, label="lowers the outcome")],
              fontsize="x-small", loc="best")
    return ax


def _signed(v: float, unit: str, with_unit: bool = False) -> str:
    """A step of the waterfall: shares in percentage points (a difference of percentages),
    others in :func:`sim.outcomes.fmt_short` with a sign."""
    if unit in registry.SHARE_UNITS:
        return f"{100 * v:+.2f} pp"
    s = registry.fmt_short(v, unit)
    s = s if s.startswith("-") or s == "–" else "+" + s
    return f"{s} {unit_text(unit)}" if with_unit and unit else s
