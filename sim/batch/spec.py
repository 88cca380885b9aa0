"""Experiment files: the spec, its factors and design points, and the plan of runs.

An experiment file (``experiments/*.yaml``) names what differs (base scenarios and factors),
how to sample it (a design) and how to run it (replications, root seed, days, outputs)::

    name: grid_count_sweep
    scenarios:
      - {label: default, scenario: default.yaml, set: {}}
    factors:
      grids.count: [120, 176, 240]          # values (full factorial) ...
      police.officers: {low: 50, high: 200} # ... or ranges (sampled designs)
    design: {kind: full_factorial}         # latin_hypercube (samples), sobol (base_samples,
                                           # second_order), morris (trajectories, levels)
    replications: 10
    seed: 20240101
    days: 365
    warmup_days: 30
    outputs: {timeseries: true, timeseries_every: 7, incidents: false}

A factor may also be a named *lever* whose levels each set several keys at once::

    factors:
      paperwork:
        - {paperwork.forms: 118, paperwork.inspection_items: 100}
        - {paperwork.forms: 49, paperwork.inspection_items: 26}

Seeds: one root seed; replication ``r`` runs with ``SeedSequence(seed).spawn(R)[r]`` in every
scenario and design point, so comparisons are paired (common random numbers). Each row
records the root seed and its spawn key.

:func:`load_experiment` validates everything (the spec, every base scenario, every design
point of every base scenario) before anything runs; :func:`plan_runs` lists the runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

import sim.outcomes as outcomes_registry
from sim import schema
from sim.files import InputError, short, short_text
from sim.paths import EXPERIMENT_DIR, PACKAGE_DIR, model_source_files
from sim.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    read_input_yaml,
    resolve_scenario_path,
)

DEFAULT_OUTCOMES = outcomes_registry.EXPERIMENT
#: Most design points of one experiment (each is validated against every base scenario
#: before anything runs, at about 3 ms each: the limit takes a few minutes).
MAX_DESIGN_POINTS = 50_000
#: Most runs of one experiment (base scenarios x design points x replications).
MAX_RUNS = 1_000_000
#: What a batch's ``metadata.json`` may record as its ``"kind"`` (see :func:`sim.files.results_kind`).
BATCH_KINDS = ("experiment", "comparison")


class ExperimentError(InputError):
    """An experiment file or results folder is invalid; ``str()`` names the file, key, value
    and what is allowed."""


# --------------------------------------------------------------------------- the spec
_Spec = schema.StrictSpec


class ScenarioRef(_Spec):
    label: str = Field(description="Name of this base scenario in the results.")
    scenario: str = Field(description="A file under scenarios/ or a path (relative to the experiment file).")
    set: dict[str, Any] = Field(default_factory=dict, description="Dotted-key overrides.")


class Design(_Spec):
    kind: Literal["full_factorial", "latin_hypercube", "sobol", "morris"] = "full_factorial"
    samples: int | None = Field(None, ge=2, description="latin_hypercube: number of samples.")
    base_samples: int | None = Field(None, ge=2, description="sobol: N, a power of 2.")
    second_order: bool = Field(False, description="sobol: also estimate second-order indices.")
    trajectories: int | None = Field(None, ge=2, description="morris: number of trajectories.")
    levels: int = Field(4, ge=2, description="morris: grid levels.")

    @field_validator("base_samples")
    @classmethod
    def _pow2(cls, v: int | None) -> int | None:
        if v is not None and v & (v - 1):
            raise ValueError(f"must be a power of 2 (Sobol' sequences), e.g. {1 << (v.bit_length() - 1)}"
                             f" or {1 << v.bit_length()}")
        return v


class Outputs(_Spec):
    timeseries: bool = True
    timeseries_every: int = Field(1, ge=1, description="Keep every k-th day (and the last).")
    incidents: bool = False


class ExperimentSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=100,
                      description="Used as the results folder name.")
    description: str = ""
    scenarios: list[ScenarioRef] = Field(min_length=1)
    factors: dict[str, Any] = Field(default_factory=dict)
    design: Design = Field(default_factory=Design)
    replications: int = Field(1, ge=1, le=100_000)
    seed: int = Field(ge=0)
    days: int = Field(365, ge=1, le=36_500)
    warmup_days: int = Field(0, ge=0)
    outputs: Outputs = Field(default_factory=Outputs)
    outcomes: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTCOMES))


@dataclass(frozen=True)
class Factor:
    """One factor: a dotted key with values or a range, or a named lever with levels."""

    name: str
    values: list[Any] | None = None          # full factorial levels (scalars or dicts for levers)
    low: float | None = None                 # sampled designs
    high: float | None = None
    integer: bool = False

    @property
    def is_lever(self) -> bool:
        return bool(self.values) and isinstance(self.values[0], dict)


@dataclass
class Experiment:
    """A validated experiment: the spec, its resolved base scenarios and its design points.

    ``kind`` is what the results folder's ``metadata.json`` records: ``"experiment"``, or
    ``"comparison"`` for the paired batch of ``govsim compare``.
    """

    spec: ExperimentSpec
    source: str
    raw: dict[str, Any]
    base: dict[str, Scenario]
    factors: list[Factor]
    points: list[dict[str, Any]]             # point_id -> {factor name: value}
    design_meta: dict[str, Any]
    spec_hash: str
    kind: str = "experiment"
    #: How a design point becomes one base scenario's overrides; None: the factors' keys
    #: (:func:`point_overrides`). Calibration stages (:mod:`sim.calibration`) set it, because a
    #: calibration parameter may set several keys or multiply each base scenario's own value.
    overrides: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    #: The seed of (design point, replication); None: the r-th child of the root seed for every
    #: point (common random numbers across points too). Calibration stages give each point its
    #: own seeds (still shared by the scenarios of one point, so paired targets pair): their
    #: ensemble must see the model's run-to-run noise, not one frozen realisation of it.
    seeds: Callable[[int, int], np.random.SeedSequence] | None = None

    @property
    def n_runs(self) -> int:
        return len(self.base) * len(self.points) * self.spec.replications

    def overrides_for(self, label: str, point: dict[str, Any]) -> dict[str, Any]:
        """The dotted-key overrides that design point ``point`` makes in base scenario ``label``."""
        if self.overrides is not None:
            return self.overrides(label, point)
        return point_overrides(point, self.factors)


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to perform one run (picklable)."""

    run_id: str
    label: str
    scenario: Scenario
    point_id: int
    replication: int
    factor_values: dict[str, Any]
    entropy: int
    spawn_key: tuple[int, ...]
    days: int
    warmup_days: int
    timeseries_every: int | None
    incidents: bool


