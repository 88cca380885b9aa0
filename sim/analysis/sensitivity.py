"""Sensitivity analysis of experiment results: Sobol', Morris, factorial main effects, SRC.

The experiment runner writes a results directory whose ``runs.parquet`` has one row per run
(``scenario``, ``point_id``, ``replication``, ``status``, one column per factor, one column per
outcome) and whose ``metadata.json`` describes the design (``metadata["design"]``). This module
turns those runs into tidy tables of sensitivity measures:

==================  ===============================  =========================================
design kind         function                         files in ``<results>/analysis/``
==================  ===============================  =========================================
``sobol``           :func:`sobol_indices`            ``sobol.*``, ``sobol_second_order.*``
``morris``          :func:`morris_indices`           ``morris.*``
``full_factorial``  :func:`factorial_effects`        ``factorial_effects.*``
``latin_hypercube`` :func:`src_indices`              ``src.*``
==================  ===============================  =========================================

(``*`` = ``.parquet`` and ``.csv``.) :func:`analyze` does all of it for a results directory,
and :func:`format_tables` renders the frames as ``rich`` tables for the terminal.

Conventions shared by all functions:

* Only runs with ``status == "done"`` are used.
* Stochastic noise is handled by averaging each outcome over the replications of a design
  point (``point_id``) before the variance-based (Sobol'), elementary-effect (Morris) and
  regression (SRC) estimators see it; the factorial main effects use the runs themselves, so
  their t-intervals include the replication noise. Replications whose outcome is NaN (e.g. a
  median time when nothing was resolved) are skipped in that average.
* ``point_id`` is the row index of the SALib sample matrix, so nothing depends on the row
  order of ``runs.parquet``.
* Every group of results is computed per base scenario label (``scenario`` column).
* Problems that make an index undefined (an outcome that is constant, or NaN at some design
  point) give NaN indices and an explanation in a ``note`` column instead of an exception.
  Problems that make the *design* unusable (missing points of a Sobol' or Morris matrix, factor
  values that do not match the regenerated sample) raise :class:`ValueError`.

SALib 1.6 is used through ``SALib.sample.sobol.sample`` / ``SALib.analyze.sobol.analyze`` and
``SALib.sample.morris.sample`` / ``SALib.analyze.morris.analyze`` (``SALib.sample.saltelli`` is
deprecated).
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

import sim.outcomes as outcomes_registry

__all__ = [
    "DEFAULT_OUTCOMES",
    "analyze",
    "factorial_effects",
    "format_tables",
    "morris_indices",
    "morris_sample",
    "sobol_indices",
    "sobol_sample",
    "src_indices",
    "write_frames",
]

#: Outcomes analysed when ``metadata.json`` names none (those present in ``runs`` are used).
DEFAULT_OUTCOMES: tuple[str, ...] = outcomes_registry.SENSITIVITY

SOBOL_COLUMNS = ["scenario", "outcome", "factor", "S1", "S1_conf", "ST", "ST_conf", "note"]
SOBOL2_COLUMNS = ["scenario", "outcome", "factor_i", "factor_j", "S2", "S2_conf", "note"]
MORRIS_COLUMNS = ["scenario", "outcome", "factor", "mu", "mu_star", "mu_star_conf", "sigma",
                  "note"]
FACTORIAL_COLUMNS = ["scenario", "outcome", "factor", "level", "mean", "ci_low", "ci_high", "n",
                     "effect", "note"]
SRC_COLUMNS = ["scenario", "outcome", "factor", "src", "src_low", "src_high", "r2", "n_points",
               "note"]

# Factor values as run must equal the sample matrix within this relative tolerance (floats go
# through the scenario model and Parquet unchanged, so this only absorbs formatting round trips).
_FLOAT_RTOL = 1e-6
# Integer-valued factor columns may differ from the sample by rounding to the nearest integer.
_ROUND_TOL = 0.5 + 1e-9


# ----------------------------------------------------------------------------------------------
# Design helpers
# ----------------------------------------------------------------------------------------------

def _problem(design: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of the SALib problem of a design (SALib adds keys to the dict it gets)."""
    if "problem" not in design:
        raise ValueError(f"design of kind {design.get('kind')!r} has no 'problem'")
    problem = copy.deepcopy(dict(design["problem"]))
    names = list(problem["names"])
    # SALib's samplers add these keys to the dict they are given; a runner that saved the
    # problem after sampling leaves them in the metadata
    problem.pop("sample_scaled", None)
    groups = problem.pop("groups", None)
    if groups is not None and list(groups) != names:
        raise ValueError("grouped SALib problems are not supported (indices are per factor)")
    problem.setdefault("num_vars", len(names))
    if problem["num_vars"] != len(names) or len(problem["bounds"]) != len(names):
        raise ValueError("design problem: num_vars, names and bounds disagree in length")
    return problem


