"""Figures of a calibration (``govsim calibrate``): how the ensemble fits the targets, what it
says about each parameter, and how history matching narrowed the parameter space.

==============================  ===================================================================
:func:`plot_fit`                forest plot of the targets on a standardised scale,
                                (value - observed) / error, with the band |z| <= 2 shaded, the
                                observation's ±2 errors and the ensemble's mean and 90% interval;
                                each row annotated in the target's own unit
:func:`plot_posterior`          per parameter, the ensemble's weighted histogram over the prior
                                range against the flat prior, and its 90% interval; inert and
                                unidentified parameters are marked
:func:`plot_pairs`              pairwise scatter of the active parameters (marker area by weight),
                                weighted histograms on the diagonal
:func:`plot_implausibility`     per active parameter, the implausibility of each wave's prior
                                sample against the parameter's value (log scale, cut-off dashed),
                                and the non-implausible share of the prior per wave
==============================  ===================================================================

Each takes a :class:`~sim.calibration.results.CalibrationResults` (or its directory) and returns
a new figure, made outside pyplot unless ``pyplot=True`` (for notebooks that call
``plt.show``). :func:`draw` picks one by its ``govsim plot --kind``. The pure helpers
(:func:`fit_frame`, :func:`weighted_histogram`, :func:`pair_parameters`,
:func:`implausibility_frame`, :func:`target_unit`) take plain DataFrames. Labels and number
formats come from the outcome registry (:mod:`sim.outcomes`: shares as %).

This module reads the tables only; it imports nothing of :mod:`sim.calibration` except, lazily,
its loader (:func:`load`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sim import outcomes as registry
from sim.analysis.plot_base import palette

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sim.calibration.results import CalibrationResults

__all__ = ["KINDS", "draw", "fit_frame", "fmt_target", "implausibility_frame", "load",
           "pair_parameters", "plot_fit", "plot_implausibility", "plot_pairs", "plot_posterior",
           "target_unit", "weighted_histogram"]

#: ``govsim plot --kind`` values for a calibration directory.
KINDS = ("fit", "posterior", "pairs", "implausibility")
#: Target roles in the order the fit plot and table list them.
ROLES = ("fit", "holdout", "check")
ROLE_TEXT = {"fit": "fitted", "holdout": "held out", "check": "check"}
#: |z| within which a target counts as reproduced (as ``sim.calibration.engine.WITHIN_Z``).
WITHIN_Z = 2.0
#: Most parameters in the pairs plot (the most narrowed ones).
MAX_PAIRS = 6
HIST_BINS = 20


# --------------------------------------------------------------------------- inputs
def load(path: str | Path) -> CalibrationResults:
    """A calibration results directory (:func:`sim.calibration.results.load`)."""
    from sim.calibration.results import load as load_calibration

    return load_calibration(path)


def _results(results: Any) -> Any:
    return load(results) if isinstance(results, (str, Path)) else results


def _parameters(results: Any) -> list[dict[str, Any]]:
    params = (results.metadata or {}).get("parameters") or []
    if not params:
        raise ValueError(f"{getattr(results, 'path', 'the calibration')} lists no parameters in"
                         " its metadata.json")
    return params


def _from_unit(u: Any, p: dict[str, Any]) -> np.ndarray:
    """Unit-cube coordinates on parameter ``p``'s scale (as ``sim.calibration.spec.Parameter``)."""
    u = np.asarray(u, dtype=float)
    lo, hi = float(p["low"]), float(p["high"])
    if p.get("scale") == "log":
        return np.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


def _axis_text(p: dict[str, Any]) -> str:
    names = list(p.get("keys") or [p["name"]])
    keys = ", ".join(names) if len(names) <= 2 else f"{names[0]} and {len(names) - 1} more keys"
    what = f"multiplier of {keys}" if p.get("mode") == "multiply" else keys
    return what + (" (log scale)" if p.get("scale") == "log" else "")


def _set_range(ax: Axes, p: dict[str, Any], axis: str = "x") -> None:
    """The prior range on ``axis``; a log-scale parameter gets a log axis with five plain
    ticks (0.5, 0.71, 1, 1.4, 2) rather than powers of ten."""
    lo, hi = float(p["low"]), float(p["high"])
    a = ax.xaxis if axis == "x" else ax.yaxis
    if p.get("scale") == "log":
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        ticks = [float(f"{v:.2g}") for v in np.geomspace(lo, hi, 5)]
        a.set_major_locator(ticker.FixedLocator(ticks))
        a.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        a.set_minor_formatter(ticker.NullFormatter())
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)


