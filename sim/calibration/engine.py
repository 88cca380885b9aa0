"""Running a calibration: screening, history matching in waves, ABC-SMC, and the predictions.

Stages, each a batch of model runs through the experiment runner
(:func:`sim.batch.run_experiment`: a process pool or Dask, resume after a kill), written under
``<out>/stages/<NN-stage>/``. Seeds: the scenarios of one point share their seeds (common
random numbers, so a paired target such as a before/after difference pairs), but every point
has seeds of its own (:func:`_stage`): with one seed for all points the ensemble would condition
on one frozen realisation of the model's noise and come out too narrow, and the emulators could
not estimate the noise.

1. **screening** (Morris elementary effects through :func:`sim.analysis.indices.morris_indices`):
   a parameter whose mean absolute effect over its whole range moves no fit target by more than
   ``threshold`` times that target's error is *inert*: fixed at its nominal value from then on
   and reported as not identifiable.
2. **history matching**, ``waves`` waves: wave 1 is a Latin hypercube over the active
   parameters; after each wave one GP emulator per fit target is fitted on every run so far
   (:mod:`sim.calibration.emulator`), and the next wave's points are spread (maximin) over the
   candidates that every wave's emulators find non-implausible.
3. **ABC-SMC**, adaptive (Del Moral, Doucet & Jasra 2012), ``generations`` batches of
   ``particles`` runs on the prior restricted to the non-implausible space: generation 1 samples
   it; each later one lowers the tolerance to the ``quantile`` of the population's distances
   (RMS over the fit targets of (model - observed) / error), resamples the particles within it
   and moves each by a simulated Metropolis-Hastings step (:func:`_abc`). The last population,
   duplicates merged and weighted by their count, is the ensemble.
4. **predict**: the ensemble's members run the scenarios that only hold-out and check targets
   need (their fit scenarios were run in the last ABC generation with the same seeds, so paired
   targets pair), and the fit table compares every target with the ensemble.

Each stage's design is written to ``stages/<NN-stage>.design.json`` before it runs and read
back on ``--resume``, so a resumed calibration runs exactly the planned points; a stage's runs
resume like any batch. Everything that follows a stage (emulators, tolerances, weights) is
recomputed from the stored runs, deterministically from the root seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sim.calibration.emulator import Emulator, max_implausibility, maximin_subset
from sim.calibration.spec import Calibration, CalibrationError, Target, load_calibration
from sim.calibration.targets import (
    distance,
    ess,
    point_means,
    systematic_resample,
    target_values,
    weighted_mean_var,
    weighted_quantile,
)
from sim.files import atomic_write, atomic_write_json, atomic_write_parquet, read_metadata

#: Candidates kept in ``candidates.parquet`` per wave (for the implausibility plots).
PLOT_CANDIDATES = 2000
#: A target is "within tolerance" when |model mean - observed| <= this many errors.
WITHIN_Z = 2.0
#: Posterior 90% width / prior 90% width (unit scale) above which a parameter is not identified.
NOT_IDENTIFIED_RATIO = 0.75

Note = Callable[[str], None]


@dataclasses.dataclass
class _Ctx:
    cal: Calibration
    path: Path
    run_kwargs: dict[str, Any]
    note: Note
    stages: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.note(f"warning: {text}")

    def rng(self, stage: str) -> np.random.Generator:
        """The generator of a stage's sampling decisions (not of its model runs)."""
        return np.random.default_rng([self.cal.spec.seed, stage_salt("design:" + stage)])