# --------------------------------------------------------------------------- loading
def find_experiment(ref: str | Path) -> Path:
    """An experiment file: a path, or a name under ``experiments/`` with or without ``.yaml``."""
    p = Path(ref)
    for c in (p, EXPERIMENT_DIR / p, (EXPERIMENT_DIR / p).with_suffix(".yaml")):
        if c.is_file():
            return c.resolve()
    have = ", ".join(sorted(x.stem for x in EXPERIMENT_DIR.glob("*.yaml")))
    raise ExperimentError(f"no experiment file '{ref}' (shipped experiments: {have})")


def load_experiment(ref: str | Path) -> Experiment:
    """Read and validate an experiment file completely: every design point of every base
    scenario is validated as a scenario before anything runs.

    Raises:
        ExperimentError: naming the file, the key path, the value and what is allowed.
    """
    path = find_experiment(ref)
    raw = read_input_yaml(path, ExperimentError, what="experiment file")
    return build_experiment(raw, str(path), base_dir=path.parent)


def build_experiment(raw: dict[str, Any], src: str = "experiment", base_dir: Path | None = None,
                     *, kind: str = "experiment") -> Experiment:
    """Validate an experiment given as a dict (the same keys as a file).

    Args:
        raw: the keys of an experiment file.
        src: what to call it in error messages and ``metadata.json`` (``spec_file``).
        base_dir: scenario files are looked up relative to it, then under ``scenarios/``.
        kind: ``"experiment"``, or ``"comparison"`` for ``govsim compare``: what the results
            folder's ``metadata.json`` records as its kind.

    Raises:
        ExperimentError: naming the source, the key path, the value and what is allowed.
    """
    if kind not in BATCH_KINDS:
        raise ValueError(f"kind must be one of {BATCH_KINDS}, not {kind!r}")
    spec = schema.validate(ExperimentSpec, raw, ExperimentError, src)
    if spec.warmup_days >= spec.days:
        raise ExperimentError(f"key 'warmup_days': value {spec.warmup_days} must be less than days"
                              f" ({spec.days})", file=src)
    labels = [s.label for s in spec.scenarios]
    if len(set(labels)) != len(labels):
        raise ExperimentError(f"key 'scenarios': labels must be unique, got {short(labels)}",
                              file=src)
    known = set(outcomes_registry.run_outcomes())
    unknown = [o for o in spec.outcomes if o not in known]
    if unknown:
        raise ExperimentError(
            f"key 'outcomes': unknown outcome(s) {short(unknown)}; valid: {', '.join(sorted(known))}",
            file=src)

    base: dict[str, Scenario] = {}
    for i, ref_ in enumerate(spec.scenarios):
        try:
            spath = resolve_scenario_path(ref_.scenario, relative_to=base_dir)
        except FileNotFoundError as exc:
            raise ExperimentError(f"key 'scenarios.{i}.scenario': value {short(ref_.scenario)}: {exc}",
                                  file=src) from None
        try:
            base[ref_.label] = load_scenario(spath, ref_.set or None)
        except ScenarioError as exc:
            raise ExperimentError(f"key 'scenarios.{i}' ({short_text(ref_.label, 40)}): {exc}",
                                  file=src) from None

    factors = _parse_factors(spec, src)
    _check_size(spec, factors, len(base), src)
    points, design_meta = _design_points(spec, factors, src)
    # validate every design point against every base scenario before any run
    for label, sc in base.items():
        for pid, point in enumerate(points):
            try:
                sc.with_overrides(point_overrides(point, factors))
            except ScenarioError as exc:
                raise ExperimentError(
                    f"key 'factors': design point {pid} {short(point, 120)} is invalid for scenario"
                    f" '{short_text(label, 40)}': {exc}",
                    file=src,
                ) from None
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    # the model's code is part of what a run depends on: resuming across a code change would
    # mix results of two models in one table
    canonical += code_digest()
    scen_digest = json.dumps({k: v.digest() for k, v in base.items()}, sort_keys=True)
    spec_hash = hashlib.sha256((canonical + scen_digest).encode()).hexdigest()
    return Experiment(spec, src, raw, base, factors, points, design_meta, spec_hash, kind)