def _new_figure(figsize: tuple[float, float], pyplot: bool) -> Figure:
    if pyplot:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, layout="constrained")
    return Figure(figsize=figsize, layout="constrained")


def _subplots(fig: Figure, nrows: int, ncols: int, **kw: Any) -> np.ndarray:
    import seaborn as sns

    with sns.axes_style("whitegrid"):
        return np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False, **kw))


# --------------------------------------------------------------------------- units
def target_unit(kind: str, outcome: str, per: str | None = None) -> str:
    """The unit of a target's value: a relative change is a share (shown as %), a count per
    resident-year is ``per resident-year``, otherwise the outcome's unit in :mod:`sim.outcomes`
    (a difference of shares is in percentage points, shown as %)."""
    if kind == "relative_change":
        return "share"
    if per == "resident_year":
        return "per resident-year"
    return registry.unit(outcome)


def fmt_target(value: Any, unit: str) -> str:
    """A target's value for people: shares as %, others to three significant digits with
    their unit (:func:`sim.outcomes.fmt_short`)."""
    s = registry.fmt_short(value, unit)
    return s if unit in registry.SHARE_UNITS or not unit or s == "–" else f"{s} {unit}"


def fit_frame(fit: pd.DataFrame, targets: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """The fit table with what the plot and report need: ``error`` (sqrt(sd² + discrepancy²)),
    ``unit``, and the standardised ``z_mean``, ``z_q05``, ``z_q95`` ((value - observed) /
    error), ordered by role (fit, holdout, check) and then as given.

    Args:
        fit: ``fit.parquet`` (target, role, kind, outcome, observed, sd, discrepancy,
            model_mean, model_q05, model_q95).
        targets: ``metadata["targets"]`` (for ``per``), optional.
    """
    need = {"target", "role", "observed", "sd", "model_mean", "model_q05", "model_q95"}
    if fit.empty or not need <= set(fit.columns):
        missing = ", ".join(sorted(need - set(fit.columns))) or "rows"
        raise ValueError(f"the calibration has no fit table (fit.parquet lacks {missing})")
    per = {t.get("name"): t.get("per") for t in (targets or [])}
    df = fit.copy()
    if "discrepancy" not in df:
        df["discrepancy"] = 0.0
    df["error"] = np.hypot(df["sd"].astype(float), df["discrepancy"].fillna(0.0).astype(float))
    for col, src in (("z_mean", "model_mean"), ("z_q05", "model_q05"), ("z_q95", "model_q95")):
        df[col] = (df[src].astype(float) - df["observed"].astype(float)) / df["error"]
    kinds = df["kind"] if "kind" in df else pd.Series("level", index=df.index)
    outs = df["outcome"] if "outcome" in df else df["target"]
    df["unit"] = [target_unit(k, o, per.get(t)) for k, o, t in zip(kinds, outs, df["target"],
                                                                      strict=True)]
    order = {r: i for i, r in enumerate(ROLES)}
    df["_order"] = df["role"].map(order).fillna(len(ROLES))
    return (df.sort_values("_order", kind="stable").drop(columns="_order")
            .reset_index(drop=True))


# --------------------------------------------------------------------------- fit
def _role_colours() -> dict[str, Any]:
    return dict(zip(ROLES, palette(len(ROLES)), strict=True))


def plot_fit(results: CalibrationResults | str | Path, *, pyplot: bool = False) -> Figure:
    """Forest plot of the targets: the ensemble's mean (marker) and 90% interval (bar) against
    the observation (open circle, ±2 errors), all standardised as (value - observed) / error
    with error = sqrt(sd² + discrepancy²); the band |z| <= 2 is shaded. Rows are grouped and
    coloured by role; the right-hand labels give observed and model values in each target's
    unit (shares as %)."""
    results = _results(results)
    df = fit_frame(results.fit, (results.metadata or {}).get("targets"))
    n = len(df)
    fig = _new_figure((11.0, 0.62 * n + 2.4), pyplot)
    ax = _subplots(fig, 1, 1)[0, 0]
    colours = _role_colours()
    y = np.arange(n, dtype=float)
    ax.axvspan(-WITHIN_Z, WITHIN_Z, color="0.85", alpha=0.6, lw=0, zorder=0)
    ax.axvline(0.0, color="0.35", lw=0.8, zorder=1)
    ax.errorbar(np.zeros(n), y - 0.14, xerr=WITHIN_Z, fmt="o", mfc="white", mec="black",
                ecolor="black", ms=6, capsize=3, lw=1.1, zorder=3)
    roles = list(dict.fromkeys(df["role"]))
    for role in roles:
        m = (df["role"] == role).to_numpy()
        sub = df[m]
        c = colours.get(role, "0.4")
        zm = sub["z_mean"].to_numpy(dtype=float)
        lo = np.clip(zm - sub["z_q05"].to_numpy(dtype=float), 0, None)
        hi = np.clip(sub["z_q95"].to_numpy(dtype=float) - zm, 0, None)
        ax.errorbar(zm, y[m] + 0.14, xerr=np.vstack([lo, hi]), fmt="D", color=c, ms=6,
                    capsize=3, lw=2.0, zorder=4)
    # a line between role groups
    for i in range(1, n):
        if df["role"].iloc[i] != df["role"].iloc[i - 1]:
            ax.axhline(i - 0.5, color="0.5", lw=0.8, ls=":")
    z = df[["z_mean", "z_q05", "z_q95"]].to_numpy(dtype=float)
    reach = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0
    lim = max(WITHIN_Z + 1.0, 1.08 * reach)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_yticks(y, labels=list(df["target"]))
    for tick, role in zip(ax.get_yticklabels(), df["role"], strict=True):
        tick.set_color(colours.get(role, "0.2"))
    ax.set_xlabel("(value − observed) / error, error = √(sd² + discrepancy²); "
                  f"shaded: within {WITHIN_Z:g} errors")
    ax.set_ylabel("Target")
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.grid(False)
    texts = []
    for _, r in df.iterrows():
        u = r["unit"]
        # the unit once, at the end of each line (shares carry their % on every number)
        tail = "" if u in registry.SHARE_UNITS or not u else f" {u}"

        def f(v: Any, u: str = u) -> str:
            return registry.fmt_short(v, u)

        model = (f"model {f(r['model_mean'])} [{f(r['model_q05'])}, {f(r['model_q95'])}]{tail},"
                 f" z = {r['z_mean']:+.2f}" if np.isfinite(r["model_mean"]) else "model –")
        texts.append(f"observed {f(r['observed'])} ± {f(r['error'])}{tail}\n{model}")
    right.set_yticks(y, labels=texts, fontsize="small")
    handles = [Line2D([], [], marker="o", mfc="white", mec="black", color="black", ls="-",
                      label=f"observed ± {WITHIN_Z:g} errors")]
    handles += [Line2D([], [], marker="D", color=colours.get(r, "0.4"), ls="-", lw=2,
                       label=f"model, {ROLE_TEXT.get(r, r)} targets: mean, 90% interval")
                for r in roles]
    handles.append(Patch(color="0.85", alpha=0.6, label=f"|z| ≤ {WITHIN_Z:g}"))
    ax.legend(handles=handles, fontsize="small", loc="upper center",
              bbox_to_anchor=(0.5, -0.16 if n > 3 else -0.3), ncols=min(len(handles), 3),
              frameon=False)
    held = list(df.loc[df["role"] == "holdout", "target"])
    checks = list(df.loc[df["role"] == "check", "target"])
    within = int((df["z_mean"].abs() <= WITHIN_Z).sum())
    # the names are on the axis in their role's colour: the title counts them
    fitted = n - len(held) - len(checks)
    what = f"{fitted} fitted, " + (f"{len(held)} held out" if held else "none held out")
    if checks:
        what += f", {len(checks)} check{'s' if len(checks) > 1 else ''}"
    ax.set_title(f"Calibration '{(results.metadata or {}).get('name', '?')}': fit to {n} targets"
                 f" ({what}); {within} of {n} within {WITHIN_Z:g} errors")
    return fig


# --------------------------------------------------------------------------- posterior
def weighted_histogram(values: Any, weights: Any, low: float, high: float, scale: str = "linear",
                       bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges (equal width on the parameter's scale, over [low, high]) and each bin's share
    of the total weight. A uniform prior on that scale gives every bin ``1 / bins``."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    edges = (np.geomspace(low, high, bins + 1) if scale == "log"
             else np.linspace(low, high, bins + 1))
    ok = np.isfinite(v) & np.isfinite(w)
    share, _ = np.histogram(np.clip(v[ok], low, high), bins=edges, weights=w[ok])
    total = share.sum()
    return edges, share / total if total > 0 else share


def _ess(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / np.sum(w ** 2)) if w.sum() > 0 else 0.0


def _ident(results: Any) -> pd.DataFrame:
    ident = results.identifiability
    return ident.set_index("parameter") if "parameter" in ident else pd.DataFrame()


def _panels(k: int, size: tuple[float, float, float], pyplot: bool) -> tuple[Figure, np.ndarray]:
    """A figure of ``k`` panels, three to a row (the first of each row at ``i % 3 == 0``); ``size`` = (width and height of a panel, extra
    height for the title). Panels beyond ``k`` are hidden."""
    ncols = min(k, 3)
    nrows = math.ceil(k / ncols)
    fig = _new_figure((size[0] * ncols, size[1] * nrows + size[2]), pyplot)
    axes = _subplots(fig, nrows, ncols).ravel()
    for a in axes[k:]:
        a.set_visible(False)
    return fig, axes


def plot_posterior(results: CalibrationResults | str | Path, *, pyplot: bool = False) -> Figure:
    """One panel per parameter: the ensemble's weighted histogram over the prior range (log x
    for log-scale parameters) against the flat prior, with the posterior median and 90%
    interval. Parameters screened out as inert say "inert: fixed at nominal"; parameters the
    targets do not narrow are marked "not identified"."""
    results = _results(results)
    params = _parameters(results)
    ens = results.ensemble
    if ens.empty:
        raise ValueError(f"{getattr(results, 'path', 'the calibration')} has no ensemble")
    ident = _ident(results)
    w = ens["weight"].to_numpy(dtype=float)
    k = len(params)
    fig, axes = _panels(k, (4.6, 3.5, 0.6), pyplot)
    colour = palette(1)[0]
    for i, (ax, p) in enumerate(zip(axes[:k], params, strict=False)):
        name = p["name"]
        row = ident.loc[name] if name in ident.index else pd.Series(dtype=object)
        active = bool(row.get("active", True))
        edges, share = weighted_histogram(ens[name], w, float(p["low"]), float(p["high"]),
                                          p.get("scale", "linear"))
        bins = len(share)
        ax.hlines(1.0 / bins, float(p["low"]), float(p["high"]), colors="0.3", linestyles="--",
                  lw=1.2, label="prior (uniform)")
        if active:
            ax.stairs(share, edges, fill=True, color=colour, alpha=0.55, label="ensemble")
            # a rug of the members: a narrow posterior can sit inside one bin
            ax.plot(ens[name], np.zeros(len(ens)), "|", color="black", ms=9, mew=0.8,
                    clip_on=False, label="members")
            q05, q50, q95 = (row.get("posterior_q05"), row.get("posterior_median"),
                             row.get("posterior_q95"))
            if q05 is not None and pd.notna(q05):
                ax.axvspan(q05, q95, color=colour, alpha=0.13, lw=0, label="90% interval")
                ax.axvline(q50, color=colour, lw=1.6, label="median")
            ratio = row.get("width_ratio")
            sub = (f"90% width {ratio:.0%} of the prior's" if ratio is not None
                   and pd.notna(ratio) else "")
            if not bool(row.get("identified", True)):
                ax.text(0.5, 0.96, "not identified: the targets barely narrow it",
                        transform=ax.transAxes, ha="center", va="top", fontsize="small",
                        color="#b03a2e", bbox={"fc": "white", "ec": "#b03a2e", "alpha": 0.85})
        else:
            nominal = float(p.get("nominal", row.get("posterior_median", np.nan)))
            ax.set_facecolor("0.94")
            ax.axvline(nominal, color="0.25", lw=1.8, label="nominal value")
            ax.text(0.5, 0.6, "inert: fixed at nominal", transform=ax.transAxes, ha="center",
                    va="center", fontsize="medium", color="0.2",
                    bbox={"fc": "white", "ec": "0.5", "alpha": 0.9})
            sub = f"screened out; nominal {nominal:.3g}"
        _set_range(ax, p)
        ax.set_ylim(0, max(float(share.max()) if active and len(share) else 0.0,
                           1.0 / bins) * 1.25)
        ax.set_title(f"{name}\n{sub}" if sub else name, fontsize="medium")
        ax.set_xlabel(_axis_text(p), fontsize="small")
        ax.set_ylabel("share of ensemble weight per bin" if i % 3 == 0 else "")
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=0))
    handles = [Line2D([], [], color="0.3", ls="--", label="prior (uniform on its scale)"),
               Patch(color=colour, alpha=0.55, label="ensemble (weighted)"),
               Line2D([], [], color="black", marker="|", ls="", ms=9, label="members"),
               Line2D([], [], color=colour, lw=1.6, label="posterior median"),
               Patch(color=colour, alpha=0.13, label="90% interval")]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize="small",
               frameon=False)
    fig.suptitle(f"Calibration '{(results.metadata or {}).get('name', '?')}': the posterior "
                 f"ensemble ({len(ens)} members, effective size {_ess(w):.1f}) against the prior")
    return fig


