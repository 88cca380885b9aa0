"""Calibration files: the targets (observed figures with their errors), the free parameters
with their priors, and the method's settings.

A calibration file (``calibration/*.yaml``)::

    name: pingxiang
    seed: 20261202
    days: 180              # every model run: days, warm-up, replications (common random numbers)
    warmup_days: 30
    replications: 1
    scenarios:             # labels the targets use; `set` applies to that scenario only
      pre: {scenario: pingxiang_pre_reform, set: {population.scale: 50}}
      post: {scenario: pingxiang_reform, set: {population.scale: 50}}
    fixed: {}              # dotted keys held at a value in every scenario (not calibrated)
    parameters:            # the free parameters and their priors (uniform on the given scale)
      survey_threshold: {keys: [safety.survey_safe_threshold], low: 0.5, high: 0.9}
      incident_volume: {keys: [incidents.public_order.base_rate, ...], mode: multiply,
                        low: 0.5, high: 1.5, scale: log}
    targets:
      - name: survey_safe_pre
        kind: level                      # level | difference | relative_change
        scenario: pre                    # (difference / relative_change: scenarios: [a, b])
        outcome: survey_share_safe       # a column of runs.parquet
        value: 0.97
        sd: 0.015                        # observation error (one standard deviation), > 0
        discrepancy: 0.0                 # model discrepancy (one sd), >= 0
        role: fit                        # fit | holdout (predicted, not fitted) | check
        source: "provincial survey 95-99% (DESIGN.md s.1)"
    method:
      screening: {trajectories: 4, levels: 4, threshold: 0.3}
      history_matching: {waves: 2, points: 30, cutoff: 3.0, candidates: 20000}
      abc: {generations: 3, particles: 40, quantile: 0.5}
      predict: {max_members: 40}

A parameter sets one value on every key it names (``mode: set``), or multiplies each scenario's
own value of every key (``mode: multiply``: the categories keep their assumed split while the
parameter moves the level). ``scale: log`` puts the uniform prior on the logarithm.

:func:`load_calibration` validates everything before any model run: unknown keys, empty or
non-positive (log) ranges, a key claimed by two parameters, unknown outcomes or scenario
labels, uncertainties <= 0, and every scenario at every corner of the prior box.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

import sim.outcomes as registry
from sim import schema
from sim.codes import CATEGORIES, CHANNELS
from sim.files import InputError, short, short_text
from sim.paths import CALIBRATION_DIR
from sim.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    read_input_yaml,
    resolve_scenario_path,
)

#: Most corners of the prior box checked against every scenario (2^k grows fast; above this,
#: the all-low and all-high corners and each parameter alone at its ends are checked).
MAX_CORNERS = 256
#: Columns of runs.parquet a parameter may not be named after.
RESERVED = frozenset({"run_id", "scenario", "scenario_name", "point_id", "replication", "status",
                      "error", "seed", "spawn_key", "scenario_digest", "wall_seconds"})


class CalibrationError(InputError):
    """A calibration file is invalid; ``str()`` names the file, the key, the value and what is
    allowed."""


def target_outcomes() -> list[str]:
    """Columns of ``runs.parquet`` a target may use: the registered run outcomes, plus the
    per-category and per-channel counts every run row carries."""
    extra = [f"occurred_{c}" for c in CATEGORIES]
    extra += [f"{p}_{c}" for p in ("reports", "first_reports") for c in CHANNELS]
    return [*registry.run_outcomes(), *extra]


_Spec = schema.StrictSpec


class ScenarioEntry(_Spec):
    scenario: str = Field(description="A file under scenarios/ or a path (relative to this file).")
    set: dict[str, Any] = Field(default_factory=dict, description="Dotted-key overrides.")


class ParameterSpec(_Spec):
    keys: list[str] | None = Field(None, min_length=1,
                                   description="Scenario keys it sets (default: its own name).")
    low: float
    high: float
    scale: Literal["linear", "log"] = "linear"
    mode: Literal["set", "multiply"] = "set"
    nominal: float | None = Field(None, description="Its value when screening finds it inert"
                                                    " (default: the prior's median).")
    description: str = ""


class TargetSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=80)
    kind: Literal["level", "difference", "relative_change"] = "level"
    scenario: str | None = None
    scenarios: list[str] | None = Field(None, min_length=2, max_length=2)
    outcome: str
    per: Literal["resident_year"] | None = Field(
        None, description="resident_year: divide a count by population x years after warm-up.")
    value: float
    sd: float = Field(gt=0, description="Observation error, one standard deviation.")
    discrepancy: float = Field(0.0, ge=0, description="Model discrepancy, one standard deviation.")
    role: Literal["fit", "holdout", "check"] = "fit"
    source: str = ""


class Screening(_Spec):
    enabled: bool = True
    trajectories: int = Field(4, ge=2, le=200)
    levels: int = Field(4, ge=2, le=20)
    threshold: float = Field(0.3, gt=0, description="Inert below: mean |elementary effect| over"
                                                     " the range, in units of the target's error.")


class HistoryMatching(_Spec):
    waves: int = Field(2, ge=1, le=10)
    points: int = Field(30, ge=4, le=5000, description="Model evaluations per wave.")
    cutoff: float = Field(3.0, gt=0, description="Implausibility cut (Pukelsheim's 3 sigma).")
    candidates: int = Field(20_000, ge=100, le=1_000_000)


class Abc(_Spec):
    generations: int = Field(3, ge=1, le=20)
    particles: int = Field(40, ge=4, le=5000, description="Proposals per generation.")
    quantile: float = Field(0.5, gt=0, lt=1, description="Tolerance: this quantile of distances.")


class Predict(_Spec):
    max_members: int = Field(40, ge=1, le=5000)


class Method(_Spec):
    screening: Screening = Field(default_factory=Screening)
    history_matching: HistoryMatching = Field(default_factory=HistoryMatching)
    abc: Abc = Field(default_factory=Abc)
    predict: Predict = Field(default_factory=Predict)


class CalibrationSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: int = Field(ge=0)
    days: int = Field(365, ge=2, le=36_500)
    warmup_days: int = Field(30, ge=0)
    replications: int = Field(1, ge=1, le=1000)
    scenarios: dict[str, ScenarioEntry] = Field(min_length=1)
    fixed: dict[str, Any] = Field(default_factory=dict, description="Dotted-key values held fixed"
                                  " in every scenario (before each scenario's own `set`).")
    parameters: dict[str, ParameterSpec] = Field(min_length=1)
    targets: list[TargetSpec] = Field(min_length=1)
    method: Method = Field(default_factory=Method)


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Parameter:
    """A free parameter: its prior (uniform on ``scale``) and the keys it moves."""

    name: str
    keys: tuple[str, ...]
    low: float
    high: float
    scale: str
    mode: str
    integer: tuple[bool, ...]
    nominal: float

    def to_unit(self, value: Any) -> Any:
        v = np.asarray(value, dtype=float)
        if self.scale == "log":
            return (np.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def from_unit(self, u: Any) -> Any:
        u = np.asarray(u, dtype=float)
        if self.scale == "log":
            return np.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)

    def overrides(self, value: float, scenario: Scenario) -> dict[str, Any]:
        """The dotted keys this parameter sets in ``scenario`` at ``value``."""
        out: dict[str, Any] = {}
        for key, is_int in zip(self.keys, self.integer, strict=True):
            v = value * scenario.get(key) if self.mode == "multiply" else value
            out[key] = int(round(v)) if is_int else float(v)  # noqa: RUF046 (numpy floats)
        return out


@dataclass(frozen=True)
class Target:
    """One observed figure and how the model computes it."""

    spec: TargetSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def labels(self) -> list[str]:
        """The scenario labels this target needs, in order (baseline first)."""
        return [self.spec.scenario] if self.spec.kind == "level" else list(self.spec.scenarios or [])

    @property
    def error_sd(self) -> float:
        """Observation error and model discrepancy together (one standard deviation)."""
        return math.hypot(self.spec.sd, self.spec.discrepancy)


@dataclass
class Calibration:
    """A validated calibration: spec, base scenarios, parameters, targets."""

    spec: CalibrationSpec
    source: str
    raw: dict[str, Any]
    base_dir: Path
    scenario_paths: dict[str, Path]
    base: dict[str, Scenario]
    parameters: list[Parameter]
    targets: list[Target]
    spec_hash: str

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)

    def fit_targets(self) -> list[Target]:
        return [t for t in self.targets if t.spec.role == "fit"]

    def labels_for(self, targets: list[Target]) -> list[str]:
        """The scenario labels those targets need, in the file's order."""
        need = {lab for t in targets for lab in t.labels}
        return [lab for lab in self.spec.scenarios if lab in need]

    def apply(self, scenario: Scenario, theta: dict[str, float]) -> dict[str, Any]:
        """Dotted-key overrides that parameter values ``theta`` make in ``scenario``."""
        out: dict[str, Any] = {}
        for p in self.parameters:
            if p.name in theta:
                out.update(p.overrides(float(theta[p.name]), scenario))
        return out

    def nominal(self) -> dict[str, float]:
        return {p.name: p.nominal for p in self.parameters}