def sobol_sample(design: Mapping[str, Any]) -> np.ndarray:
    """Regenerate the Saltelli/Sobol' sample matrix of a ``"sobol"`` design.

    This is the exact call the runner must make (same arguments, same seed)::

        SALib.sample.sobol.sample(problem, base_samples,
                                  calc_second_order=second_order, seed=sampler_seed)

    (optional design keys ``scramble`` (default True) and ``skip_values`` (default 0) are passed
    through). Rows: ``base_samples * (k + 2)`` without and ``base_samples * (2k + 2)`` with
    second-order indices.
    """
    from SALib.sample import sobol as salib_sobol_sample

    kwargs: dict[str, Any] = {
        "calc_second_order": bool(design.get("second_order", False)),
        "seed": design.get("sampler_seed"),
    }
    if "scramble" in design:
        kwargs["scramble"] = bool(design["scramble"])
    if "skip_values" in design:
        kwargs["skip_values"] = int(design["skip_values"])
    with warnings.catch_warnings():
        # scipy warns when base_samples is not a power of 2; the runner decides that, not us
        warnings.simplefilter("ignore", UserWarning)
        return salib_sobol_sample.sample(_problem(design), int(design["base_samples"]), **kwargs)


def morris_sample(design: Mapping[str, Any]) -> np.ndarray:
    """Regenerate the Morris trajectory matrix of a ``"morris"`` design.

    The exact call (optional design keys ``optimal_trajectories`` and ``local_optimization``
    are passed through when present)::

        SALib.sample.morris.sample(problem, N=trajectories, num_levels=levels,
                                   seed=sampler_seed)

    Rows: ``trajectories * (k + 1)`` (or ``optimal_trajectories * (k + 1)``).
    """
    from SALib.sample import morris as salib_morris_sample

    kwargs: dict[str, Any] = {"num_levels": int(design["levels"]),
                              "seed": design.get("sampler_seed")}
    if design.get("optimal_trajectories"):
        kwargs["optimal_trajectories"] = int(design["optimal_trajectories"])
    if "local_optimization" in design:
        kwargs["local_optimization"] = bool(design["local_optimization"])
    return salib_morris_sample.sample(_problem(design), N=int(design["trajectories"]), **kwargs)


def _done(runs: pd.DataFrame) -> pd.DataFrame:
    if "status" in runs:
        return runs[runs["status"] == "done"]
    return runs


