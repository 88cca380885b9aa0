"""Sobol' and Morris indices through SALib, and the design checks they rest on.

An experiment's runner samples a design with SALib and runs every row of the sample matrix
(``point_id`` = row index) ``replications`` times. The functions here regenerate that matrix
from the design recorded in ``metadata.json``, check that the runs match it, average each
outcome over the replications of a design point, and hand the point means to SALib:

* :func:`sobol_indices`: first-order, total and second-order indices
  (``SALib.analyze.sobol``), from a ``sobol`` design (:func:`sobol_sample`);
* :func:`morris_indices`: elementary-effect screening (``SALib.analyze.morris``), from a
  ``morris`` design (:func:`morris_sample`).

The helpers :func:`point_means`, :func:`per_scenario` and :func:`salib_problem` serve the
non-SALib estimators of :mod:`sim.analysis.effects` too. SALib 1.6 is used through
``SALib.sample.sobol`` / ``SALib.analyze.sobol`` and ``SALib.sample.morris`` /
``SALib.analyze.morris`` (``SALib.sample.saltelli`` is deprecated).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.compare import done_runs

__all__ = [
    "MORRIS_COLUMNS",
    "SOBOL2_COLUMNS",
    "SOBOL_COLUMNS",
    "morris_indices",
    "morris_sample",
    "sobol_indices",
    "sobol_sample",
]

SOBOL_COLUMNS = ["scenario", "outcome", "factor", "S1", "S1_conf", "ST", "ST_conf", "note"]
SOBOL2_COLUMNS = ["scenario", "outcome", "factor_i", "factor_j", "S2", "S2_conf", "note"]
MORRIS_COLUMNS = ["scenario", "outcome", "factor", "mu", "mu_star", "mu_star_conf", "sigma",
                  "note"]

# Factor values as run must equal the sample matrix within this relative tolerance (floats go
# through the scenario model and Parquet unchanged, so this only absorbs formatting round trips).
_FLOAT_RTOL = 1e-6
# Integer-valued factor columns may differ from the sample by rounding to the nearest integer.
_ROUND_TOL = 0.5 + 1e-9


# ----------------------------------------------------------------------------------------------
# Design helpers
# ----------------------------------------------------------------------------------------------

def salib_problem(design: Mapping[str, Any]) -> dict[str, Any]:
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
        return salib_sobol_sample.sample(salib_problem(design), int(design["base_samples"]),
                                         **kwargs)


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
    return salib_morris_sample.sample(salib_problem(design), N=int(design["trajectories"]),
                                      **kwargs)


def per_scenario(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, runs) per base scenario, in order of first appearance."""
    if "scenario" not in runs:
        return [("", runs)]
    return [(str(label), g) for label, g in runs.groupby("scenario", sort=False)]


def require_columns(runs: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table has no column for {what} {missing}")


def _id_list(ids: Sequence[int], limit: int = 20) -> str:
    ids = sorted(int(i) for i in ids)
    shown = ", ".join(map(str, ids[:limit]))
    return f"{shown}{', ...' if len(ids) > limit else ''} ({len(ids)} in all)"


def point_means(runs_all: pd.DataFrame, names: Sequence[str], outcomes: Sequence[str],
            n_points: int | None, scenario: str, kind: str) -> pd.DataFrame:
    """Per design point: factor values (as run) and outcomes averaged over done replications.

    Indexed by ``point_id`` in ascending order. If ``n_points`` is given the points must be
    exactly ``0 .. n_points-1`` (the full sample matrix), else ValueError.
    """
    require_columns(runs_all, ["point_id"], "the design point")
    done = done_runs(runs_all)
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
        have = {int(i) for i in out.index}
        missing = sorted(set(range(n_points)) - have)
        extra = sorted(have - set(range(n_points)))
        if missing or extra:
            failed = set()
            if "status" in runs_all:
                failed = set(runs_all.loc[runs_all["status"] != "done", "point_id"].astype(int))
            parts = [(f"scenario {scenario!r}: the {kind} analysis needs every point of the "
                      f"{n_points}-row sample matrix")]
            if missing:
                nf = len(failed & set(missing))
                parts.append(f"missing point ids {_id_list(missing)}"
                             + (f", {nf} of them only have failed runs" if nf else ""))
            if extra:
                parts.append(f"point ids outside the design {_id_list(extra)}")
            raise ValueError("; ".join(parts))
    return out


def _match_design(points: pd.DataFrame, X: np.ndarray, names: Sequence[str],
                  bounds: Sequence[Sequence[float]],
                  scenario: str) -> tuple[np.ndarray, list[bool]]:
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


def undefined_note(y: np.ndarray) -> str:
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
    problem = salib_problem(design)
    names = list(problem["names"])
    k = len(names)
    second = bool(design.get("second_order", False))
    n_base = int(design["base_samples"])
    n_points = n_base * (2 * k + 2 if second else k + 2)
    require_columns(runs, outcomes, "outcomes")
    X = None
    if check_design and design.get("sampler_seed") is not None:
        require_columns(runs, names, "factors")
        X = sobol_sample(design)
        assert X.shape[0] == n_points

    rows: list[dict[str, Any]] = []
    rows2: list[dict[str, Any]] = []
    for scenario, g in per_scenario(runs):
        pts = point_means(g, names if X is not None else [], outcomes, n_points, scenario, "Sobol'")
        if X is not None:
            _match_design(pts, X, names, problem["bounds"], scenario)
        for outcome in outcomes:
            y = pts[outcome].to_numpy(dtype=float)
            note = undefined_note(y)
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
    problem = salib_problem(design)
    names = list(problem["names"])
    k = len(names)
    levels = int(design["levels"])
    if design.get("sampler_seed") is None:
        raise ValueError("morris design has no sampler_seed: the trajectories cannot be rebuilt")
    require_columns(runs, names, "factors")
    require_columns(runs, outcomes, "outcomes")
    X = morris_sample(design)
    notes_rounding: dict[str, dict[str, str]] = {}

    rows: list[dict[str, Any]] = []
    for scenario, g in per_scenario(runs):
        pts = point_means(g, names, outcomes, X.shape[0], scenario, "Morris")
        X_run, rounded = _match_design(pts, X, names, problem["bounds"], scenario)
        step_notes = {name: (_step_note(X, X_run, j, levels, problem["bounds"][j], k)
                             if rounded[j] else "") for j, name in enumerate(names)}
        notes_rounding[scenario] = step_notes
        for outcome in outcomes:
            y = pts[outcome].to_numpy(dtype=float)
            note = undefined_note(y)
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
