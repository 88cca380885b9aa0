"""Experiment batches: designs, replications, common random numbers, parallel and Dask
execution, resumable results.

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

Runs are written as they finish (one Parquet part per run and table, renamed into place
atomically; the ``runs`` part is written last and marks the run done), so a batch killed at any
point resumes with ``--resume`` without losing or duplicating a run. At the end the parts are
compacted into ``runs.parquet``, ``timeseries.parquet`` and ``incidents.parquet``, sorted by
run id. The numbers depend only on (scenario, design point, seed), never on the executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import hashlib
import itertools
import json
import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import sim.outcomes as outcomes_registry
from sim.batch.results import (
    DEFAULT_RESULTS_DIR,
    SCHEMA_VERSION,
    git_commit,
    now_iso,
    package_versions,
    summary_row,
)
from sim.paths import EXPERIMENT_DIR, PACKAGE_DIR, model_source_files
from sim.scenario import CATEGORIES, CHANNELS, Scenario, ScenarioError, load_scenario, resolve_scenario_path

DEFAULT_OUTCOMES = outcomes_registry.EXPERIMENT
TABLES = ("runs", "timeseries", "incidents")
FLUSH_SECONDS = 2.0
FLUSH_RUNS = 64
# Test hook: write every N finished runs (1 = each run at once), to test kills between writes.
FLUSH_ENV = "GOVSIM_FLUSH_RUNS"
# Test hook: runs whose id matches this regular expression raise (to test failure handling).
FAIL_ENV = "GOVSIM_TEST_FAIL_RUN"


class ExperimentError(ValueError):
    """An experiment file is invalid; ``str()`` names the file, key, value and what is allowed."""

    def __init__(self, message: str, *, file: str | None = None):
        self.file = file
        super().__init__(f"{file}: {message}" if file else message)


# --------------------------------------------------------------------------- the spec
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
            raise ValueError(f"must be a power of 2 (Sobol' sequences), e.g. {1 << (v.bit_length() - 1)} or {1 << v.bit_length()}")
        return v


class Outputs(_Spec):
    timeseries: bool = True
    timeseries_every: int = Field(1, ge=1, description="Keep every k-th day (and the last).")
    incidents: bool = False


class ExperimentSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Used as the results folder name.")
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
    """A validated experiment: the spec, its resolved base scenarios and its design points."""

    spec: ExperimentSpec
    source: str
    raw: dict[str, Any]
    base: dict[str, Scenario]
    factors: list[Factor]
    points: list[dict[str, Any]]             # point_id -> {factor name: value}
    design_meta: dict[str, Any]
    spec_hash: str

    @property
    def n_runs(self) -> int:
        return len(self.base) * len(self.points) * self.spec.replications


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


@dataclass
class RunOutput:
    row: dict[str, Any]
    timeseries: pd.DataFrame | None = None
    incidents: pd.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- loading
def _fmt_pydantic(err: dict) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    if err.get("type") == "extra_forbidden":
        valid = _valid_keys_at(err.get("loc", ())[:-1])
        return f"key '{loc}': unknown key; valid keys here are: {', '.join(valid)}"
    if err.get("type") == "missing":
        return f"key '{loc}': required key is missing"
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    return f"key '{loc}': value {err.get('input')!r} is not allowed: {msg}"


def _valid_keys_at(loc: tuple) -> list[str]:
    model: Any = ExperimentSpec
    for part in loc:
        if isinstance(part, int):
            continue
        f = getattr(model, "model_fields", {}).get(part)
        if f is None:
            return []
        ann = f.annotation
        args = getattr(ann, "__args__", None)
        if args:
            ann = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), ann)
        model = ann
    return sorted(getattr(model, "model_fields", {}))


def _scenario_field(dotted: str):
    """The pydantic FieldInfo behind a dotted scenario key, or None."""
    model: Any = Scenario
    info = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    return info


def _outcome_names() -> set[str]:
    return set(outcomes_registry.run_outcomes())


def find_experiment(ref: str | Path) -> Path:
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
    src = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ExperimentError(f"YAML syntax error{where}: {getattr(exc, 'problem', exc)}", file=src) from None
    if not isinstance(raw, dict):
        raise ExperimentError("the file must hold a mapping of keys to values", file=src)
    return build_experiment(raw, src, base_dir=path.parent)


def build_experiment(raw: dict[str, Any], src: str = "experiment", base_dir: Path | None = None) -> Experiment:
    """Validate an experiment given as a dict (the same keys as a file); scenario files are
    looked up relative to ``base_dir``, then under ``scenarios/``."""
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        errs = exc.errors()
        msg = _fmt_pydantic(errs[0]) + (f" (and {len(errs) - 1} more)" if len(errs) > 1 else "")
        raise ExperimentError(msg, file=src) from None
    if spec.warmup_days >= spec.days:
        raise ExperimentError(f"key 'warmup_days': value {spec.warmup_days} must be less than days ({spec.days})", file=src)
    labels = [s.label for s in spec.scenarios]
    if len(set(labels)) != len(labels):
        raise ExperimentError(f"key 'scenarios': labels must be unique, got {labels}", file=src)
    unknown = [o for o in spec.outcomes if o not in _outcome_names()]
    if unknown:
        raise ExperimentError(
            f"key 'outcomes': unknown outcome(s) {unknown}; valid: {', '.join(sorted(_outcome_names()))}", file=src
        )

    base: dict[str, Scenario] = {}
    for i, ref_ in enumerate(spec.scenarios):
        try:
            spath = resolve_scenario_path(ref_.scenario, relative_to=base_dir)
        except FileNotFoundError as exc:
            raise ExperimentError(f"key 'scenarios.{i}.scenario': value {ref_.scenario!r}: {exc}", file=src) from None
        try:
            base[ref_.label] = load_scenario(spath, ref_.set or None)
        except ScenarioError as exc:
            raise ExperimentError(f"key 'scenarios.{i}' ({ref_.label}): {exc}", file=src) from None

    factors = _parse_factors(spec, src)
    points, design_meta = _design_points(spec, factors, src)
    # validate every design point against every base scenario before any run
    for label, sc in base.items():
        for pid, point in enumerate(points):
            try:
                sc.with_overrides(point_overrides(point, factors))
            except ScenarioError as exc:
                raise ExperimentError(
                    f"key 'factors': design point {pid} {point} is invalid for scenario '{label}': {exc}",
                    file=src,
                ) from None
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    # the model's code is part of what a run depends on: resuming across a code change would
    # mix results of two models in one table
    canonical += code_digest()
    scen_digest = json.dumps({k: v.digest() for k, v in base.items()}, sort_keys=True)
    spec_hash = hashlib.sha256((canonical + scen_digest).encode()).hexdigest()
    return Experiment(spec, src, raw, base, factors, points, design_meta, spec_hash)


def code_digest() -> str:
    """SHA-256 of the model's source files (:func:`sim.paths.model_source_files`): the code
    that computes the numbers."""
    h = hashlib.sha256()
    for f in model_source_files():
        h.update(f.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _parse_factors(spec: ExperimentSpec, src: str) -> list[Factor]:
    out = []
    sampled = spec.design.kind != "full_factorial"
    for name, val in spec.factors.items():
        key = f"factors.{name}"
        if isinstance(val, list):
            if not val:
                raise ExperimentError(f"key '{key}': give at least one value", file=src)
            if sampled:
                raise ExperimentError(
                    f"key '{key}': a {spec.design.kind} design samples ranges; give {{low: .., high: ..}} not a list",
                    file=src)
            if isinstance(val[0], dict):
                for lv in val:
                    if not isinstance(lv, dict):
                        raise ExperimentError(f"key '{key}': every level of a lever must be a mapping of keys", file=src)
                    for k in lv:
                        if _scenario_field(k) is None:
                            raise ExperimentError(f"key '{key}': unknown scenario key '{k}'", file=src)
            elif _scenario_field(name) is None:
                raise ExperimentError(
                    f"key '{key}': unknown scenario key '{name}' (a factor is a dotted scenario key such as"
                    f" grids.count, or a named lever whose levels are mappings of keys)", file=src)
            out.append(Factor(name, values=list(val)))
        elif isinstance(val, dict):
            extra = set(val) - {"low", "high"}
            if extra or not {"low", "high"} <= set(val):
                raise ExperimentError(
                    f"key '{key}': a range needs exactly 'low' and 'high' (got {sorted(val)})", file=src)
            if not sampled:
                raise ExperimentError(
                    f"key '{key}': full_factorial needs a list of values, not a range", file=src)
            info = _scenario_field(name)
            if info is None:
                raise ExperimentError(f"key '{key}': unknown scenario key '{name}'", file=src)
            if info.annotation not in (int, float):
                raise ExperimentError(f"key '{key}': only numeric keys can be sampled from a range", file=src)
            lo, hi = val["low"], val["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi:
                raise ExperimentError(f"key '{key}': need numbers with low < high, got low={lo!r}, high={hi!r}", file=src)
            out.append(Factor(name, low=float(lo), high=float(hi), integer=info.annotation is int))
        else:
            raise ExperimentError(
                f"key '{key}': value {val!r} is not allowed; give a list of values or {{low: .., high: ..}}", file=src)
    if spec.design.kind in ("sobol", "morris", "latin_hypercube") and not out:
        raise ExperimentError(f"key 'factors': a {spec.design.kind} design needs at least one factor", file=src)
    return out


def _design_points(spec: ExperimentSpec, factors: list[Factor], src: str) -> tuple[list[dict], dict]:
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
            raise ExperimentError("key 'design.base_samples': sobol needs base_samples (a power of 2)", file=src)
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
            scenario = sc.with_overrides(point_overrides(point, exp.factors)) if point else sc
            values = {f.name: _record_value(f, point[f.name]) for f in exp.factors}
            for r, child in enumerate(children):
                tasks.append(RunTask(
                    run_id=f"s{si:02d}-p{pid:05d}-r{r:04d}", label=label, scenario=scenario,
                    point_id=pid, replication=r, factor_values=values,
                    entropy=int(child.entropy), spawn_key=tuple(child.spawn_key),
                    days=spec.days, warmup_days=spec.warmup_days,
                    timeseries_every=spec.outputs.timeseries_every if spec.outputs.timeseries else None,
                    incidents=spec.outputs.incidents,
                ))
    return tasks


# --------------------------------------------------------------------------- one run
def execute(task: RunTask) -> RunOutput:
    """Run one task (in any process). Exceptions become a failed row with the traceback."""
    from sim.model import GovernanceModel

    t0 = time.perf_counter()
    labels = {"point_id": task.point_id, "replication": task.replication, **task.factor_values}
    model = None
    try:
        pattern = os.environ.get(FAIL_ENV)
        if pattern and re.search(pattern, task.run_id):
            raise RuntimeError(f"injected failure for {task.run_id} ({FAIL_ENV})")
        seed = np.random.SeedSequence(task.entropy, spawn_key=task.spawn_key)
        model = GovernanceModel(task.scenario, rng=seed)
        model.run(task.days)
        wall = time.perf_counter() - t0
        row = summary_row(model, run_id=task.run_id, warmup_days=task.warmup_days,
                          wall_seconds=wall, **labels)
        row["scenario"] = task.label
        row["scenario_name"] = task.scenario.name
        row["error"] = ""
        ts = inc = None
        if task.timeseries_every:
            ts = model.timeseries()
            keep = (ts["day"] % task.timeseries_every == 0) | (ts["day"] == ts["day"].max())
            ts = ts[keep].reset_index(drop=True)
            ts.insert(0, "run_id", task.run_id)
            ts.insert(1, "scenario", task.label)
        if task.incidents:
            inc = model.incident_table()
            inc.insert(0, "run_id", task.run_id)
            inc.insert(1, "scenario", task.label)
        return RunOutput(row, ts, inc)
    except Exception:
        row = {"run_id": task.run_id, "scenario": task.label, "scenario_name": task.scenario.name,
               **labels, "seed": str(task.entropy), "spawn_key": json.dumps(list(task.spawn_key)),
               "scenario_digest": task.scenario.digest(), "status": "failed",
               "wall_seconds": time.perf_counter() - t0, "error": traceback.format_exc()}
        return RunOutput(row)
    finally:
        _release(model)
        del model


_runs_since_gc = 0


def _release(model: Any) -> None:
    """Free a finished model promptly. A model and its agents reference each other, so it is
    freed only by Python's cyclic garbage collector, whose full passes are rare: without this,
    dead models pile up in a worker and raise its memory high-water mark. A full collection
    costs a few milliseconds, so it runs after every large model and every 10th small one."""
    global _runs_since_gc
    _runs_since_gc += 1
    large = model is not None and getattr(model, "residents", None) is not None and model.residents.n >= 100_000
    if large or _runs_since_gc >= 10:
        gc.collect()
        _runs_since_gc = 0


# --------------------------------------------------------------------------- storage
class ResultStore:
    """A results directory being filled run by run (parts), then compacted."""

    def __init__(self, path: Path):
        self.path = path

    def part_dir(self, table: str) -> Path:
        return self.path / table

    def _write_atomic(self, df: pd.DataFrame, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, dest)

    def write(self, outs: list[RunOutput]) -> None:
        """Write finished runs as one part per table (a batch of runs, named by time so later
        batches sort after earlier ones). The runs part is written last: its presence marks
        the batch's runs as recorded, so a kill at any moment leaves either all of a batch or
        an orphan timeseries/incidents part that resume removes."""
        if not outs:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}"
        ts = [o.timeseries for o in outs if o.timeseries is not None]
        inc = [o.incidents for o in outs if o.incidents is not None]
        if ts:
            self._write_atomic(pd.concat(ts, ignore_index=True), self.part_dir("timeseries") / f"{name}.parquet")
        if inc:
            self._write_atomic(pd.concat(inc, ignore_index=True), self.part_dir("incidents") / f"{name}.parquet")
        self._write_atomic(pd.DataFrame([o.row for o in outs]), self.part_dir("runs") / f"{name}.parquet")

    def runs(self) -> pd.DataFrame:
        frames = []
        f = self.path / "runs.parquet"
        if f.is_file():
            frames.append(pd.read_parquet(f))
        parts = sorted(self.part_dir("runs").glob("*.parquet")) if self.part_dir("runs").is_dir() else []
        frames += [pd.read_parquet(p) for p in parts]
        if not frames:
            return pd.DataFrame(columns=["run_id", "status", "scenario"])
        df = pd.concat(frames, ignore_index=True)
        return df.drop_duplicates("run_id", keep="last").sort_values("run_id").reset_index(drop=True)

    def done_ids(self) -> set[str]:
        df = self.runs()
        return set(df.loc[df["status"] == "done", "run_id"])

    def compact(self) -> None:
        """Merge parts into one file per table (sorted by run id), atomically, then remove
        the parts. Parts are newer than a previously compacted file and replace its rows."""
        for table in TABLES:
            pdir = self.part_dir(table)
            parts = sorted(pdir.glob("*.parquet")) if pdir.is_dir() else []
            dest = self.path / f"{table}.parquet"
            if not parts:
                if pdir.is_dir():
                    shutil.rmtree(pdir)
                continue
            new = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
            if dest.is_file():
                old = pd.read_parquet(dest)
                old = old[~old["run_id"].isin(set(new["run_id"]))]
                new = pd.concat([old, new], ignore_index=True)
            if table == "runs":
                new = new.drop_duplicates("run_id", keep="last")
            sort_cols = ["run_id"] + [c for c in ("day", "incident_id") if c in new.columns]
            new = new.sort_values(sort_cols, kind="stable").reset_index(drop=True)
            self._write_atomic(new, dest)
            shutil.rmtree(pdir)

    def drop_orphan_parts(self) -> None:
        """Remove timeseries/incident parts whose batch never recorded its runs part (killed
        mid-write), and leftover temporary files."""
        rdir = self.part_dir("runs")
        recorded = {p.stem for p in rdir.glob("*.parquet")} if rdir.is_dir() else set()
        for table in TABLES:
            pdir = self.part_dir(table)
            if pdir.is_dir():
                for p in pdir.glob("*.parquet"):
                    if p.stem not in recorded:
                        p.unlink()
                for p in pdir.glob(".*.tmp-*"):
                    p.unlink()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def experiment_metadata(exp: Experiment) -> dict[str, Any]:
    spec = exp.spec
    root = np.random.SeedSequence(spec.seed)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "experiment",
        "name": spec.name,
        "spec_file": exp.source,
        "spec": exp.raw,
        "spec_hash": exp.spec_hash,
        "code_digest": code_digest(),
        "design": exp.design_meta,
        "factors": [f.name for f in exp.factors],
        "levers": {f.name: f.values for f in exp.factors if f.is_lever},
        "scenarios": {label: sc.to_dict() for label, sc in exp.base.items()},
        "scenario_digests": {label: sc.digest() for label, sc in exp.base.items()},
        "replications": spec.replications,
        "seed": {"root": spec.seed, "replication_spawn_keys": [list(c.spawn_key) for c in root.spawn(spec.replications)]},
        "days": spec.days,
        "warmup_days": spec.warmup_days,
        "outputs": spec.outputs.model_dump(),
        "outcomes": spec.outcomes,
        "runs_planned": exp.n_runs,
        "runs_planned_by_scenario": {label: len(exp.points) * spec.replications for label in exp.base},
        "versions": package_versions(),
        "git": git_commit(),
        "started": now_iso(),
        "finished": None,
        "status": "running",
    }


# --------------------------------------------------------------------------- running
def _is_dask_client(obj: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(obj, Client)


def _worker_init() -> None:
    """Import and set up once per worker process (not once per run)."""
    import sim.model  # noqa: F401


def make_process_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A process pool whose workers import the model once and are recycled after many runs,
    so memory stays flat over thousands of runs."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["sim.model"])
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                  max_tasks_per_child=500)


def run_experiment(
    spec: str | Path | Experiment,
    executor: Any = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> Path:
    """Run (or resume) an experiment and return its results directory.

    Args:
        spec: an experiment file (path or name under ``experiments/``) or a loaded Experiment.
        executor: any ``concurrent.futures.Executor`` or a Dask ``distributed.Client``; if None,
            ``scheduler``/``workers`` decide: a Dask cluster at ``scheduler`` (``"local"`` starts a
            LocalCluster), serial when ``workers == 1``, else a local process pool of
            ``workers`` (default: all cores).
        out: results directory (default ``results/<name>``).
        resume: continue an interrupted batch in ``out`` (runs already done are skipped).
        force: delete an existing ``out`` and start over.
        progress: show a progress bar.

    Raises:
        ExperimentError: bad spec, or ``out`` exists without ``resume``/``force``, or the spec
            changed since the batch started.
    """
    exp = spec if isinstance(spec, Experiment) else load_experiment(spec)
    path = Path(out) if out else DEFAULT_RESULTS_DIR / exp.spec.name
    store = ResultStore(path)
    meta_file = path / "metadata.json"
    if path.exists() and any(path.iterdir()):
        if force:
            shutil.rmtree(path)
        elif not resume:
            raise ExperimentError(
                f"results directory {path} already exists; add --resume to continue it or --force to start over")
        elif not meta_file.is_file():
            raise ExperimentError(f"{path} is not an experiment results directory (no metadata.json)")
        else:
            old = json.loads(meta_file.read_text())
            if old.get("spec_hash") != exp.spec_hash:
                raise ExperimentError(
                    f"the experiment file, its scenarios or the model's code (sim/*.py) changed since {path} was"
                    " started, so resuming would mix results of two versions; use --force to start over")
    path.mkdir(parents=True, exist_ok=True)
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        meta["resumed"] = [*meta.get("resumed", []), now_iso()]
        meta["status"] = "running"
    else:
        meta = experiment_metadata(exp)
    _write_json_atomic(meta_file, meta)

    tasks = plan_runs(exp)
    store.drop_orphan_parts()
    done = store.done_ids()
    todo = [t for t in tasks if t.run_id not in done]

    own_client = None
    own_pool = None
    if executor is None:
        if scheduler:
            from distributed import Client, LocalCluster

            if scheduler == "local":
                cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                       processes=True, dashboard_address=None)
                own_client = Client(cluster)
            else:
                own_client = Client(scheduler)
            executor = own_client
        elif (workers or os.cpu_count() or 1) > 1 and len(todo) > 1:
            own_pool = executor = make_process_pool(workers or os.cpu_count() or 1)

    n_failed = 0
    t_start = time.perf_counter()
    bar = _Progress(len(tasks), len(done), exp.spec.name, enabled=progress)
    # Finished runs are written in batches (every FLUSH_SECONDS or FLUSH_RUNS runs): one file
    # per table per batch keeps the parent's work per run small, so workers are not starved;
    # a kill loses at most the last batch, which resume simply runs again.
    flush_runs = int(os.environ.get(FLUSH_ENV, FLUSH_RUNS))
    buffer: list[RunOutput] = []
    last_flush = time.monotonic()
    try:
        for result in _results(executor, todo):
            buffer.append(result)
            if result.row["status"] != "done":
                n_failed += 1
            bar.update(failed=result.row["status"] != "done")
            if len(buffer) >= flush_runs or time.monotonic() - last_flush >= FLUSH_SECONDS:
                store.write(buffer)
                buffer = []
                last_flush = time.monotonic()
    finally:
        store.write(buffer)  # what finished before an interruption is kept
        bar.close()
        if own_pool is not None:
            own_pool.shutdown(wait=False, cancel_futures=True)
        if own_client is not None:
            cluster = getattr(own_client, "cluster", None)
            own_client.close()
            if cluster is not None:
                cluster.close()
    store.compact()
    runs = store.runs()
    meta = json.loads(meta_file.read_text())
    meta["finished"] = now_iso()
    meta["wall_seconds_last_session"] = time.perf_counter() - t_start
    meta["runs_done"] = int((runs["status"] == "done").sum())
    meta["runs_failed"] = int((runs["status"] == "failed").sum())
    meta["status"] = "complete" if meta["runs_failed"] == 0 else "complete_with_failures"
    _write_json_atomic(meta_file, meta)
    return path


def _results(executor: Any, todo: list[RunTask]):
    """Yield RunOutputs as runs finish, whatever the executor."""
    if executor is None:
        for t in todo:
            yield execute(t)
        return
    if _is_dask_client(executor):
        from distributed import as_completed

        futures = [executor.submit(execute, t, pure=False, key=f"govsim-{t.run_id}-{time.time_ns()}") for t in todo]
        ac = as_completed(futures)
        del futures  # as_completed holds the pending ones; finished results are not kept
        for fut in ac:
            result = fut.result()
            fut.release()
            yield result
        return
    pending = {executor.submit(execute, t) for t in todo}
    try:
        for fut in cf.as_completed(pending):
            pending.discard(fut)  # drop our reference: results are not held until the end
            yield fut.result()
    except BaseException:
        for f in pending:
            f.cancel()
        raise


class _Progress:
    def __init__(self, total: int, already: int, name: str, enabled: bool):
        self.enabled = enabled
        self.failed = 0
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("runs, [red]{task.fields[failed]} failed[/red]"),
                          TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
        self.p.start()
        self.task = self.p.add_task(name, total=total, completed=already, failed=0)

    def update(self, failed: bool) -> None:
        if failed:
            self.failed += 1
        if self.enabled:
            self.p.update(self.task, advance=1, failed=self.failed)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


# --------------------------------------------------------------------------- status
def experiment_status(path: str | Path) -> pd.DataFrame:
    """Counts of runs by scenario and status (done, failed, pending)."""
    path = Path(path)
    meta_file = path / "metadata.json"
    if not meta_file.is_file():
        raise ExperimentError(f"{path} is not an experiment results directory (no metadata.json)")
    meta = json.loads(meta_file.read_text())
    runs = ResultStore(path).runs()
    rows = []
    for label, planned in meta["runs_planned_by_scenario"].items():
        sub = runs[runs["scenario"] == label] if len(runs) else runs
        done = int((sub["status"] == "done").sum())
        failed = int((sub["status"] == "failed").sum())
        rows.append({"scenario": label, "planned": planned, "done": done, "failed": failed,
                     "pending": planned - done - failed})
    df = pd.DataFrame(rows)
    total = df[["planned", "done", "failed", "pending"]].sum()
    df.loc[len(df)] = {"scenario": "all", **total.to_dict()}
    return df
