"""Plots for analysts: tidy result tables in, labelled matplotlib axes out; and ``govsim plot``.

Every figure function takes the DataFrames of :func:`sim.batch.results.load` (or a
:class:`~sim.batch.results.Results` object) or the frames of :mod:`sim.analysis.compare` /
:mod:`sim.analysis.sensitivity`, draws on ``ax`` (a new figure when None), labels its axes with
the label and unit of the outcome registry (:mod:`sim.outcomes`) and returns the axes. They
live in three modules and are all importable from here:

==============================  ===================================================================
:func:`timeseries`              a daily outcome by scenario, 95% t-interval over runs (one value
                                per run and day; survey waves only on the days they were taken)
:func:`forest`                  paired differences to the baseline with their 95% paired intervals
:func:`resolution_ecdf`         ECDF of report-to-resolution time (hours, log scale) by channel or
                                tier (these three: :mod:`sim.analysis.outcome_plots`)
:func:`city_map`                the lattice coloured by a cell column, with grid (and
                                township/county) boundaries (:mod:`sim.analysis.maps`)
:func:`factor_response`         an outcome against a swept factor, 95% t-interval over runs per
                                level
:func:`sensitivity_bars`        Sobol' S1/ST (or Morris mu*/sigma, or SRC) with their intervals
:func:`attribution_waterfall`   before → each lever's Shapley value → after (these three:
                                :mod:`sim.analysis.factor_plots`)
==============================  ===================================================================

A calibration directory (``govsim calibrate``) has its own figures, in
:mod:`sim.analysis.calibration_plots`: :func:`plot_fit`, :func:`plot_posterior`,
:func:`plot_pairs` and :func:`plot_implausibility` (``govsim plot DIR --kind fit|posterior|pairs|
implausibility``); the other kinds do not fit it, nor these kinds any other directory.

:func:`save` writes a PNG with the run's metadata (commit, seed, scenario or experiment,
package version) in its text chunks (:mod:`sim.analysis.plot_base`); :func:`draw` and
:func:`plot_command` (``govsim plot``) pick the figure that fits a results directory.

Intervals are always over *runs* (replications): the model's stochastic noise, not the
uncertainty of assumed parameters.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim import outcomes as registry
from sim.analysis import calibration_plots
from sim.analysis.calibration_plots import (
    plot_fit,
    plot_implausibility,
    plot_pairs,
    plot_posterior,
)
from sim.analysis.compare import attribute, comparison_of, done_runs
from sim.analysis.factor_plots import attribution_waterfall, factor_response, sensitivity_bars
from sim.analysis.maps import CELL_INFO, city_map
from sim.analysis.outcome_plots import forest, resolution_ecdf, timeseries
from sim.analysis.plot_base import (
    figure_of,
    new_axes,
    outcome_error,
    plot_metadata,
    save,
)
from sim.files import results_kind

if TYPE_CHECKING:
    from sim.batch.results import Results

__all__ = [
    "CALIBRATION_KINDS",
    "CELL_INFO",
    "KINDS",
    "attribution_waterfall",
    "city_map",
    "draw",
    "factor_response",
    "figure_of",
    "forest",
    "new_axes",
    "plot_command",
    "plot_fit",
    "plot_implausibility",
    "plot_metadata",
    "plot_pairs",
    "plot_posterior",
    "resolution_ecdf",
    "save",
    "sensitivity_bars",
    "timeseries",
]

#: Kinds of ``govsim plot --kind`` for a calibration directory (and only for one).
CALIBRATION_KINDS = calibration_plots.KINDS
#: Kinds of ``govsim plot --kind`` (``sim.cli.PLOT_KINDS`` repeats them without importing
#: matplotlib; a test checks they agree).
KINDS = ("timeseries", "forest", "ecdf", "map", "factor", "sensitivity", "attribution",
         *CALIBRATION_KINDS)
BATCH_KINDS = KINDS[:7]


# --------------------------------------------------------------------------- govsim plot
def _default_outcome(kind: str) -> str | None:
    return {"timeseries": "closure_rate", "factor": "closure_rate", "attribution": "closure_rate",
            "map": "perceived_safety", "ecdf": "first_channel"}.get(kind)


def draw(results: Results, kind: str, outcome: str | None = None) -> tuple[Figure, str]:
    """Draw plot ``kind`` for a loaded results directory on a new figure outside pyplot.

    Returns the figure and the outcome (or grouping) drawn. Raises ValueError with a hint
    when the kind does not fit the directory. A calibration
    (:class:`~sim.calibration.results.CalibrationResults`) takes the calibration kinds
    (:data:`CALIBRATION_KINDS`; the figure's name is the kind).
    """
    import seaborn as sns

    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; choose one of: {', '.join(KINDS)}")
    _check_kind(results.path, kind, results_kind(results.path, results.metadata or {}))
    if kind in CALIBRATION_KINDS:
        return calibration_plots.draw(results, kind), kind
    meta = results.metadata or {}
    runs = done_runs(results.runs)
    what = outcome or _default_outcome(kind)
    with sns.axes_style("whitegrid"):
        if kind == "timeseries":
            if results.timeseries is None:
                raise ValueError(f"{results.path} has no timeseries.parquet (the experiment had "
                                 "outputs.timeseries: false); try --kind factor or sensitivity")
            if what not in results.timeseries:
                daily = [c for c in results.timeseries.columns
                         if c not in ("run_id", "day", "scenario")]
                raise ValueError(f"--outcome {what!r} is not a daily metric; "
                                 f"daily metrics: {', '.join(daily)}")
            ax = new_axes((9, 4.8), pyplot=False)
            timeseries(results, what, ax=ax)
        elif kind == "forest":
            scen = list(dict.fromkeys(runs["scenario"])) if "scenario" in runs else []
            if len(scen) < 2 or "replication" not in runs:
                raise ValueError(f"a forest plot compares scenarios and {results.path} has "
                                 f"{len(scen)} ({', '.join(map(str, scen))}); use the results of "
                                 "`govsim compare A B` (>= 2 scenarios)")
            comp = comparison_of(results)
            rows = (len(comp[comp["scenario"] != comp["baseline"]]) if outcome is None
                    else len(scen) - 1)
            ax = new_axes((9, max(3.0, 0.42 * rows + 2.0)), pyplot=False)
            forest(comp, ax=ax, outcome=outcome)
            what = outcome or "all"
        elif kind == "ecdf":
            if results.incidents is None:
                raise ValueError(f"{results.path} has no incidents.parquet; the ECDF needs the "
                                 "event log of `govsim run` (without --no-incidents) or an "
                                 "experiment with outputs.incidents: true")
            if what not in results.incidents:
                raise ValueError("for --kind ecdf, --outcome names the grouping: first_channel "
                                 f"(default), route, handler, category or scenario; not {what!r}")
            ax = new_axes((9, 5), pyplot=False)
            resolution_ecdf(results, by=what, ax=ax)
        elif kind == "map":
            if results.cells is None:
                raise ValueError(f"{results.path} has no cells.parquet: a map needs the results "
                                 "of a single `govsim run` (experiments and comparisons keep no "
                                 "cell table)")
            ax = new_axes((7.5, 6.8), pyplot=False)
            city_map(results, value=what, ax=ax, boundaries=("grid", "township", "county"))
        elif kind == "factor":
            factors = [f for f in (meta.get("factors") or []) if f in runs]
            if not factors:
                raise ValueError(f"{results.path} swept no factor (no 'factors' in its metadata); "
                                 "a factor plot needs an experiment with factors, e.g. "
                                 "`govsim experiment run grid_count_sweep`")
            if what not in runs:
                raise outcome_error(what, runs.columns, "runs table")
            k = len(factors)
            ncols = min(k, 3)
            nrows = math.ceil(k / ncols)
            fig = Figure(figsize=(5.4 * ncols, 4.4 * nrows + 0.4), layout="constrained")
            axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True,
                                              squeeze=False)).ravel()
            for a in axes[k:]:
                a.set_visible(False)
            for i, (a, f) in enumerate(zip(axes[:k], factors, strict=True)):
                factor_response(results, f, what, ax=a)
                if k > 1:
                    a.set_title(f, fontsize="medium")
                    if i and a.get_legend() is not None:
                        a.get_legend().remove()
            if k > 1:
                fig.suptitle(f"{registry.label(what)} against each factor "
                             "(dots: runs; other factors averaged)")
            ax = axes[0]
        elif kind == "sensitivity":
            frame = _sensitivity_frame(results)
            n_rows = (len(frame[frame["outcome"] == outcome]) if outcome
                      else len(frame) + frame["outcome"].nunique())
            ax = new_axes((9, max(3.2, 0.36 * n_rows + 1.8)), pyplot=False)
            sensitivity_bars(frame, ax=ax, outcome=outcome)
            what = outcome or "all"
        else:  # attribution
            levers = list((meta.get("levers") or {}).keys())
            if not levers:
                raise ValueError(f"{results.path} has no levers: attribution needs an experiment "
                                 "over every on/off combination of named levers (e.g. "
                                 "experiments/reform_levers.yaml)")
            if what not in runs:
                raise outcome_error(what, runs.columns, "runs table")
            scen = list(dict.fromkeys(runs["scenario"]))
            try:
                att = attribute(results, levers=levers, outcomes=[what], scenario=scen[0])
            except ValueError as exc:
                raise ValueError(f"cannot attribute {what!r} in {results.path}: {exc}") from None
            if att.empty:
                raise ValueError(f"no values of {what!r} to attribute")
            ax = new_axes((max(7, 1.3 * len(levers) + 4.5), 5), pyplot=False)
            attribution_waterfall(att, what, ax=ax)
    return figure_of(ax), str(what)


def _sensitivity_frame(results: Results) -> pd.DataFrame:
    """The first of the Sobol', Morris and SRC frames that ``govsim experiment analyze`` wrote."""
    from sim.analysis.sensitivity import read_frames

    # an analysed experiment is "sensitivity"; read whatever analysis/ holds of either
    if results_kind(results.path, results.metadata) in ("experiment", "sensitivity"):
        frames = read_frames(results.path)
        for name in ("sobol", "morris", "src"):
            if name in frames:
                return frames[name]
    kind = (results.metadata.get("design") or {}).get("kind")
    if kind in ("sobol", "morris", "latin_hypercube"):
        raise ValueError(f"{results.path} has no analysis yet: run "
                         f"`govsim experiment analyze {results.path}` first")
    raise ValueError(f"{results.path} is not a sensitivity experiment (design: {kind or 'none'}); "
                     "sensitivity bars need a sobol, morris or latin_hypercube design analysed "
                     "with `govsim experiment analyze`."
                     + (" For a full factorial sweep use --kind factor."
                        if kind == "full_factorial" else ""))


def _check_kind(path: str | Path, kind: str, dir_kind: str) -> None:
    """A ValueError when ``kind`` does not fit a directory of kind ``dir_kind``: the
    calibration kinds fit calibration directories only, and the others every directory but
    those."""
    if dir_kind == "calibration" and kind not in CALIBRATION_KINDS:
        raise ValueError(f"{path} is a calibration directory: use --kind "
                         f"{'|'.join(CALIBRATION_KINDS)}")
    if dir_kind != "calibration" and kind in CALIBRATION_KINDS:
        raise ValueError(f"--kind {kind} needs a calibration directory (made by `govsim "
                         f"calibrate`); {path} holds a {dir_kind} results folder: use --kind "
                         f"{'|'.join(BATCH_KINDS)}")


def plot_command(results_dir: str | Path, kind: str, outcome: str | None = None,
                 out: str | Path | None = None) -> Path:
    """``govsim plot DIR --kind KIND [--outcome NAME] [--out FILE.png]``: draw and save one plot.

    Kinds: ``timeseries`` (daily outcome by scenario, default ``closure_rate``), ``forest``
    (paired differences of a comparison; all outcomes scaled to the baseline unless
    ``--outcome``), ``ecdf`` (time to resolution; ``--outcome`` is the grouping:
    ``first_channel`` or ``route``), ``map`` (a cell column of a single run, default
    ``perceived_safety``), ``factor`` (an outcome against each swept factor), ``sensitivity``
    (Sobol'/Morris bars from ``analysis/``), ``attribution`` (Shapley waterfall of a lever
    experiment, default ``closure_rate``). A calibration directory takes ``fit``,
    ``posterior``, ``pairs`` and ``implausibility`` (:mod:`sim.analysis.calibration_plots`;
    no ``--outcome``), and only those.

    Returns:
        The PNG written (default ``DIR/plots/<kind>-<outcome>.png``, for a calibration
        ``DIR/plots/<kind>.png``), with the run's commit, seed, scenario or experiment and
        version in its text chunks.

    Raises:
        ValueError: unknown kind or outcome, or a kind that does not fit the directory.
        FileNotFoundError: not a results directory.
    """
    from sim.batch.results import load

    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; choose one of: {', '.join(KINDS)}")
    results_dir = Path(results_dir)
    if (results_dir / "metadata.json").is_file():  # else load() says it is not a results dir
        dir_kind = results_kind(results_dir)
        _check_kind(results_dir, kind, dir_kind)
        if dir_kind == "calibration":
            return _calibration_plot(results_dir, kind, outcome, out)
    res = load(results_dir, incidents=kind == "ecdf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig, what = draw(res, kind, outcome)
    path = Path(out) if out else results_dir / "plots" / f"{kind}-{what}.png"
    return save(fig, path, plot_metadata(res, Plot=kind, Outcome=what))


def _calibration_plot(results_dir: Path, kind: str, outcome: str | None,
                      out: str | Path | None) -> Path:
    if outcome is not None:
        raise ValueError(f"--outcome does not apply to --kind {kind}: a calibration's figures "
                         "show every target or parameter")
    res = calibration_plots.load(results_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig = calibration_plots.draw(res, kind)
    path = Path(out) if out else results_dir / "plots" / f"{kind}.png"
    return save(fig, path, plot_metadata(res.metadata, Plot=kind, Source=str(results_dir),
                                         Calibration=res.metadata.get("name")))