def code_digest() -> str:
    """SHA-256 of the model's source files (:func:`sim.paths.model_source_files`): the code
    that computes the numbers."""
    h = hashlib.sha256()
    for f in model_source_files():
        h.update(f.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- factors
def _parse_factors(spec: ExperimentSpec, src: str) -> list[Factor]:
    out = []
    sampled = spec.design.kind != "full_factorial"
    for name, val in spec.factors.items():
        key = f"factors.{short_text(name, 80)}"
        if isinstance(val, list):
            out.append(_parse_levels(name, val, key, spec.design.kind if sampled else None, src))
        elif isinstance(val, dict):
            out.append(_parse_range(name, val, key, sampled, src))
        else:
            raise ExperimentError(f"key '{key}': value {short(val)} is not allowed; give a list of"
                                  " values or {low: .., high: ..}", file=src)
    if sampled and not out:
        raise ExperimentError(f"key 'factors': a {spec.design.kind} design needs at least one factor",
                              file=src)
    return out


def _parse_levels(name: str, val: list, key: str, sampled_kind: str | None, src: str) -> Factor:
    """A factor given as a list: values of one scenario key, or levels of a named lever."""
    if not val:
        raise ExperimentError(f"key '{key}': give at least one value", file=src)
    if sampled_kind:
        raise ExperimentError(f"key '{key}': a {sampled_kind} design samples ranges; give"
                              " {low: .., high: ..} not a list", file=src)
    if isinstance(val[0], dict):
        for lv in val:
            if not isinstance(lv, dict):
                raise ExperimentError(f"key '{key}': every level of a lever must be a mapping of keys",
                                      file=src)
            for k in lv:
                if not isinstance(k, str) or schema.field_at(Scenario, k) is None:
                    raise ExperimentError(f"key '{key}': unknown scenario key {short(k)}", file=src)
    elif schema.field_at(Scenario, name) is None:
        raise ExperimentError(
            f"key '{key}': unknown scenario key '{name}' (a factor is a dotted scenario key such as"
            f" grids.count, or a named lever whose levels are mappings of keys)", file=src)
    return Factor(name, values=list(val))


def _parse_range(name: str, val: dict, key: str, sampled: bool, src: str) -> Factor:
    """A factor given as ``{low, high}``: a numeric scenario key sampled by the design."""
    if set(val) != {"low", "high"}:
        raise ExperimentError(f"key '{key}': a range needs exactly 'low' and 'high' (got"
                              f" {short(sorted(map(str, val)))})", file=src)
    if not sampled:
        raise ExperimentError(f"key '{key}': full_factorial needs a list of values, not a range", file=src)
    info = schema.field_at(Scenario, name)
    if info is None:
        raise ExperimentError(f"key '{key}': unknown scenario key '{name}'", file=src)
    if info.annotation not in (int, float):
        raise ExperimentError(f"key '{key}': only numeric keys can be sampled from a range", file=src)
    lo, hi = val["low"], val["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi:
        raise ExperimentError(f"key '{key}': need numbers with low < high, got low={short(lo)},"
                              f" high={short(hi)}", file=src)
    for bound, v in (("low", lo), ("high", hi)):
        try:
            schema.strict_scalar(info.annotation, v)
        except ValueError as exc:
            raise ExperimentError(f"key '{key}.{bound}': value {short(v)} is not allowed: {exc}",
                                  file=src) from None
    return Factor(name, low=float(lo), high=float(hi), integer=info.annotation is int)


def _n_points(spec: ExperimentSpec, factors: list[Factor]) -> int:
    """How many design points the design will have (computed, not sampled)."""
    d, k = spec.design, len(factors)
    if d.kind == "full_factorial":
        return math.prod(len(f.values) for f in factors) if factors else 1
    if d.kind == "latin_hypercube":
        return d.samples or 0
    if d.kind == "sobol":
        return (d.base_samples or 0) * (2 * k + 2 if d.second_order else k + 2)
    return (d.trajectories or 0) * (k + 1)


def _check_size(spec: ExperimentSpec, factors: list[Factor], n_base: int, src: str) -> None:
    """Refuse a design too large to plan before any point is drawn (a factorial of many
    factors or a huge sample count would otherwise exhaust memory while sampling)."""
    n = _n_points(spec, factors)
    key = "factors" if spec.design.kind == "full_factorial" else "design"
    if n > MAX_DESIGN_POINTS:
        raise ExperimentError(f"key '{key}': the {spec.design.kind} design has {n:,.4g} points, more"
                              f" than the limit of {MAX_DESIGN_POINTS:,}", file=src, key=key)
    runs = n * n_base * spec.replications
    if runs > MAX_RUNS:
        raise ExperimentError(f"key 'replications': {n_base} scenario(s) x {n:,} design point(s) x"
                              f" {spec.replications:,} replication(s) = {runs:,} runs, more than the"
                              f" limit of {MAX_RUNS:,}", file=src, key="replications")


# --------------------------------------------------------------------------- designs
def _design_points(spec: ExperimentSpec, factors: list[Factor], src: str) -> tuple[list[dict], dict]:
    """The design points ({factor name: value}) and the design's metadata. Sampled designs
    use SALib with a sampler seed derived from the root seed, so they are reproducible."""
    d = spec.design
    if d.kind == "full_factorial":
        if not factors:
            return [{}], {"kind": "full_factorial", "factors": {}}
        combos = itertools.product(*[range(len(f.values)) for f in factors])
        points = [{f.name: f.values[i] for f, i in zip(factors, combo, strict=True)} for combo in combos]
        return points, {"kind": "full_factorial", "factors": {f.name: f.values for f in factors}}
    problem = {"num_vars": len(factors), "names": [f.name for f in factors],
               "bounds": [[f.low, f.high] for f in factors]}
    sampler_seed = int(np.random.SeedSequence(spec.seed).generate_state(1)[0])
    if d.kind == "latin_hypercube":
        if d.samples is None:
            raise ExperimentError("key 'design.samples': latin_hypercube needs samples", file=src)
        from SALib.sample import latin

        X = latin.sample(problem, d.samples, seed=sampler_seed)
        meta = {"kind": "latin_hypercube", "samples": d.samples}
    elif d.kind == "sobol":
        if d.base_samples is None:
            raise ExperimentError("key 'design.base_samples': sobol needs base_samples (a power of 2)",
                                  file=src)
        from SALib.sample import sobol

        X = sobol.sample(problem, d.base_samples, calc_second_order=d.second_order, seed=sampler_seed)
        meta = {"kind": "sobol", "base_samples": d.base_samples, "second_order": d.second_order}
    else:
        if d.trajectories is None:
            raise ExperimentError("key 'design.trajectories': morris needs trajectories", file=src)
        from SALib.sample import morris

        X = morris.sample(problem, d.trajectories, num_levels=d.levels, seed=sampler_seed)
        meta = {"kind": "morris", "trajectories": d.trajectories, "levels": d.levels}
    points = []
    for row in X:
        p = {}
        for f, v in zip(factors, row, strict=True):
            p[f.name] = int(round(v)) if f.integer else float(v)
        points.append(p)
    meta.update(problem=problem, sampler_seed=sampler_seed)
    return points, meta


def point_overrides(point: dict[str, Any], factors: list[Factor]) -> dict[str, Any]:
    """Dotted-key overrides for a design point (levers expand to their keys)."""
    out: dict[str, Any] = {}
    for f in factors:
        v = point[f.name]
        if isinstance(v, dict):
            out.update(v)
        else:
            out[f.name] = v
    return out


def _record_value(f: Factor, v: Any) -> Any:
    """What a runs row records for a factor: the value, or a lever's level index."""
    return f.values.index(v) if f.is_lever else v


# --------------------------------------------------------------------------- planning
def plan_runs(exp: Experiment) -> list[RunTask]:
    """Every run of the experiment, in run-id order. Replication r uses the r-th spawned child
    of the root seed in every scenario and design point (common random numbers)."""
    spec = exp.spec
    root = np.random.SeedSequence(spec.seed)
    children = root.spawn(spec.replications)
    tasks = []
    for si, (label, sc) in enumerate(exp.base.items()):
        for pid, point in enumerate(exp.points):
            scenario = sc.with_overrides(exp.overrides_for(label, point)) if point else sc
            values = {f.name: _record_value(f, point[f.name]) for f in exp.factors}
            for r, child in enumerate(children):
                if exp.seeds is not None:
                    child = exp.seeds(pid, r)
                tasks.append(RunTask(
                    run_id=f"s{si:02d}-p{pid:05d}-r{r:04d}", label=label, scenario=scenario,
                    point_id=pid, replication=r, factor_values=values,
                    entropy=int(child.entropy), spawn_key=tuple(child.spawn_key),
                    days=spec.days, warmup_days=spec.warmup_days,
                    timeseries_every=spec.outputs.timeseries_every if spec.outputs.timeseries else None,
                    incidents=spec.outputs.incidents,
                ))
    return tasks