# --------------------------------------------------------------------------- pairs
def pair_parameters(identifiability: pd.DataFrame, order: list[str] | None = None,
                    max_n: int = MAX_PAIRS) -> list[str]:
    """The active parameters for the pairs plot, in ``order`` (default: the table's); with
    more than ``max_n``, the ``max_n`` most narrowed (smallest ``width_ratio``)."""
    df = identifiability
    if "active" in df:
        df = df[df["active"].astype(bool)]
    names = list(df["parameter"])
    if order is not None:
        names = [n for n in order if n in set(names)]
    if len(names) > max_n and "width_ratio" in df:
        ratio = df.set_index("parameter")["width_ratio"]
        keep = set(ratio.loc[names].sort_values(kind="stable").index[:max_n])
        names = [n for n in names if n in keep]
    return names


def plot_pairs(results: CalibrationResults | str | Path, *, pyplot: bool = False) -> Figure:
    """Pairwise scatter of the active parameters' ensemble values (marker area by weight, axes
    over the prior range), weighted histograms on the diagonal; at most :data:`MAX_PAIRS`
    parameters, the most narrowed ones."""
    results = _results(results)
    params = {p["name"]: p for p in _parameters(results)}
    ens = results.ensemble
    if ens.empty:
        raise ValueError(f"{getattr(results, 'path', 'the calibration')} has no ensemble")
    ident = results.identifiability
    names = (pair_parameters(ident, list(params)) if "parameter" in ident
             else [n for n in params if ens[n].nunique() > 1])
    if not names:
        raise ValueError("no parameter was calibrated (all were screened out as inert)")
    n_active = int(ident["active"].sum()) if "active" in ident else len(names)
    n = len(names)
    w = ens["weight"].to_numpy(dtype=float)
    size = 12 + 260 * w / (w.max() if w.max() > 0 else 1.0)
    colour = palette(1)[0]
    fig = _new_figure((2.7 * n + 1.4, 2.5 * n + 1.0), pyplot)
    axes = _subplots(fig, n, n)
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            px, py = params[xj], params[yi]
            if i == j:
                edges, share = weighted_histogram(ens[xj], w, float(px["low"]), float(px["high"]),
                                                  px.get("scale", "linear"))
                ax.stairs(share, edges, fill=True, color=colour, alpha=0.55)
                ax.axhline(1.0 / len(share), color="0.3", ls="--", lw=1)
                ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=0))
                ax.set_title(xj, fontsize="medium")
                ax.set_ylabel("weight share" if j == 0 else "")
            else:
                ax.scatter(ens[xj], ens[yi], s=size, color=colour, alpha=0.55, ec="white", lw=0.5)
                _set_range(ax, py, "y")
                ax.set_ylabel(yi if j == 0 else "")
            _set_range(ax, px, "x")
            ax.set_xlabel(xj if i == n - 1 else "")
    capped = f"; the {n} most narrowed of {n_active}" if n < n_active else ""
    fig.suptitle(f"Calibration '{(results.metadata or {}).get('name', '?')}': the ensemble's "
                 f"{len(ens)} members over the prior ranges (marker area ∝ weight; dashed: "
                 f"prior{capped})")
    return fig