def _scenarios(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, runs) per base scenario, in order of first appearance."""
    if "scenario" not in runs:
        return [("", runs)]
    return [(str(label), g) for label, g in runs.groupby("scenario", sort=False)]


def _require_columns(runs: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table has no column for {what} {missing}")


def _id_list(ids: Sequence[int], limit: int = 20) -> str:
    ids = sorted(int(i) for i in ids)
    shown = ", ".join(map(str, ids[:limit]))
    return f"{shown}{', ...' if len(ids) > limit else ''} ({len(ids)} in all)"


def _points(runs_all: pd.DataFrame, names: Sequence[str], outcomes: Sequence[str],
            n_points: int | None, scenario: str, kind: str) -> pd.DataFrame:
    """Per design point: factor values (as run) and outcomes averaged over done replications.

    Indexed by ``point_id`` in ascending order. If ``n_points`` is given the points must be
    exactly ``0 .. n_points-1`` (the full sample matrix), else ValueError.
    """
    _require_columns(runs_all, ["point_id"], "the design point")
    done = _done(runs_all)
    for name in names:
        if name in done and not pd.api.types.is_numeric_dtype(done[name]) \
                and not pd.api.types.is_bool_dtype(done[name]):
            raise ValueError(f"factor column {name!r} is not numeric")
    g = done.groupby("point_id", sort=True)
    factors = g[list(names)].agg(["min", "max"]) if names else None
    if factors is not None:
        lo = factors.xs("min", axis=1, level=1).astype(float)
        hi = factors.xs("max", axis=1, level=1).astype(float)
        bad = (hi - lo).abs() > 1e-12 * np.maximum(1.0, hi.abs())
        if bad.to_numpy().any():
            pid = bad.any(axis=1)
            raise ValueError(f"scenario {scenario!r}: replications of the same point_id have "
                             f"different factor values at points {_id_list(pid[pid].index)}")
    out = g[list(outcomes)].mean()  # skips NaN replications
    if factors is not None:
        out = lo.join(out)
    out["replications"] = g.size()
    if n_points is not None:
        have = set(int(i) for i in out.index)
        missing = sorted(set(range(n_points)) - have)
        extra = sorted(have - set(range(n_points)))
        if missing or extra:
            failed = set()
            if "status" in runs_all:
                failed = set(runs_all.loc[runs_all["status"] != "done", "point_id"].astype(int))
            parts = [f"scenario {scenario!r}: the {kind} analysis needs every point of the "
                     f"{n_points}-row sample matrix"]
            if missing:
                nf = len(failed & set(missing))
                parts.append(f"missing point ids {_id_list(missing)}"
                             + (f", {nf} of them only have failed runs" if nf else ""))
            if extra:
                parts.append(f"point ids outside the design {_id_list(extra)}")
            raise ValueError("; ".join(parts))
    return out


def _match_design(points: pd.DataFrame, X: np.ndarray, names: Sequence[str],
                  bounds: Sequence[Sequence[float]], scenario: str) -> tuple[np.ndarray, list[bool]]:
    """Check the factor values as run against the regenerated sample matrix.

    Returns the values as run (float, ordered by point_id) and, per factor, whether the run
    values are integer-rounded versions of the sample. Raises ValueError on any other mismatch.
    """
    got = points[list(names)].to_numpy(dtype=float)
    if got.shape != X.shape:
        raise ValueError(f"scenario {scenario!r}: runs give {got.shape[0]} points, the "
                         f"regenerated sample has {X.shape[0]}")
    rounded: list[bool] = []
    for j, name in enumerate(names):
        a, e = got[:, j], X[:, j]
        span = abs(float(bounds[j][1]) - float(bounds[j][0])) or 1.0
        close = np.isclose(a, e, rtol=_FLOAT_RTOL, atol=_FLOAT_RTOL * span)
        if close.all():
            rounded.append(False)
            continue
        integral = bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))
        bad = (np.abs(a - e) > _ROUND_TOL) if integral else ~close
        if not bad.any():
            rounded.append(True)
            continue
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"scenario {scenario!r}: factor {name!r} at point_id {int(points.index[i])} was run "
            f"with {a[i]!r} but the regenerated sample has {e[i]!r}; the runs do not belong to "
            "this design (check sampler_seed and the sample call)")
    return got, rounded


def _undefined_note(y: np.ndarray) -> str:
    """Why an index computed from point-averaged outcomes ``y`` would be undefined, or ''."""
    nan = ~np.isfinite(y)
    if nan.any():
        return f"undefined: outcome is NaN at {int(nan.sum())} of {y.size} design points"
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        return "undefined: outcome is constant across design points (no variance)"
    return ""


def _seed_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A Generator for SALib's bootstrap. ``SALib.analyze.sobol.analyze`` tests ``if seed:``,
    so an int seed of 0 (or None) would silently fall back to the global, unseeded
    ``np.random.randint``; a Generator object is always truthy."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------
# Sobol'
# ----------------------------------------------------------------------------------------------

def sobol_indices(
    runs: pd.DataFrame,
    design: Mapping[str, Any],
    outcomes: Sequence[str],
    conf_level: float = 0.95,
    seed: int = 0,
    *,
    check_design: bool = True,
    num_resamples: int = 100,
) -> dict[str, pd.DataFrame | None]:
    """First-order, total and (optionally) second-order Sobol' indices per scenario and outcome.

    Each outcome is averaged over the done replications of every design point, ordered by
    ``point_id`` and passed to ``SALib.analyze.sobol.analyze``. SALib estimates first-order
    indices with the estimator of Saltelli et al. (2010), total indices with the Jansen (1999)
    form recommended there, and second-order indices following Saltelli (2002); the confidence
    half-widths are bootstrap (``num_resamples`` resamples of the base rows) normal-theory
    intervals at ``conf_level``.

    References:
        Saltelli, A., Annoni, P., Azzini, I., Campolongo, F., Ratto, M., Tarantola, S. (2010).
        Variance based sensitivity analysis of model output. Design and estimator for the total
        sensitivity index. Computer Physics Communications 181(2), 259-270.
        Jansen, M. J. W. (1999). Analysis of variance designs for model output. Computer Physics
        Communications 117, 35-43.
        Saltelli, A. (2002). Making best use of model evaluations to compute sensitivity
        indices. Computer Physics Communications 145(2), 280-297.

    Args:
        runs: the runs table (see the module docstring).
        design: ``metadata["design"]`` of kind ``"sobol"``.
        outcomes: outcome columns to analyse.
        conf_level: confidence level of the reported half-widths.
        seed: seed of SALib's bootstrap (any int, 0 included, gives reproducible intervals).
        check_design: regenerate the sample matrix from ``sampler_seed`` and check that the
            factor values as run match it (integer factors may differ by rounding); skipped when
            the design has no ``sampler_seed``.
        num_resamples: bootstrap resamples for the confidence intervals.

    Returns:
        ``{"first_total": df, "second": df_or_None}``. ``first_total`` has columns
        ``scenario, outcome, factor, S1, S1_conf, ST, ST_conf, note``; ``second`` (None unless
        the design has ``second_order: true``) has ``scenario, outcome, factor_i, factor_j, S2,
        S2_conf, note`` for every pair i < j. ``*_conf`` are half-widths: the interval is
        ``S ± S_conf``. ``note`` is empty, or says why the indices are NaN (constant outcome,
        NaN outcome at some point).

    Raises:
        ValueError: a point of the sample matrix has no done run (its ids are named), the runs
            have points outside the matrix, or the factor values do not match the design.
    """
    from SALib.analyze import sobol as salib_sobol

    if design.get("kind", "sobol") != "sobol":
        raise ValueError(f"sobol_indices needs a 'sobol' design, got {design.get('kind')!r}")
    problem = _problem(design)
    names = list(problem["names"])
    k = len(names)
    second = bool(design.get("second_order", False))
    n_base = int(design["base_samples"])
    n_points = n_base * (2 * k + 2 if second else k + 2)
    _require_columns(runs, outcomes, "outcomes")
    X = None
    if check_design and design.get("sampler_seed") is not None:
        _require_columns(runs, names, "factors")
        X = sobol_sample(design)
        assert X.shape[0] == n_points

    rows: list[dict[str, Any]] = []
    rows2: list[dict[str, Any]] = []
    for scenario, g in _scenarios(runs):
        pts = _points(g, names if X is not None else [], outcomes, n_points, scenario, "Sobol'")
        if X is not None:
            _match_design(pts, X, names, problem["bounds"], scenario)
        for outcome in outcomes:
            y = pts[outcome].to_numpy(dtype=float)
            note = _undefined_note(y)
            if note:
                S = {"S1": np.full(k, np.nan), "S1_conf": np.full(k, np.nan),
                     "ST": np.full(k, np.nan), "ST_conf": np.full(k, np.nan),
                     "S2": np.full((k, k), np.nan), "S2_conf": np.full((k, k), np.nan)}
            else:
                S = salib_sobol.analyze(copy.deepcopy(problem), y, calc_second_order=second,
                                        num_resamples=num_resamples, conf_level=conf_level,
                                        print_to_console=False, seed=_seed_generator(seed))
            for j, name in enumerate(names):
                rows.append({"scenario": scenario, "outcome": outcome, "factor": name,
                             "S1": float(S["S1"][j]), "S1_conf": float(S["S1_conf"][j]),
                             "ST": float(S["ST"][j]), "ST_conf": float(S["ST_conf"][j]),
                             "note": note})
            if second:
                for i in range(k):
                    for j in range(i + 1, k):
                        rows2.append({"scenario": scenario, "outcome": outcome,
                                      "factor_i": names[i], "factor_j": names[j],
                                      "S2": float(S["S2"][i, j]),
                                      "S2_conf": float(S["S2_conf"][i, j]), "note": note})
    first_total = pd.DataFrame(rows, columns=SOBOL_COLUMNS)
    second_df = pd.DataFrame(rows2, columns=SOBOL2_COLUMNS) if second else None
    return {"first_total": first_total, "second": second_df}


# ----------------------------------------------------------------------------------------------
# Morris
# ----------------------------------------------------------------------------------------------

def _step_note(X_nominal: np.ndarray, X_run: np.ndarray, j: int, levels: int,
               bounds: Sequence[float], k: int) -> str:
    """How integer rounding changed the Morris steps of factor j (empty if it did not)."""
    delta = levels / (2.0 * (levels - 1))
    nominal = delta * (float(bounds[1]) - float(bounds[0]))
    size = k + 1
    n_traj = X_nominal.shape[0] // size
    dn = np.diff(X_nominal.reshape(n_traj, size, k), axis=1)[:, :, j]
    dr = np.diff(X_run.reshape(n_traj, size, k), axis=1)[:, :, j]
    moved = dn != 0
    if not moved.any() or nominal == 0:
        return ""
    ratio = np.abs(dr[moved]) / nominal
    if np.allclose(ratio, 1.0, rtol=1e-6):
        return ""
    note = (f"integer rounding: realised steps are {ratio.min():.2f}-{ratio.max():.2f} x the "
            "nominal step")
    if (ratio == 0).any():
        note += f"; {int((ratio == 0).sum())} step(s) collapsed to 0 (elementary effect 0 there)"
    return note


def morris_indices(
    runs: pd.DataFrame,
    design: Mapping[str, Any],
    outcomes: Sequence[str],
    conf_level: float = 0.95,
    seed: int = 0,
    *,
    num_resamples: int = 100,
) -> pd.DataFrame:
    """Morris elementary-effect screening measures per scenario and outcome.

    The trajectory matrix is regenerated exactly (:func:`morris_sample`) and compared with the
    factor values as run, point by point. Each outcome is averaged over the done replications
    of every point and passed to ``SALib.analyze.morris.analyze`` with ``num_levels=levels``.

    Which X is analysed: the values **as run** (ordered by ``point_id``). They equal the sample
    except for integer factors, which the runner rounds; SALib uses X only to find which factor
    moved between consecutive points of a trajectory and in which direction, and divides the
    output difference by the nominal grid step ``delta = p / (2 (p - 1))`` (in unit-cube
    coordinates). Elementary effects are therefore ``dY / delta`` in units of outcome per full
    factor range. Rounding cannot flip a direction, but it can shrink, stretch or (for factors
    with a range of a few units) collapse a step; such factors get a ``note`` with the realised
    step as a multiple of the nominal one, and a collapsed step contributes an elementary
    effect of 0.

    ``mu_star`` is the mean absolute elementary effect of Campolongo et al. (2007), robust to
    effects of opposite sign; ``sigma`` (standard deviation of the effects) indicates
    interactions or non-linearity; ``mu_star_conf`` is the bootstrap half-width at
    ``conf_level``.

    References:
        Morris, M. D. (1991). Factorial sampling plans for preliminary computational
        experiments. Technometrics 33(2), 161-174.
        Campolongo, F., Cariboni, J., Saltelli, A. (2007). An effective screening design for
        sensitivity analysis of large models. Environmental Modelling & Software 22(10),
        1509-1518.

    Args:
        runs: the runs table.
        design: ``metadata["design"]`` of kind ``"morris"``.
        outcomes: outcome columns to analyse.
        conf_level: confidence level of ``mu_star_conf``.
        seed: seed of SALib's bootstrap.
        num_resamples: bootstrap resamples.

    Returns:
        Columns ``scenario, outcome, factor, mu, mu_star, mu_star_conf, sigma, note``.

    Raises:
        ValueError: a point of the trajectory matrix has no done run, or the factor values as
            run differ from the regenerated sample by more than integer rounding.
    """
    from SALib.analyze import morris as salib_morris

    if design.get("kind", "morris") != "morris":
        raise ValueError(f"morris_indices needs a 'morris' design, got {design.get('kind')!r}")
    problem = _problem(design)
    names = list(problem["names"])
    k = len(names)
    levels = int(design["levels"])
    if design.get("sampler_seed") is None:
        raise ValueError("morris design has no sampler_seed: the trajectories cannot be rebuilt")
    _require_columns(runs, names, "factors")
    _require_columns(runs, outcomes, "outcomes")
    X = morris_sample(design)
    notes_rounding: dict[str, dict[str, str]] = {}

    rows: list[dict[str, Any]] = []
    for scenario, g in _scenarios(runs):
        pts = _points(g, names, outcomes, X.shape[0], scenario, "Morris")
        X_run, rounded = _match_design(pts, X, names, problem["bounds"], scenario)
        step_notes = {name: (_step_note(X, X_run, j, levels, problem["bounds"][j], k)
                             if rounded[j] else "") for j, name in enumerate(names)}
        notes_rounding[scenario] = step_notes
        for outcome in outcomes:
            y = pts[outcome].to_numpy(dtype=float)
            note = _undefined_note(y)
            if note.startswith("undefined: outcome is constant"):
                note = "outcome is constant across design points: every elementary effect is 0"
            if "NaN" in note:
                res = {m: np.full(k, np.nan) for m in ("mu", "mu_star", "mu_star_conf", "sigma")}
            else:
                Si = salib_morris.analyze(copy.deepcopy(problem), np.ascontiguousarray(X_run), y,
                                          num_resamples=num_resamples, conf_level=conf_level,
                                          num_levels=levels, print_to_console=False, seed=seed)
                res = {m: np.ma.filled(np.ma.asarray(Si[m], dtype=float), np.nan)
                       for m in ("mu", "mu_star", "mu_star_conf", "sigma")}
            for j, name in enumerate(names):
                row_note = "; ".join(n for n in (note, step_notes[name]) if n)
                rows.append({"scenario": scenario, "outcome": outcome, "factor": name,
                             **{m: float(res[m][j]) for m in res}, "note": row_note})
    return pd.DataFrame(rows, columns=MORRIS_COLUMNS)


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
    _require_columns(runs, list(factors), "factors")
    _require_columns(runs, outcomes, "outcomes")
    q = 0.5 + conf_level / 2
    cell_keys = ["point_id"] if "point_id" in runs else list(factors)
    rows: list[dict[str, Any]] = []
    for scenario, g in _scenarios(_done(runs)):
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
                    if df > 0:
                        half = float(stats.t.ppf(q, df) * math.sqrt(ss / df / n))
                    elif n >= 2:
                        half = float(stats.t.ppf(q, n - 1) * y.std(ddof=1) / math.sqrt(n))
                        note = ("no replications: interval over runs, includes the other "
                                "factors' effects (conservative)")
                    else:
                        half = math.nan
                    rows.append({"scenario": scenario, "outcome": outcome, "factor": factor,
                                 "level": label, "mean": mean, "ci_low": mean - half,
                                 "ci_high": mean + half, "n": n, "effect": mean - grand,
                                 "note": note})
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
    problem = _problem(design)
    names = list(problem["names"])
    k = len(names)
    _require_columns(runs, names, "factors")
    _require_columns(runs, outcomes, "outcomes")
    alpha = 1.0 - conf_level
    rows: list[dict[str, Any]] = []
    for scenario, g in _scenarios(runs):
        pts = _points(g, names, outcomes, None, scenario, "SRC")
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


# ----------------------------------------------------------------------------------------------
# Results directories
# ----------------------------------------------------------------------------------------------

def write_frames(frames: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write every frame as ``<name>.parquet`` and ``<name>.csv`` (atomically, file by file)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, df in frames.items():
        for suffix, write in ((".parquet", lambda d, p: d.to_parquet(p, index=False)),
                              (".csv", lambda d, p: d.to_csv(p, index=False))):
            target = out / f"{name}{suffix}"
            tmp = out / f".{name}{suffix}.tmp-{os.getpid()}"
            try:
                write(df, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            written.append(target)
    return written


def analyze(results_dir: str | Path, *, seed: int = 0,
            outcomes: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Analyse an experiment's results directory according to its design.

    Reads ``runs.parquet`` and ``metadata.json`` (via :func:`sim.batch.results.load`), dispatches on
    ``metadata["design"]["kind"]``, writes the frames as Parquet and CSV into
    ``<results_dir>/analysis/`` together with ``analysis.json`` (what was analysed, how), and
    returns them:

    * ``sobol``: ``{"sobol": ..., "sobol_second_order": ...}`` (the latter only with second
      order), see :func:`sobol_indices`;
    * ``morris``: ``{"morris": ...}``, see :func:`morris_indices`;
    * ``full_factorial``: ``{"factorial_effects": ...}``, see :func:`factorial_effects`;
    * ``latin_hypercube``: ``{"src": ...}``, see :func:`src_indices`.

    Args:
        results_dir: the experiment's results directory.
        seed: seed of the bootstrap confidence intervals.
        outcomes: outcomes to analyse; default ``metadata["outcomes"]``, else those of
            :data:`DEFAULT_OUTCOMES` present in the runs table.

    Raises:
        ValueError: unknown design kind, missing outcomes or an incomplete/mismatched design.
    """
    from sim.batch.results import load

    res = load(results_dir, incidents=False)
    meta = res.metadata
    design = meta.get("design")
    if not design or "kind" not in design:
        raise ValueError(f"{results_dir}: metadata.json has no design; is this an experiment?")
    kind = design["kind"]
    runs = res.runs
    if outcomes is None:
        outcomes = meta.get("outcomes") or [o for o in DEFAULT_OUTCOMES if o in runs.columns]
    outcomes = list(outcomes)
    if not outcomes:
        raise ValueError(f"{results_dir}: no outcomes to analyse")
    conf = float(meta.get("confidence", 0.95))

    frames: dict[str, pd.DataFrame] = {}
    if kind == "sobol":
        s = sobol_indices(runs, design, outcomes, conf_level=conf, seed=seed)
        frames["sobol"] = s["first_total"]
        if s["second"] is not None:
            frames["sobol_second_order"] = s["second"]
    elif kind == "morris":
        frames["morris"] = morris_indices(runs, design, outcomes, conf_level=conf, seed=seed)
    elif kind == "full_factorial":
        frames["factorial_effects"] = factorial_effects(runs, design, outcomes, conf_level=conf)
    elif kind == "latin_hypercube":
        frames["src"] = src_indices(runs, design, outcomes, conf_level=conf, seed=seed)
    else:
        raise ValueError(f"no sensitivity analysis for design kind {kind!r}")

    out = Path(results_dir) / "analysis"
    write_frames(frames, out)
    info = {
        "design_kind": kind,
        "outcomes": outcomes,
        "confidence": conf,
        "seed": seed,
        "runs_used": int((_done(runs)).shape[0]),
        "runs_failed": int(runs.shape[0] - _done(runs).shape[0]),
        "tables": sorted(frames),
        "salib": _salib_version(),
    }
    tmp = out / f".analysis.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, out / "analysis.json")
    return frames