# --------------------------------------------------------------------------- entry point
def run_calibration(spec: str | Path | Calibration, *, out: str | Path | None = None,
                    executor: Any = None, workers: int | None = None, scheduler: str | None = None,
                    resume: bool = False, force: bool = False, progress: bool = False,
                    note: Note | None = None) -> Path:
    """Run (or resume) a calibration and return its results directory.

    Args:
        spec: a calibration file (path or name under ``calibration/``) or a loaded Calibration.
        out: results directory (default ``results/calibrate-<name>``).
        executor, workers, scheduler: where the model runs go (as
            :func:`sim.batch.run_experiment`).
        resume: continue an interrupted calibration in ``out``.
        force: delete an existing ``out`` and start over.
        progress: a progress bar per stage.
        note: receives one line per finished stage (default: nothing).

    Raises:
        CalibrationError: a bad file, or ``out`` exists without ``resume``/``force``, or the file,
            its scenarios or the model changed since the calibration started.
        sim.batch.BatchError: a stage stopped on an unexpected error (resume continues it).
    """
    from sim.batch.results import DEFAULT_RESULTS_DIR, ResultsLockedError, results_lock

    cal = spec if isinstance(spec, Calibration) else load_calibration(spec)
    path = Path(out) if out else DEFAULT_RESULTS_DIR / f"calibrate-{cal.spec.name}"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(results_lock(path))
        except ResultsLockedError as exc:
            raise CalibrationError(str(exc)) from None
        meta = _open(path, cal, resume=resume, force=force)
        ctx = _Ctx(cal, path, {"executor": executor, "workers": workers, "scheduler": scheduler,
                               "progress": progress}, note or (lambda text: None))
        t0 = time.perf_counter()
        try:
            _calibrate(ctx)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                meta = read_metadata(path)
                meta.update(status="stopped" if isinstance(exc, Exception) else "interrupted",
                            error=f"{type(exc).__name__}: {exc}", stages=ctx.stages)
                atomic_write_json(path / "metadata.json", meta)
            raise
        meta = read_metadata(path)
        meta.update(status="complete", finished=_now(), stages=ctx.stages, warnings=ctx.warnings,
                    wall_seconds_last_session=time.perf_counter() - t0,
                    model_runs=sum(s["runs"] for s in ctx.stages))
        meta.pop("error", None)
        atomic_write_json(path / "metadata.json", meta)
    return path


def _now() -> str:
    from sim.batch.results import now_iso

    return now_iso()