# --------------------------------------------------------------------------- loading
def find_calibration(ref: str | Path) -> Path:
    """A calibration file: a path, or a name under ``calibration/`` with or without ``.yaml``."""
    p = Path(ref)
    for c in (p, CALIBRATION_DIR / p, (CALIBRATION_DIR / p).with_suffix(".yaml")):
        if c.is_file():
            return c.resolve()
    have = ", ".join(sorted(x.stem for x in CALIBRATION_DIR.glob("*.yaml"))) or "none"
    raise CalibrationError(f"no calibration file '{short_text(str(ref), 200)}' (shipped: {have})")


def load_calibration(ref: str | Path) -> Calibration:
    """Read and validate a calibration file completely, before any model run.

    Raises:
        CalibrationError: naming the file, the key path, the value and what is allowed.
    """
    path = find_calibration(ref)
    raw = read_input_yaml(path, CalibrationError, what="calibration file")
    return build_calibration(raw, str(path), base_dir=path.parent)


def build_calibration(raw: dict[str, Any], src: str = "calibration",
                      base_dir: Path | None = None) -> Calibration:
    """Validate a calibration given as a dict (the keys of a file)."""
    base_dir = base_dir or Path.cwd()
    spec = schema.validate(CalibrationSpec, raw, CalibrationError, src)
    if spec.warmup_days >= spec.days:
        raise CalibrationError(f"key 'warmup_days': value {spec.warmup_days} must be less than days"
                               f" ({spec.days})", file=src, key="warmup_days")
    paths, base = _scenarios(spec, src, base_dir)
    params = _parameters(spec, src, base)
    clash = sorted(set(spec.fixed) & {k for p in params for k in p.keys})
    if clash:
        raise CalibrationError(f"key 'fixed': {short(clash)} are also free parameters' keys; a key"
                               " is either fixed or free", file=src, key="fixed")
    targets = _targets(spec, src)
    _check_corners(spec, params, base, src)
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    digests = json.dumps({k: v.digest() for k, v in base.items()}, sort_keys=True)
    from sim.batch.spec import code_digest

    spec_hash = hashlib.sha256((canonical + digests + code_digest()).encode()).hexdigest()
    return Calibration(spec, src, raw, base_dir, paths, base, params, targets, spec_hash)