def _salib_version() -> str:
    from importlib import metadata as md

    try:
        return md.version("SALib")
    except md.PackageNotFoundError:  # pragma: no cover
        return "unknown"


# ----------------------------------------------------------------------------------------------
# Terminal tables
# ----------------------------------------------------------------------------------------------

def _num(x: Any, decimals: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{float(x):,.{decimals}f}"


def _decimals(*columns: pd.Series, sig: int = 3) -> int:
    """Decimals showing about ``sig`` significant digits of the largest value in the columns."""
    vals = np.abs(pd.concat(columns).to_numpy(dtype=float))
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if not vals.size:
        return 3
    return int(min(3, max(0, sig - 1 - math.floor(math.log10(vals.max())))))


def _label(outcome: str) -> str:
    o = outcomes_registry.OUTCOMES.get(outcome)
    return f"{o.label} ({outcome})" if o else outcome


def _title(kind: str, scenario: str, outcome: str) -> str:
    where = f" — {scenario}" if scenario else ""
    return f"{kind}: {_label(outcome)}{where}"


def _notes(df: pd.DataFrame) -> str | None:
    if "note" not in df:
        return None
    notes = sorted({n for n in df["note"].astype(str) if n})
    return "\n".join(notes) if notes else None


def _groups(df: pd.DataFrame) -> Iterable[tuple[str, str, pd.DataFrame]]:
    for (scenario, outcome), g in df.groupby(["scenario", "outcome"], sort=False):
        yield str(scenario), str(outcome), g


def format_tables(frames: Mapping[str, pd.DataFrame], *, conf_level: float | None = None,
                  top_pairs: int = 10) -> list[Any]:
    """Readable ``rich`` tables, one per frame, scenario and outcome.

    The kind of a frame is recognised from its columns, so both the dict returned by
    :func:`analyze` and ``{"sobol": sobol_indices(...)["first_total"], ...}`` work. Sobol'
    factors are sorted by ST, Morris by mu*, SRC by |SRC| (all descending, NaN last), factorial
    factors by the range of their effects with levels in design order; second-order Sobol'
    tables show the ``top_pairs`` largest S2. Values are rounded for reading; notes (why an
    index is NaN, integer rounding of Morris steps) go into the table caption.

    Args:
        frames: ``{name: frame}`` as returned by :func:`analyze`.
        conf_level: the confidence level used, only to label the factorial CI column.
        top_pairs: rows of the second-order Sobol' tables.

    Returns:
        A list of ``rich.table.Table`` (print each with a ``rich.console.Console``).
    """
    from rich.table import Table

    tables: list[Table] = []
    for name, df in frames.items():
        if df is None or df.empty:
            continue
        cols = set(df.columns)
        if {"S1", "ST"} <= cols:
            for scenario, outcome, g in _groups(df):
                t = Table(title=_title("Sobol' indices", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor", "S1", "± S1", "ST", "± ST"):
                    t.add_column(c, justify="left" if c == "Factor" else "right")
                for _, r in g.sort_values("ST", ascending=False, na_position="last").iterrows():
                    t.add_row(str(r["factor"]), _num(r["S1"]), _num(r["S1_conf"]),
                              _num(r["ST"]), _num(r["ST_conf"]))
                tables.append(t)
        elif "S2" in cols:
            for scenario, outcome, g in _groups(df):
                t = Table(title=_title("Sobol' second-order indices", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor i", "Factor j", "S2", "± S2"):
                    t.add_column(c, justify="right" if c.startswith(("S2", "±")) else "left")
                g = g.sort_values("S2", ascending=False, na_position="last").head(top_pairs)
                for _, r in g.iterrows():
                    t.add_row(str(r["factor_i"]), str(r["factor_j"]), _num(r["S2"]),
                              _num(r["S2_conf"]))
                tables.append(t)
        elif "mu_star" in cols:
            for scenario, outcome, g in _groups(df):
                t = Table(title=_title("Morris screening", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor", "mu*", "± mu*", "mu", "sigma"):
                    t.add_column(c, justify="left" if c == "Factor" else "right")
                d = _decimals(g["mu_star"], g["mu"], g["sigma"])
                for _, r in g.sort_values("mu_star", ascending=False,
                                          na_position="last").iterrows():
                    t.add_row(str(r["factor"]), _num(r["mu_star"], d),
                              _num(r["mu_star_conf"], d), _num(r["mu"], d),
                              _num(r["sigma"], d))
                tables.append(t)
        elif {"level", "effect"} <= cols:
            for scenario, outcome, g in _groups(df):
                pct = f"{100 * conf_level:.0f}% CI" if conf_level else "CI"
                t = Table(title=_title("Main effects", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor", "Level", "Mean", pct, "n", "Effect"):
                    t.add_column(c, justify="left" if c in ("Factor", "Level") else "right")
                spread = g.groupby("factor", sort=False)["effect"].agg(
                    lambda e: float(np.nanmax(e) - np.nanmin(e)) if e.notna().any() else -1.0)
                d = _decimals(g["mean"], sig=4)
                de = _decimals(g["effect"])
                for factor in spread.sort_values(ascending=False, kind="stable").index:
                    t.add_section()
                    for i, (_, r) in enumerate(g[g["factor"] == factor].iterrows()):
                        t.add_row(str(factor) if i == 0 else "", str(r["level"]),
                                  _num(r["mean"], d),
                                  f"[{_num(r['ci_low'], d)}, {_num(r['ci_high'], d)}]",
                                  str(int(r["n"])), f"{float(r['effect']):+,.{de}f}"
                                  if np.isfinite(r["effect"]) else "–")
                tables.append(t)
        elif "src" in cols:
            for scenario, outcome, g in _groups(df):
                r2 = g["r2"].iloc[0]
                cap = "\n".join(x for x in (f"R² = {_num(r2)}", _notes(g)) if x)
                t = Table(title=_title("Standardized regression coefficients", scenario,
                                       outcome), caption=cap, header_style="bold")
                for c in ("Factor", "SRC", "CI low", "CI high"):
                    t.add_column(c, justify="left" if c == "Factor" else "right")
                order = g.assign(_a=g["src"].abs()).sort_values("_a", ascending=False,
                                                                 na_position="last")
                for _, r in order.iterrows():
                    t.add_row(str(r["factor"]), _num(r["src"]), _num(r["src_low"]),
                              _num(r["src_high"]))
                tables.append(t)
    return tables