def _open(path: Path, cal: Calibration, *, resume: bool, force: bool) -> dict[str, Any]:
    from sim.batch.results import git_commit, package_versions

    if path.exists() and any(p.name != ".govsim.lock" and not p.name.startswith(".")
                             for p in path.iterdir()):
        if force:
            for child in path.iterdir():
                if not child.name.startswith(".govsim"):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif not resume:
            raise CalibrationError(f"results directory {path} already exists; add --resume to"
                                   " continue it or --force to start over")
        else:
            try:
                meta = read_metadata(path)
            except Exception as exc:  # noqa: BLE001  (any unreadable folder: say so)
                raise CalibrationError(f"cannot resume {path}: {exc}") from None
            if meta.get("kind") != "calibration":
                raise CalibrationError(f"cannot resume {path}: it holds a {meta.get('kind')!r}"
                                       " results folder, not a calibration")
            if meta.get("spec_hash") != cal.spec_hash:
                raise CalibrationError(
                    f"the calibration file, its scenarios or the model's code changed since {path}"
                    " was started, so resuming would mix two versions; use --force to start over")
            meta.update(status="running", resumed=[*meta.get("resumed", []), _now()])
            atomic_write_json(path / "metadata.json", meta)
            return meta
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "schema_version": 1, "kind": "calibration", "name": cal.spec.name,
        "spec_file": cal.source, "spec": cal.raw, "spec_hash": cal.spec_hash,
        "seed": cal.spec.seed, "days": cal.spec.days, "warmup_days": cal.spec.warmup_days,
        "replications": cal.spec.replications,
        "scenarios": {lab: str(p) for lab, p in cal.scenario_paths.items()},
        "parameters": [dataclasses.asdict(p) for p in cal.parameters],
        "targets": [t.spec.model_dump() for t in cal.targets],
        "versions": package_versions(), "git": git_commit(), "started": _now(),
        "finished": None, "status": "running",
    }
    atomic_write(path / "calibration.yaml",
                 lambda tmp: tmp.write_text(yaml.safe_dump(cal.raw, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8"))
    atomic_write_json(path / "metadata.json", meta)
    return meta


# --------------------------------------------------------------------------- stages
def stage_salt(name: str) -> int:
    """The first spawn-key entry of a stage's seeds (a stable hash of its name)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def _stage(ctx: _Ctx, name: str, units: np.ndarray, labels: list[str],
           seed_keys: list[tuple[int, int]] | None = None) -> pd.DataFrame:
    """Run the points ``units`` (unit-cube coordinates of every parameter) on the scenarios
    ``labels`` and return their runs table (point_id = row of ``units``).

    Seeds: point ``i``, replication ``r`` runs with ``SeedSequence(seed, spawn_key=(salt, j,
    r))``, ``(salt, j) = seed_keys[i]`` (default: this stage's salt and ``i``). Every point has
    its own noise, shared by its scenarios (paired targets pair); the predict stage reuses the
    keys of the ABC runs it extends, so its runs pair with theirs."""
    from sim.batch import build_experiment, run_experiment
    from sim.batch.spec import Factor

    cal = ctx.cal
    number = len(ctx.stages) + 1
    stage_dir = ctx.path / "stages" / f"{number:02d}-{name}"
    design_file = stage_dir.with_name(stage_dir.name + ".design.json")
    if design_file.is_file():  # planned before an interruption: run exactly those points
        units = np.array(json.loads(design_file.read_text(encoding="utf-8"))["units"], dtype=float)
    else:
        design_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(design_file, {"stage": name, "labels": labels, "units": units.tolist()})
    thetas = [{p.name: float(p.from_unit(u)) for p, u in zip(cal.parameters, row, strict=True)}
              for row in units]
    raw = {"name": f"{cal.spec.name}-{name}", "description": f"calibration {cal.spec.name}, stage {name}",
           "scenarios": [{"label": lab, "scenario": str(cal.scenario_paths[lab]),
                          "set": dict(cal.spec.scenarios[lab].set)} for lab in labels],
           "replications": cal.spec.replications, "seed": cal.spec.seed, "days": cal.spec.days,
           "warmup_days": cal.spec.warmup_days,
           "outputs": {"timeseries": False, "incidents": False}}
    exp = build_experiment(raw, f"{cal.source} (stage {name})", base_dir=cal.base_dir)
    keys = seed_keys or [(stage_salt(name), i) for i in range(len(thetas))]
    digest = hashlib.sha256((exp.spec_hash + cal.spec_hash + json.dumps(thetas)
                             + json.dumps(keys)).encode()).hexdigest()
    base = exp.base
    exp = dataclasses.replace(
        exp, factors=[Factor(p.name, low=p.low, high=p.high) for p in cal.parameters],
        points=thetas, spec_hash=digest,
        design_meta={"kind": "calibration_stage", "stage": name, "points": len(thetas),
                     "seeds": "SeedSequence(seed, spawn_key=(salt, point, replication))",
                     "seed_keys": [list(k) for k in keys]},
        overrides=lambda label, theta: cal.apply(base[label], theta),
        seeds=lambda pid, r: np.random.SeedSequence(cal.spec.seed,
                                                    spawn_key=(*keys[pid], r)))
    status = None
    with contextlib.suppress(Exception):
        status = read_metadata(stage_dir).get("status")
    if status != "complete":
        run_experiment(exp, out=stage_dir, resume=stage_dir.exists(), **ctx.run_kwargs)
    runs = pd.read_parquet(stage_dir / "runs.parquet")
    failed = int((runs["status"] != "done").sum())
    ctx.stages.append({"stage": name, "dir": str(stage_dir.relative_to(ctx.path)),
                       "points": len(units), "runs": len(runs), "failed": failed,
                       "scenarios": labels})
    if failed:
        ctx.warn(f"stage {name}: {failed} of {len(runs)} runs failed (their points are left out;"
                 f" see {stage_dir / 'runs.parquet'})")
    return runs


def _means(ctx: _Ctx, runs: pd.DataFrame, targets: list[Target], n: int) -> np.ndarray:
    """Point means of the targets, shape (n points, targets)."""
    vals = target_values(runs, targets, days=ctx.cal.spec.days, warmup_days=ctx.cal.spec.warmup_days)
    means = point_means(vals).reindex(range(n))
    return means[[t.name for t in targets]].to_numpy(dtype=float)


def _calibrate(ctx: _Ctx) -> None:
    cal = ctx.cal
    fit = cal.fit_targets()
    fit_labels = cal.labels_for(fit)
    k = len(cal.parameters)
    nominal_u = np.array([float(p.to_unit(p.nominal)) for p in cal.parameters])
    X_all = np.empty((0, k))
    Y_all = np.empty((0, len(fit)))

    # 1. screening
    active = np.ones(k, dtype=bool)
    scr = cal.spec.method.screening
    screening = pd.DataFrame()
    if scr.enabled and k > 1:
        active, screening, X, Y = _screen(ctx, fit, fit_labels)
        X_all, Y_all = np.vstack([X_all, X]), np.vstack([Y_all, Y])
    atomic_write_parquet(ctx.path / "screening.parquet", screening)
    A = np.flatnonzero(active)

    # 2. history matching
    hm = cal.spec.method.history_matching
    obs = np.array([t.spec.value for t in fit])
    err = np.array([t.error_sd for t in fit])
    emulators: list[Emulator] = []
    wave_rows, diag_rows, cand_frames = [], [], []
    nroy = np.empty((0, len(A)))
    cutoff = hm.cutoff
    for w in range(1, hm.waves + 1):
        rng = ctx.rng(f"wave{w}")
        if w == 1:
            from scipy.stats import qmc

            design = qmc.LatinHypercube(d=len(A), seed=rng).random(hm.points)
        else:
            design = nroy[maximin_subset(nroy, hm.points, rng)]
        units = np.tile(nominal_u, (len(design), 1))
        units[:, A] = design
        runs = _stage(ctx, f"wave{w}", units, fit_labels)
        X_all = np.vstack([X_all, units])
        Y_all = np.vstack([Y_all, _means(ctx, runs, fit, len(units))])
        em = Emulator([t.name for t in fit], seed=cal.spec.seed + w).fit(X_all[:, A], Y_all)
        emulators.append(em)
        diag_rows += [{"wave": w, **row} for row in em.diagnostics()]
        cand, uniform_n = _candidates(rng, hm.candidates, len(A), nroy)
        imp = max_implausibility(emulators, cand, obs, err)
        passed = imp <= cutoff
        share = float(passed[:uniform_n].mean())
        if passed.sum() < 2:
            relaxed = float(np.quantile(imp, 0.01))
            ctx.warn(f"wave {w}: no point of the prior passed the implausibility cut {cutoff:g}"
                     f" (smallest {imp.min():.3g}): the model cannot reach every fit target within"
                     f" its stated error; the cut is relaxed to {relaxed:.3g} (the best 1%)")
            cutoff = relaxed
            passed = imp <= cutoff
        nroy = cand[passed]
        wave_rows.append({"wave": w, "points": len(design), "runs_so_far": len(X_all),
                          "cutoff": cutoff, "nroy_share": share,
                          "nroy_candidates": int(passed.sum()),
                          "min_implausibility": float(imp.min()),
                          "median_implausibility": float(np.median(imp[:uniform_n]))})
        pick = rng.choice(uniform_n, size=min(PLOT_CANDIDATES, uniform_n), replace=False)
        frame = pd.DataFrame(cand[pick], columns=[cal.parameters[i].name for i in A])
        frame.insert(0, "wave", w)
        frame["implausibility"] = imp[pick]
        cand_frames.append(frame)
        ctx.note(f"wave {w}: {len(design)} points; {share:.1%} of the prior is non-implausible"
                 f" (cut {cutoff:.3g}, smallest implausibility {imp.min():.3g})")
    atomic_write_parquet(ctx.path / "waves.parquet", pd.DataFrame(wave_rows))
    atomic_write_parquet(ctx.path / "emulators.parquet", pd.DataFrame(diag_rows))
    atomic_write_parquet(ctx.path / "candidates.parquet", pd.concat(cand_frames, ignore_index=True))

    def in_space(x: np.ndarray) -> np.ndarray:
        inside = np.all((x >= 0) & (x <= 1), axis=1)
        ok = inside.copy()
        if inside.any():
            ok[inside] = max_implausibility(emulators, x[inside], obs, err) <= cutoff
        return ok

    # 3. ABC-SMC
    population = _abc(ctx, fit, fit_labels, nominal_u, A, nroy, in_space)

    # 4. predictions and the fit table
    _predict(ctx, population, nominal_u, A)


def _candidates(rng: np.random.Generator, n: int, d: int, nroy: np.ndarray) -> tuple[np.ndarray, int]:
    """Uniform candidates on the unit cube, then (after wave 1) as many again jittered around
    the previous non-implausible points, which keeps later waves from running out of points in
    a small space. Returns the candidates and how many of them (first) are uniform."""
    uniform = rng.random((n, d))
    if not len(nroy):
        return uniform, n
    spread = np.maximum(nroy.std(axis=0), 0.01) * 0.5
    jit = nroy[rng.integers(len(nroy), size=n)] + rng.normal(0.0, spread, (n, d))
    jit = jit[np.all((jit >= 0) & (jit <= 1), axis=1)]
    return np.vstack([uniform, jit]), n


def _screen(ctx: _Ctx, fit: list[Target], labels: list[str]):
    from sim.analysis.indices import morris_indices, morris_sample

    cal = ctx.cal
    scr = cal.spec.method.screening
    names = cal.names
    design = {"kind": "morris", "problem": {"num_vars": len(names), "names": names,
                                            "bounds": [[0.0, 1.0]] * len(names)},
              "trajectories": scr.trajectories, "levels": scr.levels,
              "sampler_seed": int(ctx.rng("screening").integers(2**31))}
    X = morris_sample(design)
    # one seed for every point: an elementary effect is the difference between two neighbouring
    # points, and common random numbers keep the model's noise out of it
    runs = _stage(ctx, "screening", X, labels, [(stage_salt("screening"), 0)] * len(X))
    vals = target_values(runs, fit, days=cal.spec.days, warmup_days=cal.spec.warmup_days)
    derived = vals.reset_index()
    derived["scenario"] = "calibration"
    derived["status"] = "done"
    for j, name in enumerate(names):
        derived[name] = X[derived["point_id"].to_numpy(), j]
    idx = morris_indices(derived, design, [t.name for t in fit])
    err = {t.name: t.error_sd for t in fit}
    idx["mu_star_per_error"] = idx["mu_star"] / idx["outcome"].map(err)
    per_param = idx.groupby("factor")["mu_star_per_error"].max().reindex(names).fillna(0.0)
    active = (per_param >= scr.threshold).to_numpy()
    if not active.any():
        best = int(np.argmax(per_param.to_numpy()))
        active[best] = True
        ctx.warn(f"screening: no parameter moves a fit target by {scr.threshold} errors over its"
                 f" range; only the most influential ({names[best]}) is calibrated")
    inert = [n for n, a in zip(names, active, strict=True) if not a]
    ctx.note(f"screening: {int(active.sum())} of {len(names)} parameters active"
             + (f"; inert (fixed at nominal): {', '.join(inert)}" if inert else ""))
    idx["active"] = idx["factor"].map(dict(zip(names, active, strict=True)))
    return active, idx.rename(columns={"outcome": "target", "factor": "parameter"}), X, \
        _means(ctx, runs, fit, len(X))


def _abc(ctx: _Ctx, fit: list[Target], labels: list[str], nominal_u: np.ndarray, A: np.ndarray,
         nroy: np.ndarray, in_space: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """Adaptive ABC-SMC (Del Moral, Doucet & Jasra 2012) over batches of model runs.

    Generation 1 simulates ``particles`` draws of the prior restricted to the non-implausible
    space. Each later generation (one batch of ``particles`` runs):

    1. lowers the tolerance to the ``quantile`` of the population's distances (never raises it);
    2. keeps the particles within it and resamples them back to ``particles`` (equal weights);
    3. moves every particle by a Metropolis-Hastings step whose proposal is a Gaussian of twice
       the population's covariance: the move is simulated, and accepted when it lies in the
       prior's support and its distance is within the tolerance (the prior is uniform there and
       the proposal symmetric, so that is the whole acceptance ratio).

    The population keeps its size and equal weights (an importance-weighted population of a few
    dozen particles in several dimensions degenerates to a handful of effective members); the
    ensemble is the last population, duplicates merged and weighted by their count. Each particle
    remembers the stage and point of the runs that gave its distance, so the predictions reuse
    them.
    """
    cal = ctx.cal
    abc = cal.spec.method.abc
    n = abc.particles
    rows = []
    rng = ctx.rng("abc1")
    take = rng.choice(len(nroy), size=n, replace=len(nroy) < n)
    x = nroy[take]
    units = np.tile(nominal_u, (n, 1))
    units[:, A] = x
    runs = _stage(ctx, "abc1", units, labels)
    d = distance(_means(ctx, runs, fit, n), fit)
    src = [(ctx.stages[-1]["dir"], i) for i in range(n)]
    eps = np.inf
    rows.append({"generation": 1, "proposed": n, "accepted": n, "epsilon": np.inf,
                 "ess": float(n), "median_distance": float(np.median(d)), "move_acceptance": np.nan,
                 "unique_particles": n})
    ctx.note(f"ABC generation 1: {n} draws of the non-implausible space, median distance"
             f" {np.median(d):.3g}")
    for g in range(2, abc.generations + 1):
        rng = ctx.rng(f"abc{g}")
        finite = d[np.isfinite(d)]
        if not len(finite):
            raise CalibrationError("every ABC particle failed to give the targets (see the stages'"
                                   " runs.parquet for the errors)")
        eps = min(eps, float(np.quantile(finite, abc.quantile)))
        alive = d <= eps
        pick = np.flatnonzero(alive)[systematic_resample(np.full(int(alive.sum()), 1 / alive.sum()), n, rng)]
        x, d, src = x[pick], d[pick], [src[i] for i in pick]
        cov = 2.0 * np.atleast_2d(np.cov(x.T)) + np.eye(len(A)) * 1e-6
        prop = x + rng.multivariate_normal(np.zeros(len(A)), cov, size=n)
        support = in_space(prop)
        prop = np.where(support[:, None], prop, x)  # outside the support: rejected, not simulated
        units = np.tile(nominal_u, (n, 1))
        units[:, A] = prop
        runs = _stage(ctx, f"abc{g}", units, labels)
        pd_ = distance(_means(ctx, runs, fit, n), fit)
        accept = support & (pd_ <= eps)
        stage = ctx.stages[-1]["dir"]
        x = np.where(accept[:, None], prop, x)
        d = np.where(accept, pd_, d)
        src = [(stage, i) if a else s for i, (a, s) in enumerate(zip(accept, src, strict=True))]
        copies = np.unique(np.round(x, 12), axis=0, return_counts=True)[1]
        unique = len(copies)
        rows.append({"generation": g, "proposed": n, "accepted": int(accept.sum()), "epsilon": eps,
                     "ess": ess(copies.astype(float)), "median_distance": float(np.median(d)),
                     "move_acceptance": float(accept.mean()), "unique_particles": unique})
        ctx.note(f"ABC generation {g}: tolerance {eps:.3g}, {int(accept.sum())} of {n} moves"
                 f" accepted, {unique} distinct particles")
    atomic_write_parquet(ctx.path / "abc.parquet", pd.DataFrame(rows))
    # the ensemble: distinct particles, weighted by how many copies the population holds
    keys = [tuple(v) for v in np.round(x, 12)]
    first: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
        counts[k] = counts.get(k, 0) + 1
    idx = np.array(list(first.values()))
    w = np.array([counts[keys[i]] for i in idx], dtype=float)
    units = np.tile(nominal_u, (len(idx), 1))
    units[:, A] = x[idx]
    return {"w": w / w.sum(), "d": d[idx], "units": units, "source": [src[i] for i in idx]}


def _predict(ctx: _Ctx, pop: dict[str, Any], nominal_u: np.ndarray, A: np.ndarray) -> None:
    cal = ctx.cal
    m_max = cal.spec.method.predict.max_members
    idx = np.arange(len(pop["w"]))
    weights = pop["w"]
    if len(idx) > m_max:  # keep the runs few: resample, and weigh by how often each is drawn
        picks = systematic_resample(pop["w"], m_max, ctx.rng("predict"))
        idx, counts = np.unique(picks, return_counts=True)
        weights = counts / counts.sum()
    units = pop["units"][idx]
    fit_labels = set(cal.labels_for(cal.fit_targets()))
    extra = [lab for lab in cal.labels_for(cal.targets) if lab not in fit_labels]
    # each member's fit-scenario runs are those that gave its distance (any ABC stage)
    sources = [pop["source"][i] for i in idx]
    parts = []
    for stage in dict.fromkeys(s for s, _ in sources):
        stage_runs = pd.read_parquet(ctx.path / stage / "runs.parquet")
        for member, (s_, pid) in enumerate(sources):
            if s_ == stage:
                part = stage_runs[stage_runs["point_id"] == pid].copy()
                part["point_id"] = member
                parts.append(part)
    runs = pd.concat(parts, ignore_index=True)
    if extra:  # the same seeds as those runs, so paired targets pair
        keys = [(stage_salt(Path(s_).name.split("-", 1)[1]), int(pid)) for s_, pid in sources]
        runs = pd.concat([runs, _stage(ctx, "predict", units, extra, keys)], ignore_index=True)
    vals = target_values(runs, cal.targets, days=cal.spec.days, warmup_days=cal.spec.warmup_days)
    long = vals.reset_index().melt(id_vars=["point_id", "replication"], var_name="target")
    long = long.rename(columns={"point_id": "member"})
    atomic_write_parquet(ctx.path / "predictions.parquet", long)

    ens = pd.DataFrame({"member": np.arange(len(idx)), "weight": weights,
                        "distance": pop["d"][idx], "stage": [s_ for s_, _ in sources],
                        "point_id": [int(p_) for _, p_ in sources]})
    for j, p in enumerate(cal.parameters):
        ens[p.name] = p.from_unit(units[:, j])
    atomic_write_parquet(ctx.path / "ensemble.parquet", ens)
    fit_table = _fit_table(cal, long, weights)
    atomic_write_parquet(ctx.path / "fit.parquet", fit_table)
    atomic_write(ctx.path / "fit.csv", lambda tmp: fit_table.to_csv(tmp, index=False))
    ident = _identifiability(cal, pop, A)
    atomic_write_parquet(ctx.path / "identifiability.parquet", ident)
    best = int(np.argmin(ens["distance"].to_numpy()))
    _write_calibrated(ctx, {p.name: float(ens.loc[best, p.name]) for p in cal.parameters}, best)
    ctx.note(f"ensemble: {len(ens)} members; fit table in {ctx.path / 'fit.csv'}")


def _fit_table(cal: Calibration, long: pd.DataFrame, weights: np.ndarray) -> pd.DataFrame:
    rows = []
    for t in cal.targets:
        sub = long[long["target"] == t.name]
        w = np.asarray(weights)[sub["member"].to_numpy()]
        x = sub["value"].to_numpy(dtype=float)
        mean, var = weighted_mean_var(x, w)
        q05, q95 = weighted_quantile(x, [0.05, 0.95], w)
        z = (mean - t.spec.value) / t.error_sd
        rows.append({"target": t.name, "role": t.spec.role, "kind": t.spec.kind,
                     "scenarios": " -> ".join(t.labels), "outcome": t.spec.outcome,
                     "per": t.spec.per,
                     "observed": t.spec.value, "sd": t.spec.sd, "discrepancy": t.spec.discrepancy,
                     "model_mean": mean, "model_q05": q05, "model_q95": q95, "model_sd": np.sqrt(var),
                     "z": z, "within": bool(np.isfinite(z) and abs(z) <= WITHIN_Z),
                     "source": t.spec.source})
    return pd.DataFrame(rows)


def _identifiability(cal: Calibration, pop: dict[str, Any], A: np.ndarray) -> pd.DataFrame:
    rows = []
    for j, p in enumerate(cal.parameters):
        row: dict[str, Any] = {"parameter": p.name, "low": p.low, "high": p.high, "scale": p.scale,
                               "active": bool(j in set(A.tolist()))}
        if row["active"]:
            u = pop["units"][:, j]
            q05, q50, q95 = weighted_quantile(u, [0.05, 0.5, 0.95], pop["w"])
            ratio = (q95 - q05) / 0.9
            row.update(posterior_q05=float(p.from_unit(q05)), posterior_median=float(p.from_unit(q50)),
                       posterior_q95=float(p.from_unit(q95)), width_ratio=float(ratio),
                       identified=bool(ratio <= NOT_IDENTIFIED_RATIO),
                       note="" if ratio <= NOT_IDENTIFIED_RATIO else
                       "the targets barely narrow its prior: not identifiable from them")
        else:
            row.update(posterior_q05=float(p.from_unit(0.05)), posterior_median=float(p.nominal),
                       posterior_q95=float(p.from_unit(0.95)), width_ratio=1.0, identified=False,
                       note="inert in screening: fixed at its nominal value; not identifiable")
        rows.append(row)
    return pd.DataFrame(rows)


def _write_calibrated(ctx: _Ctx, theta: dict[str, float], member: int) -> None:
    """``scenarios/calibrated/<label>.yaml``: each scenario at the best-fitting member, complete
    (it needs no other file)."""
    cal = ctx.cal
    folder = ctx.path / "scenarios" / "calibrated"
    folder.mkdir(parents=True, exist_ok=True)
    for label, sc in cal.base.items():
        calibrated = sc.with_overrides(cal.apply(sc, theta))
        data = calibrated.to_dict()
        data["name"] = f"{sc.name}_calibrated"
        head = (f"# {sc.name} at the best-fitting member ({member}) of calibration"
                f" '{cal.spec.name}' ({ctx.path.name}).\n# Parameters: "
                + ", ".join(f"{k}={v:.6g}" for k, v in theta.items()) + "\n")
        text = head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        atomic_write(folder / f"{label}.yaml", lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