# --------------------------------------------------------------------------- implausibility
def implausibility_frame(candidates: pd.DataFrame, parameters: list[dict[str, Any]]
                         ) -> pd.DataFrame:
    """``candidates.parquet`` in long form on each parameter's own scale: wave, parameter,
    value, implausibility (one row per candidate and active parameter)."""
    if candidates.empty or "implausibility" not in candidates:
        raise ValueError("the calibration has no candidates.parquet (no history-matching wave"
                         " finished)")
    by_name = {p["name"]: p for p in parameters}
    active = [c for c in candidates.columns if c in by_name]
    frames = [pd.DataFrame({"wave": candidates["wave"].to_numpy(), "parameter": name,
                            "value": _from_unit(candidates[name], by_name[name]),
                            "implausibility": candidates["implausibility"].to_numpy(dtype=float)})
              for name in active]
    return pd.concat(frames, ignore_index=True)


def _binned_min(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    mins = np.full(len(edges) - 1, np.nan)
    for b in np.unique(idx):
        mins[b] = np.min(y[idx == b])
    mid = np.sqrt(edges[:-1] * edges[1:]) if edges[0] > 0 and edges[-1] / edges[0] > 20 \
        else (edges[:-1] + edges[1:]) / 2
    return mid, mins


def plot_implausibility(results: CalibrationResults | str | Path, *,
                        pyplot: bool = False) -> Figure:
    """History matching wave by wave: per active parameter, the implausibility (the largest,
    over the fit targets and every wave's emulators so far, of |emulator mean - observed| /
    sqrt(error² + emulator variance)) of each wave's sample of the prior against the
    parameter's value, with the smallest implausibility per bin as a line (what
    that value can achieve) and the cut-off dashed; the last panel, the share of the prior
    each wave keeps (non-implausible)."""
    results = _results(results)
    params = _parameters(results)
    long = implausibility_frame(results.candidates, params)
    waves = results.waves
    names = list(dict.fromkeys(long["parameter"]))
    wave_ids = sorted(long["wave"].unique())
    colours = dict(zip(wave_ids, palette(len(wave_ids)), strict=True))
    cutoffs = (waves.set_index("wave")["cutoff"].to_dict() if "cutoff" in waves else {})
    by_name = {p["name"]: p for p in params}
    k = len(names) + 1
    fig, axes = _panels(k, (4.7, 3.7, 0.9), pyplot)
    floor = 1e-2
    for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
        p = by_name[name]
        sub = long[long["parameter"] == name]
        edges = (np.geomspace(p["low"], p["high"], 26) if p.get("scale") == "log"
                 else np.linspace(p["low"], p["high"], 26))
        for wv in wave_ids:
            s = sub[sub["wave"] == wv]
            x = s["value"].to_numpy(dtype=float)
            y = np.maximum(s["implausibility"].to_numpy(dtype=float), floor)
            ax.scatter(x, y, s=4, color=colours[wv], alpha=0.25, lw=0, rasterized=True)
            mid, mins = _binned_min(x, y, edges)
            ax.plot(mid, mins, color=colours[wv], lw=2.0)
            if wv in cutoffs:
                ax.axhline(cutoffs[wv], color=colours[wv], ls="--", lw=1.2)
        ax.set_yscale("log")
        _set_range(ax, p)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel(_axis_text(p), fontsize="small")
        ax.set_ylabel("implausibility (log scale)" if i % 3 == 0 else "")
    ax = axes[len(names)]
    if "nroy_share" in waves and len(waves):
        share = waves["nroy_share"].to_numpy(dtype=float)
        ax.bar([str(int(wv)) for wv in waves["wave"]], share,
               color=[colours.get(wv, "0.5") for wv in waves["wave"]])
        for xi, v in enumerate(share):
            ax.annotate(registry.fmt_short(v, "share"), (xi, v), ha="center", va="bottom",
                        xytext=(0, 2), textcoords="offset points", fontsize="small")
        ax.set_ylim(0, max(float(share.max()) * 1.25, 0.01))
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=None))
    ax.set_xlabel("Wave")
    ax.set_ylabel("share of the prior kept")
    ax.set_title("Non-implausible share of the prior", fontsize="medium")
    handles = [Line2D([], [], color=colours[wv], marker="o", ms=4, lw=2,
                      label=f"wave {int(wv)}" + (f" (cut-off {cutoffs[wv]:.3g})"
                                                 if wv in cutoffs else ""))
               for wv in wave_ids]
    handles.append(Line2D([], [], color="0.3", ls="--", label="cut-off"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize="small", frameon=False)
    n_per = int(long.groupby(["wave", "parameter"]).size().max())
    fig.suptitle(f"History matching of '{(results.metadata or {}).get('name', '?')}': "
                 f"implausibility of {n_per:,} prior samples per wave (dots) and the smallest "
                 "per bin (lines); kept where below the dashed cut-off")
    return fig


# --------------------------------------------------------------------------- dispatch
_PLOTS = {"fit": plot_fit, "posterior": plot_posterior, "pairs": plot_pairs,
          "implausibility": plot_implausibility}


def draw(results: CalibrationResults | str | Path, kind: str, *, pyplot: bool = False) -> Figure:
    """The figure ``kind`` (one of :data:`KINDS`) of a calibration."""
    if kind not in _PLOTS:
        raise ValueError(f"unknown calibration plot kind {kind!r}; choose one of:"
                         f" {', '.join(KINDS)}")
    return _PLOTS[kind](results, pyplot=pyplot)