def _scenarios(spec: CalibrationSpec, src: str, base_dir: Path) -> tuple[dict, dict]:
    paths: dict[str, Path] = {}
    base: dict[str, Scenario] = {}
    for label, entry in spec.scenarios.items():
        key = f"scenarios.{short_text(label, 60)}"
        if not label or not label.replace("_", "").replace("-", "").isalnum():
            raise CalibrationError(f"key '{key}': a label is letters, digits, '_' or '-'",
                                   file=src, key=key)
        try:
            paths[label] = resolve_scenario_path(entry.scenario, relative_to=base_dir)
        except FileNotFoundError as exc:
            raise CalibrationError(f"key '{key}.scenario': value {short(entry.scenario)}: {exc}",
                                   file=src, key=f"{key}.scenario") from None
        try:
            base[label] = load_scenario(paths[label], {**spec.fixed, **entry.set} or None)
        except ScenarioError as exc:
            raise CalibrationError(f"key '{key}': {exc}", file=src, key=key) from None
    return paths, base


def _parameters(spec: CalibrationSpec, src: str, base: dict[str, Scenario]) -> list[Parameter]:
    out = []
    owner: dict[str, str] = {}
    for name, p in spec.parameters.items():
        key = f"parameters.{short_text(name, 60)}"
        if not name or not all(part.isidentifier() for part in name.split(".")) or name in RESERVED \
                or name in target_outcomes():
            raise CalibrationError(
                f"key '{key}': {short(name)} cannot name a parameter (use letters, digits and '_';"
                " not a column of runs.parquet)", file=src, key=key)
        if not p.low < p.high:
            raise CalibrationError(f"key '{key}': empty range: low ({p.low}) must be less than high"
                                   f" ({p.high})", file=src, key=f"{key}.low")
        if p.scale == "log" and p.low <= 0:
            raise CalibrationError(f"key '{key}.low': value {p.low}: a log-scale prior needs low > 0",
                                   file=src, key=f"{key}.low")
        if p.nominal is not None and not p.low <= p.nominal <= p.high:
            raise CalibrationError(f"key '{key}.nominal': value {p.nominal} is outside [{p.low},"
                                   f" {p.high}]", file=src, key=f"{key}.nominal")
        keys = tuple(p.keys or [name])
        integer = []
        for k in keys:
            info = schema.field_at(Scenario, k)
            if info is None:
                raise CalibrationError(f"key '{key}.keys': unknown scenario key {short(k)} (a dotted"
                                       " key such as safety.survey_safe_threshold)", file=src,
                                       key=f"{key}.keys")
            if info.annotation not in (int, float):
                raise CalibrationError(f"key '{key}.keys': {short(k)} is not a number, so it cannot"
                                       " be calibrated", file=src, key=f"{key}.keys")
            if k in owner:
                raise CalibrationError(f"key '{key}.keys': {short(k)} is already set by parameter"
                                       f" '{owner[k]}'", file=src, key=f"{key}.keys")
            owner[k] = name
            integer.append(info.annotation is int)
        if p.nominal is not None:
            nominal = p.nominal
        elif p.scale == "log":
            nominal = math.sqrt(p.low * p.high)
        else:
            nominal = (p.low + p.high) / 2
        out.append(Parameter(name, keys, p.low, p.high, p.scale, p.mode, tuple(integer), nominal))
    return out


