r"""Comparing scenarios under parameter uncertainty: every scenario at every member of a
calibration's posterior ensemble, with paired replications.

A plain ``govsim compare`` runs each scenario at one set of parameter values, so its interval
covers the model's randomness only. :func:`posterior_compare` runs every scenario at each of
``members`` members of the posterior ensemble (:meth:`CalibrationResults.members`, a weighted
resample of the ensemble) times ``reps`` replications, as one experiment batch through
:func:`sim.batch.run_experiment` (so it resumes after a kill and runs on a process pool or a
Dask cluster). A member's parameter values go into each scenario through
:meth:`Calibration.apply`: a ``mode: multiply`` parameter multiplies *that scenario's own*
value. Replication ``r`` runs with the same seed in every scenario *and* every member (one
root seed, common random numbers), so the difference between two scenarios is paired.

:func:`posterior_table` splits each effect's uncertainty into its parameter and stochastic
parts (formulas in its docstring); :func:`format_table` prints it. The results directory is an
ordinary comparison batch (``runs.parquet`` with one column per calibration parameter and
``point_id`` = member, ``metadata.json`` whose ``design`` records the posterior directory and
the members' values and weights) plus ``posterior_comparison.parquet`` and ``.csv``.

Example, run from the repository's root (about a minute: the tiny calibration of
the tests, then 2 scenarios x 3 members x 2 replications)::

    import sys
    from pathlib import Path

    import pandas as pd
    from rich.console import Console

    from sim.calibration.posterior import format_table, posterior_compare

    sys.path.insert(0, "tests")
    from calibration_parts import TINY_SET, run_tiny  # a 20,000-person district, 3 parameters

    cal_dir = Path("results/calibrate-tiny")
    if not (cal_dir / "ensemble.parquet").is_file():
        run_tiny(cal_dir)
    path = posterior_compare(["default", "district_pre_reform"], cal_dir, members=3, reps=2,
                             days=60, warmup=10, sets=TINY_SET, workers=1,
                             out="results/posterior-demo", force=True)
    Console().print(format_table(pd.read_parquet(path / "posterior_comparison.parquet")))

From the command line, for the shipped calibration (``govsim calibrate pingxiang`` first)::

    govsim compare pingxiang_pre_reform pingxiang_reform --posterior results/calibrate-pingxiang \
        --members 20 --reps 3 --set population.scale=50
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim import outcomes as registry
from sim.analysis.compare import scenarios_and_baseline
from sim.calibration.results import load
from sim.calibration.spec import CalibrationError
from sim.calibration.targets import weighted_mean_var, weighted_quantile
from sim.files import atomic_write, atomic_write_parquet, check_output_dir, safe_name

if TYPE_CHECKING:
    from rich.table import Table

#: Most members a comparison may use (the calibration file's ``predict.max_members`` limit).
MAX_MEMBERS = 5000
#: File names of the table, in the results directory.
TABLE_FILE = "posterior_comparison"
COLUMNS = ["scenario", "baseline", "outcome", "label", "unit", "mean_baseline", "mean_scenario",
           "effect", "effect_q05", "effect_q95", "predictive_q05", "predictive_q95", "sd_total",
           "var_parameter_raw", "var_parameter", "var_stochastic", "share_parameter",
           "share_stochastic", "members", "reps", "pairs"]

__all__ = ["COLUMNS", "MAX_MEMBERS", "TABLE_FILE", "default_out", "format_table", "posterior_compare",
           "posterior_table"]


def _labels(scenarios: Sequence[str | Path]) -> list[str]:
    return [Path(s).stem for s in scenarios]


def default_out(scenarios: Sequence[str | Path]) -> Path:
    """The default results directory: ``results/compare-A-vs-B-posterior``."""
    from sim.batch.results import DEFAULT_RESULTS_DIR

    return DEFAULT_RESULTS_DIR / (safe_name("compare-" + "-vs-".join(_labels(scenarios)), limit=90)
                                  + "-posterior")


# --------------------------------------------------------------------------- running
def posterior_compare(scenarios: Sequence[str | Path], posterior: str | Path, *, members: int = 20,
                      reps: int = 3, days: int | None = None, warmup: int | None = None,
                      seed: int | None = None, sets: Mapping[str, Any] | None = None,
                      baseline: str | None = None, out: str | Path | None = None,
                      executor: Any = None, workers: int | None = None,
                      scheduler: str | None = None, resume: bool = False, force: bool = False,
                      progress: bool = False,
                      note: Callable[[str], None] | None = None) -> Path:
    """Run scenarios at each member of a calibration's posterior and tabulate the effects.

    Runs ``len(scenarios) x members x reps`` model runs as one batch, then writes
    ``posterior_comparison.parquet`` and ``.csv`` (:func:`posterior_table`) beside them.

    Args:
        scenarios: two or more scenario names (under ``scenarios/``) or files; a scenario's
            label is its file stem, as in ``govsim compare``.
        posterior: a finished calibration's results directory (``govsim calibrate``).
        members: ensemble members used (a systematic resample by weight when the ensemble is
            larger; the weights are then the draw counts), 1 to :data:`MAX_MEMBERS`.
        reps: paired replications per member and scenario.
        days, warmup, seed: as ``govsim compare`` (default: the first scenario's).
        sets: dotted-key overrides applied to every scenario (``--set``), before the members'
            parameters (so a ``multiply`` parameter multiplies the overridden value).
        baseline: the scenario label the others are compared with (default: the first).
        out: results directory (default :func:`default_out`).
        executor, workers, scheduler, resume, force, progress: as
            :func:`sim.batch.run_experiment`.
        note: receives one line describing the batch before it runs.

    Returns:
        The results directory.

    Raises:
        CalibrationError: ``posterior`` is not a calibration directory or is unfinished, or a
            member's parameters make a scenario invalid (nothing is written then).
        sim.files.InputError: a bad scenario, override or results directory.
        sim.batch.BatchError: the batch stopped on an unexpected error (``resume=True``
            continues it).
    """
    from sim.batch import build_experiment, run_experiment
    from sim.batch.spec import Factor
    from sim.scenario import ScenarioError, load_scenario

    labels = _labels(scenarios)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"need two or more scenarios with different names, got {labels}")
    baseline = baseline or labels[0]
    if baseline not in labels:
        raise ValueError(f"baseline {baseline!r} is not one of {labels}")
    if not 1 <= members <= MAX_MEMBERS:
        raise ValueError(f"members must be from 1 to {MAX_MEMBERS}, not {members}")
    res = load(posterior)
    if not res.complete:
        raise CalibrationError(f"{res.path} is not finished (status"
                               f" {res.metadata.get('status')!r});"
                               f" finish it with `govsim calibrate {res.metadata.get('spec_file')}"
                               f" --out {res.path} --resume`")
    cal = res.calibration()
    ens = res.members(members)
    thetas = [{n: float(row[n]) for n in cal.names} for _, row in ens.iterrows()]
    weights = (ens["weight"] / ens["weight"].sum()).astype(float).tolist()

    sets = dict(sets or {})
    first = load_scenario(scenarios[0], sets or None)
    days = days or first.days
    warmup = warmup if warmup is not None else min(first.warmup_days, days - 1)
    raw = {
        "name": default_out(scenarios).name,
        "description": f"govsim compare {' '.join(map(str, scenarios))} --posterior {posterior}",
        "scenarios": [{"label": lab, "set": sets,
                       "scenario": str(Path(s).resolve()) if Path(s).is_file() else str(s)}
                      for lab, s in zip(labels, scenarios, strict=True)],
        "replications": reps, "seed": seed if seed is not None else first.seed,
        "days": days, "warmup_days": warmup,
        "outputs": {"timeseries": True, "timeseries_every": 7, "incidents": False},
    }
    exp = build_experiment(raw, "govsim compare --posterior", base_dir=Path.cwd(),
                           kind="comparison")
    base = exp.base
    for label, sc in base.items():  # every member valid in every scenario, before any run
        for m, theta in enumerate(thetas):
            try:
                sc.with_overrides(cal.apply(sc, theta))
            except ScenarioError as exc:
                raise CalibrationError(f"member {m} of {res.path} ({json.dumps(theta)}) makes"
                                       f" scenario '{label}' invalid: {exc}") from None
    path = Path(out) if out else default_out(scenarios)
    check_output_dir(path, replace=force, resume=resume)
    params = [dataclasses.asdict(p) for p in cal.parameters]
    digest = hashlib.sha256(json.dumps([exp.spec_hash, params, thetas, weights]).encode())
    design = {"kind": "posterior_comparison", "posterior": str(Path(res.path).resolve()),
              "calibration": cal.spec.name, "calibration_spec_hash": res.metadata.get("spec_hash"),
              # the calibration ran another version of the model or its scenarios: say so
              "calibration_current": res.metadata.get("spec_hash") == cal.spec_hash,
              "baseline": baseline, "parameters": params, "points": len(thetas),
              "ensemble_member": [int(x) for x in ens["member"]] if "member" in ens else None,
              "weights": weights, "members": thetas}
    exp = dataclasses.replace(
        exp, factors=[Factor(p.name, low=p.low, high=p.high) for p in cal.parameters],
        points=thetas, spec_hash=digest.hexdigest(), design_meta=design,
        overrides=lambda label, theta: cal.apply(base[label], theta))
    if note:
        note(f"{len(labels)} scenario(s) x {len(thetas)} posterior member(s) of {res.path} x {reps}"
             f" replication(s) = {exp.n_runs} runs of {days} days (seed {raw['seed']}; replication"
             " r shares its seed across scenarios and members)"
             + ("" if design["calibration_current"] else
                "; note: the model's code or the calibration's scenarios changed since it ran"))
    run_experiment(exp, executor, out=path, resume=resume, force=force, workers=workers,
                   scheduler=scheduler, progress=progress)
    table = posterior_table(pd.read_parquet(path / "runs.parquet"), weights, baseline)
    atomic_write_parquet(path / f"{TABLE_FILE}.parquet", table)
    atomic_write(path / f"{TABLE_FILE}.csv", lambda tmp: table.to_csv(tmp, index=False))
    return path


# --------------------------------------------------------------------------- the table
def posterior_table(runs: pd.DataFrame, weights: Mapping[int, float] | Sequence[float] | pd.Series,
                    baseline: str | None = None,
                    outcomes: Sequence[str] | None = None) -> pd.DataFrame:
    """Each scenario's effect against the baseline, with its uncertainty split into the part
    the parameters make and the part chance makes.

    For scenario s, outcome o, member m (``point_id``) with weight w_m (normalised to sum 1
    over the members with at least one pair) and replication r, the paired difference is
    ``D_mr = x(s, m, r) - x(baseline, m, r)`` (same seed). With ``D̄_m`` the mean and ``s²_m``
    the variance (ddof=1) of member m's ``n_m`` differences:

    * ``effect`` μ = Σ w_m D̄_m (``mean_scenario - mean_baseline``, each a weighted mean of the
      members' means over the same pairs);
    * ``var_parameter_raw`` = Σ w_m (D̄_m - μ)²: how much the effect moves between members;
    * ``var_stochastic`` V_sto = Σ w_m s²_m / Σ w_m over the members with two or more pairs:
      the run-to-run spread of one year's effect at fixed parameters;
    * ``var_parameter`` V_par = max(0, var_parameter_raw - Σ w_m s²_m / n_m): a member's mean
      over n_m replications still carries noise of variance s²_m / n_m, which inflates the raw
      between-member variance; with few replications this Monte Carlo correction matters;
    * ``sd_total`` = √V with V = V_par + V_sto, the law of total variance for the effect one
      realisation (one year in one city) shows: Var(D) = Var_θ E[D|θ] + E_θ Var(D|θ). Without
      the clip at 0 and with equal n_m, V is exactly the weighted variance of all D_mr below;
    * ``share_parameter`` = V_par / V, ``share_stochastic`` = V_sto / V (sum 1; NaN when V is 0
      or no member has two pairs, so chance cannot be told from the parameters);
    * ``effect_q05``, ``effect_q95``: weighted 5% and 95% quantiles of the D̄_m: the effect's
      90% interval under parameter uncertainty (still holding the D̄_m's Monte Carlo noise);
    * ``predictive_q05``, ``predictive_q95``: weighted quantiles of every D_mr, each weighing
      w_m / n_m: the range one realisation could show.

    Only runs with status ``done`` count; a pair with a failed or missing run, or a NaN outcome,
    is left out. ``members`` counts the members with a pair, ``reps`` the most pairs of one
    member, ``pairs`` all pairs.

    Args:
        runs: the batch's runs table (``scenario``, ``point_id``, ``replication``, outcomes).
        weights: member weight by ``point_id`` (a mapping, a Series, or a list in point order).
        baseline: the baseline scenario label (default: the first scenario in ``runs``).
        outcomes: outcome columns (default :data:`sim.outcomes.COMPARE` that are present).

    Returns:
        One row per non-baseline scenario and outcome, columns :data:`COLUMNS`.
    """
    if "status" in runs:
        runs = runs[runs["status"] == "done"]
    scenarios, baseline = scenarios_and_baseline(runs, baseline)
    w = pd.Series(weights, dtype=float)
    reps = sorted(runs["replication"].unique())
    outcomes = [o for o in (outcomes or registry.COMPARE) if o in runs]

    def wide(label: str, o: str) -> np.ndarray:
        sub = runs[runs["scenario"] == label]
        v = pd.to_numeric(sub[o], errors="coerce").astype(float)
        table = pd.Series(v.to_numpy(), index=pd.MultiIndex.from_frame(
            sub[["point_id", "replication"]])).unstack("replication")
        return table.reindex(index=w.index, columns=reps).to_numpy(dtype=float)

    rows = [{"scenario": s, "baseline": baseline, "outcome": o, "label": registry.label(o),
             "unit": registry.unit(o), **_effect(wide(s, o), wide(baseline, o), w.to_numpy())}
            for s in scenarios if s != baseline for o in outcomes]
    return pd.DataFrame(rows, columns=COLUMNS)


def _effect(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """The statistics of :func:`posterior_table` for one scenario and outcome: ``x`` and ``y``
    are (members, replications) values of the scenario and the baseline."""
    d = x - y
    pair = np.isfinite(d)
    n = pair.sum(axis=1)
    ok = (n > 0) & (w > 0)
    nan = float("nan")
    out: dict[str, Any] = dict.fromkeys(COLUMNS[5:-3], nan) | {"members": int(ok.sum()),
                                                             "reps": int(n.max(initial=0)),
                                                             "pairs": int(n[ok].sum())}
    if not ok.any():
        return out
    d, x, y, n, wm = d[ok], x[ok], y[ok], n[ok], w[ok] / w[ok].sum()
    keep = pair[ok]
    dbar = np.nansum(d, axis=1) / n
    mu, v_raw = weighted_mean_var(dbar, wm)
    two = n >= 2
    if two.any():
        dev = np.where(keep, d - dbar[:, None], 0.0)
        s2 = np.sum(dev ** 2, axis=1)[two] / (n[two] - 1)
        v_sto = float(np.sum(wm[two] * s2) / wm[two].sum())
        v_mc = float(np.sum(wm[two] * s2 / n[two]) / wm[two].sum())
        v_par = max(0.0, v_raw - v_mc)
        total = v_par + v_sto
    else:
        v_sto = v_par = total = nan
    share = total > 0  # False for NaN too
    out.update(
        mean_baseline=float(np.sum(wm * np.nansum(np.where(keep, y, np.nan), axis=1) / n)),
        mean_scenario=float(np.sum(wm * np.nansum(np.where(keep, x, np.nan), axis=1) / n)),
        effect=mu, sd_total=float(np.sqrt(total)), var_parameter_raw=v_raw, var_parameter=v_par,
        var_stochastic=v_sto, share_parameter=v_par / total if share else nan,
        share_stochastic=v_sto / total if share else nan)
    out["effect_q05"], out["effect_q95"] = (float(q) for q in
                                            weighted_quantile(dbar, [0.05, 0.95], wm))
    w_pair = np.where(keep, (wm / n)[:, None], 0.0)
    out["predictive_q05"], out["predictive_q95"] = (
        float(q) for q in weighted_quantile(d[keep], [0.05, 0.95], w_pair[keep]))
    return out


# --------------------------------------------------------------------------- printing
def format_table(df: pd.DataFrame, title: str | None = None) -> Table:
    """A rich table of :func:`posterior_table`: each outcome's effect with its 90% interval
    under parameter uncertainty, the 90% range one realisation could show, and the shares of
    the variance from the parameters and from chance (values formatted by
    :mod:`sim.outcomes`: shares as percentages)."""
    from rich.markup import escape
    from rich.table import Table

    fs = registry.fmt_signed
    first = df.iloc[0] if len(df) else {}
    t = Table(title=title or (
        f"Effect against {escape(str(first.get('baseline', '')))} under parameter uncertainty"
        f" ({first.get('members', 0)} posterior members x {first.get('reps', 0)} paired"
        " replications)"), show_header=True, header_style="bold")
    for name, justify in (("Outcome", "left"), ("Scenario", "left"),
                          ("Effect [90% over parameters]", "right"),
                          ("One realisation, 90%", "right"), ("Parameters", "right"),
                          ("Chance", "right")):
        t.add_column(name, justify=justify)

    def pct(v: float) -> str:
        return f"{100 * v:.0f}%" if np.isfinite(v) else "–"

    for _, sub in df.groupby("outcome", sort=False):
        for i, (_, r) in enumerate(sub.iterrows()):
            u = r["unit"]
            shown = registry.unit_text(u) if u not in ("share", "0-1") else ""
            label = (f"{r['label']} ({shown})" if shown else r["label"]) if i == 0 else ""
            t.add_row(escape(label), escape(str(r["scenario"])),
                      f"{fs(r['effect'], u)} [{fs(r['effect_q05'], u)}, {fs(r['effect_q95'], u)}]",
                      f"[{fs(r['predictive_q05'], u)}, {fs(r['predictive_q95'], u)}]",
                      pct(r["share_parameter"]), pct(r["share_stochastic"]))
    t.caption = ("Effect: weighted mean over posterior members of the paired difference to the"
                 " baseline, with the 5-95% range of the members' mean effects. One realisation:"
                 " the 5-95% range of single paired runs. Parameters / chance: shares of that"
                 " run-to-run variance from the calibrated parameters (Monte Carlo corrected) and"
                 " from the model's randomness.")
    return t
