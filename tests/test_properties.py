"""Property tests of input handling (issue 12), with Hypothesis.

* loading any scenario file raises nothing but :class:`ScenarioError`;
* ``--set`` parsing raises nothing but ScenarioError, and round-trips scalar values;
* validating any experiment spec raises nothing but :class:`ExperimentError`, any calibration
  file nothing but :class:`CalibrationError`;
* any scenario that validates builds and runs three days without an exception (on a small
  city, so each example takes well under a second).

Examples are drawn from the schemas themselves (:func:`sim.schema.iter_parameters`): keys,
types and bounds, plus values beyond them. The default profile is derandomised (the same
examples every run, so the suite is stable); ``GOVSIM_HYPOTHESIS=explore`` draws 30 times as
many, fresh each run, to look for new failures.
"""

from __future__ import annotations

import os
import tempfile
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sim import schema
from sim.batch.spec import ExperimentError, build_experiment
from sim.scenario import Scenario, ScenarioError, load_scenario, parse_set_option

EXPLORE = os.environ.get("GOVSIM_HYPOTHESIS") == "explore"
# database=None: nothing is written into the work tree (no .hypothesis/ directory)
settings.register_profile(
    "govsim", derandomize=not EXPLORE, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile("govsim")


def examples(n: int) -> int:
    """``n`` examples in the suite; 30 times as many (and fresh ones) when exploring."""
    return 30 * n if EXPLORE else n

# A small city: every example builds in a few hundred milliseconds.
SMALL = {"city.width": 10, "city.height": 10, "city.population": 3000, "admin.townships": 2,
         "admin.communities": 3, "grids.count": 8, "police.officers": 4,
         "volunteers.community": 600, "volunteers.volunteer_police": 6, "volunteers.riders": 10}

PARAMS = [p for p in schema.iter_parameters(Scenario) if "[]" not in p.key]
LEAF_KEYS = [p.key for p in PARAMS]
SECTIONS = sorted({k.split(".")[0] for k in LEAF_KEYS})


# --------------------------------------------------------------------------- strategies
def _bounds(info: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(m, name, None) is not None:
                out[name] = getattr(m, name)
    return out


def _scalar_kind(annotation: Any) -> tuple[type | None, bool, tuple]:
    """(scalar type, optional, literal choices) of a field annotation."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return None, False, args
    optional = type(None) in args
    for t in (bool, int, float, str):
        if annotation is t or t in args:
            return t, optional, ()
    return None, optional, ()


def value_in_bounds(p: schema.ParamInfo) -> st.SearchStrategy:
    """Values a key's schema allows, mostly near its default, sometimes at its extremes."""
    kind, optional, choices = _scalar_kind(p.field.annotation)
    b = _bounds(p.field)
    if choices:
        s = st.sampled_from(choices)
    elif kind is bool:
        s = st.booleans()
    elif kind is int:
        lo = b.get("ge", b.get("gt", -(2**31)) + 1 if "gt" in b else -(2**31))
        hi = b.get("le", b["lt"] - 1 if "lt" in b else 2**62)
        near = max(lo, min(hi, 10 * abs(int(p.default or 0)) + 10))
        s = st.one_of(st.integers(lo, near), st.integers(lo, hi))
    elif kind is float:
        lo = b.get("ge", b.get("gt", -1e12))
        hi = b.get("le", b.get("lt", 1e12))
        near = max(lo, min(hi, 10 * abs(float(p.default or 0)) + 1))
        s = st.one_of(
            st.floats(lo, near, exclude_min="gt" in b, exclude_max="lt" in b and near == hi),
            st.floats(lo, hi, exclude_min="gt" in b, exclude_max="lt" in b))
    elif kind is str:
        s = st.text(max_size=30)
    else:
        return st.nothing()
    return st.one_of(st.none(), s) if optional else s


def any_value() -> st.SearchStrategy:
    """Anything YAML can carry: scalars of every type (non-finite floats, huge integers,
    text) and small nested collections."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                        st.integers(-(10**30), 10**30), st.text(max_size=12))
    keys = st.one_of(st.sampled_from(SECTIONS + [k.split(".")[-1] for k in LEAF_KEYS]),
                     st.text(max_size=8), st.integers(-3, 3), st.none())
    return st.recursive(scalars, lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(keys, c, max_size=4)), max_leaves=12)


@st.composite
def scenario_document(draw) -> dict:
    """A scenario-shaped document: known sections and keys with values in or out of bounds,
    plus stray keys and values of the wrong shape."""
    doc: dict[Any, Any] = {}
    for p in draw(st.lists(st.sampled_from(PARAMS), max_size=6)):
        value = draw(st.one_of(value_in_bounds(p), any_value()))
        node = doc
        parts = p.key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    if draw(st.booleans()):
        doc.update(draw(st.dictionaries(st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8)),
                                        any_value(), max_size=3)))
    return doc


# --------------------------------------------------------------------------- loading
@settings(max_examples=examples(60))
@given(doc=st.one_of(scenario_document(), any_value()))
def test_loading_any_document_raises_only_scenario_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        try:
            sc = load_scenario(path)
        except ScenarioError as exc:
            assert str(exc).startswith(str(path)) or str(path) in str(exc)
            return
        assert isinstance(sc, Scenario)


@settings(max_examples=examples(60))
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_loading_any_bytes_raises_only_scenario_error(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        path.write_bytes(raw)
        try:
            load_scenario(path)
        except ScenarioError:
            pass


# --------------------------------------------------------------------------- --set
@settings(max_examples=examples(60))
@given(text=st.text(max_size=60))
def test_set_option_parsing_raises_only_scenario_error(text):
    try:
        key, _ = parse_set_option(text)
    except ScenarioError:
        return
    assert key and "=" in text


@settings(max_examples=examples(60))
@given(key=st.sampled_from(LEAF_KEYS),
       value=st.one_of(st.integers(-(2**63), 2**63), st.booleans(),
                       st.floats(allow_nan=False, allow_infinity=False)))
def test_set_option_round_trips_scalars(key, value):
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    assert parse_set_option(f"{key}={text}") == (key, value)


@settings(max_examples=examples(60))
@given(key=st.one_of(st.sampled_from(LEAF_KEYS), st.text(max_size=20)), value=any_value())
def test_any_override_raises_only_scenario_error(key, value):
    try:
        load_scenario(None, {**SMALL, key: value})
    except ScenarioError:
        pass


# --------------------------------------------------------------------------- experiment specs
TINY_SET = {"city.width": 12, "city.height": 12, "city.population": 4000, "admin.townships": 2,
            "admin.communities": 3, "grids.count": 8}
RANGE_KEYS = [p.key for p in PARAMS if _scalar_kind(p.field.annotation)[0] in (int, float)
              and not _scalar_kind(p.field.annotation)[1]]


def small_or_huge(lo: int = -2, hi: int = 6) -> st.SearchStrategy:
    return st.one_of(st.integers(lo, hi), st.integers(10**5, 10**13), any_value())


@st.composite
def experiment_spec(draw) -> dict:
    factors: dict[Any, Any] = {}
    for key in draw(st.lists(st.sampled_from(RANGE_KEYS), max_size=3, unique=True)):
        p = next(q for q in PARAMS if q.key == key)
        factors[key] = draw(st.one_of(
            st.lists(value_in_bounds(p), min_size=1, max_size=3),
            st.fixed_dictionaries({"low": st.one_of(value_in_bounds(p), st.floats()),
                                   "high": st.one_of(value_in_bounds(p), st.floats())}),
            any_value()))
    design = {"kind": draw(st.sampled_from(["full_factorial", "latin_hypercube", "sobol",
                                            "morris", "other"]))}
    for k in ("samples", "base_samples", "trajectories", "levels"):
        if draw(st.booleans()):
            design[k] = draw(st.one_of(st.sampled_from([2, 4, 8]), small_or_huge()))
    spec = {"name": draw(st.one_of(st.just("x"), st.text(max_size=12))),
            "scenarios": [{"label": "a", "scenario": draw(st.sampled_from(
                ["default.yaml", "nowhere.yaml", "", "../experiments/grid_count_sweep.yaml"])),
                "set": draw(st.one_of(st.just(TINY_SET), any_value()))}],
            "factors": factors, "design": design,
            "replications": draw(small_or_huge(0, 3)), "seed": draw(small_or_huge(-1, 5)),
            "days": draw(st.one_of(st.integers(0, 30), any_value())),
            "warmup_days": draw(st.one_of(st.integers(0, 5), any_value()))}
    for k in list(spec):
        if k != "scenarios" and draw(st.integers(0, 9)) == 0:
            del spec[k]
    if draw(st.booleans()):
        spec.update(draw(st.dictionaries(st.text(max_size=8), any_value(), max_size=2)))
    return spec


@settings(max_examples=examples(40))
@given(raw=st.one_of(experiment_spec(), any_value()))
def test_experiment_spec_raises_only_experiment_error(raw):
    try:
        exp = build_experiment(raw if isinstance(raw, dict) else {"x": raw}, "spec.yaml",
                               base_dir=Path(__file__).resolve().parent.parent / "scenarios")
    except ExperimentError as exc:
        assert "spec.yaml" in str(exc)
        return
    assert exp.n_runs >= 1


# --------------------------------------------------------------------------- runs
MODEL_PARAMS = [p for p in PARAMS if p.key not in ("name", "description", "days", "warmup_days")]


@st.composite
def small_scenario_overrides(draw) -> dict:
    chosen = draw(st.lists(st.sampled_from(MODEL_PARAMS), min_size=1, max_size=5,
                           unique_by=lambda p: p.key))
    return {**SMALL, **{p.key: draw(value_in_bounds(p)) for p in chosen}}


@settings(max_examples=examples(25))
@given(overrides=small_scenario_overrides(), seed=st.integers(0, 2**32))
def test_any_valid_scenario_builds_and_runs_three_days(overrides, seed):
    from sim.model import GovernanceModel

    try:
        scenario = load_scenario(None, overrides)
    except ScenarioError:
        assume(False)
        return
    model = GovernanceModel(scenario, rng=seed)
    model.run(3)
    assert model.steps == 3
    assert isinstance(model.summary(0), dict)


# --------------------------------------------------------------------------- calibration files
def _calibration_base() -> dict:
    from calibration_parts import tiny_raw  # tests/ is on sys.path under pytest

    return tiny_raw({"survey_share_safe": 0.8, "mediation_success_rate": 0.75})


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested dict/list (leaves and inner nodes)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


CALIBRATION_PATHS = _paths(_calibration_base())


@st.composite
def mutated_calibration(draw) -> dict:
    """The tiny calibration file with a few keys replaced by anything (or removed), plus
    stray keys."""
    import copy

    raw = copy.deepcopy(_calibration_base())
    for path in draw(st.lists(st.sampled_from(CALIBRATION_PATHS), min_size=1, max_size=3)):
        node = raw
        try:
            for k in path[:-1]:
                node = node[k]
            if draw(st.integers(0, 5)) == 0 and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(st.one_of(any_value(), st.floats(-1e3, 1e3), st.just(0),
                                                st.just(-1), st.text(max_size=20)))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the parent
    if draw(st.integers(0, 4)) == 0:
        raw.update(draw(st.dictionaries(st.text(max_size=8), any_value(), max_size=2)))
    return raw


@settings(max_examples=examples(40))
@given(raw=st.one_of(mutated_calibration(), any_value()))
def test_calibration_file_raises_only_calibration_error(raw):
    """A calibration file, however malformed, is refused with CalibrationError naming the
    file (``govsim calibrate`` exits 2), never with another exception."""
    from sim.calibration import CalibrationError, build_calibration

    try:
        cal = build_calibration(raw if isinstance(raw, dict) else {"x": raw}, "cal.yaml")
    except CalibrationError as exc:
        assert "cal.yaml" in str(exc)
        return
    assert cal.fit_targets() and cal.parameters