def _targets(spec: CalibrationSpec, src: str) -> list[Target]:
    known = set(target_outcomes())
    seen: set[str] = set()
    out = []
    for i, t in enumerate(spec.targets):
        key = f"targets.{i}"
        if t.name in seen:
            raise CalibrationError(f"key '{key}.name': target {t.name!r} is named twice", file=src,
                                   key=f"{key}.name")
        seen.add(t.name)
        if t.outcome not in known:
            raise CalibrationError(
                f"key '{key}.outcome': unknown outcome {short(t.outcome)}; valid:"
                f" {', '.join(sorted(known))}", file=src, key=f"{key}.outcome")
        if t.kind == "level":
            if t.scenario is None or t.scenarios is not None:
                raise CalibrationError(f"key '{key}': a level target names one `scenario`"
                                       " (not `scenarios`)", file=src, key=key)
            labels = [t.scenario]
        else:
            if t.scenarios is None or t.scenario is not None:
                raise CalibrationError(f"key '{key}': a {t.kind} target names two `scenarios`:"
                                       " [before, after]", file=src, key=key)
            labels = list(t.scenarios)
        for lab in labels:
            if lab not in spec.scenarios:
                raise CalibrationError(f"key '{key}': unknown scenario label {short(lab)}; the file's"
                                       f" scenarios are {', '.join(spec.scenarios)}", file=src, key=key)
        out.append(Target(t))
    if not any(t.spec.role == "fit" for t in out):
        raise CalibrationError("key 'targets': no target has role 'fit', so nothing is fitted",
                               file=src, key="targets")
    return out


def _check_corners(spec: CalibrationSpec, params: list[Parameter], base: dict[str, Scenario],
                   src: str) -> None:
    """Every scenario must be valid at the corners of the prior box (each key is monotone in
    its one parameter, so the corners bound every value a run can see)."""
    k = len(params)
    if 2 ** k <= MAX_CORNERS:
        corners = list(itertools.product((0.0, 1.0), repeat=k))
    else:
        corners = [(0.0,) * k, (1.0,) * k]
        corners += [tuple(1.0 if j == i else 0.0 for j in range(k)) for i in range(k)]
        corners += [tuple(0.0 if j == i else 1.0 for j in range(k)) for i in range(k)]
    for label, sc in base.items():
        for corner in corners:
            theta = {p.name: float(p.from_unit(u)) for p, u in zip(params, corner, strict=True)}
            ov: dict[str, Any] = {}
            for p in params:
                ov.update(p.overrides(theta[p.name], sc))
            try:
                sc.with_overrides(ov)
            except ScenarioError as exc:
                which = ", ".join(f"{p.name}={'high' if u else 'low'}"
                                  for p, u in zip(params, corner, strict=True))
                raise CalibrationError(
                    f"key 'parameters': at the prior's corner ({short_text(which, 300)}) scenario"
                    f" '{label}' is invalid: {exc}. Narrow the range", file=src,
                    key="parameters") from None
