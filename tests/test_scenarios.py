"""Scenario files: every shipped file loads and runs; bad files fail early and clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim import GovernanceModel, ScenarioError, load_scenario
from sim.scenario import SCENARIO_DIR

SCENARIOS = sorted(SCENARIO_DIR.glob("*.yaml"))


def test_there_are_scenarios():
    names = {p.stem for p in SCENARIOS}
    assert {"default", "pingxiang_pre_reform", "pingxiang_reform", "anyuan_fusion"} <= names
    assert len([n for n in names if n.startswith("lever_")]) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_loads_and_runs(path):
    scenario = load_scenario(path)
    model = GovernanceModel(scenario, rng=7)
    model.run(3)
    ts = model.timeseries()
    assert len(ts) == 3
    assert ts["occurred"].sum() > 0
    assert model.city.n_grids == scenario.grids.count
    assert int(model.city.population.sum()) == scenario.city.population


def test_pingxiang_presets_match_the_reference_figures():
    pre = load_scenario("pingxiang_pre_reform")
    post = load_scenario("pingxiang_reform")
    assert pre.city.population == post.city.population == 1_804_805
    assert (pre.grids.count, post.grids.count) == (3961, 3172)
    assert (pre.paperwork.forms, post.paperwork.forms) == (118, 49)
    assert (pre.fusion.enabled, post.fusion.enabled) == (False, True)
    assert (pre.channels.snap_report.enabled, post.channels.snap_report.enabled) == (False, True)
    assert pre.admin.counties == 5
    # each lever file differs from the pre-reform city in exactly its lever's section(s)
    base = pre.to_dict()
    for path in SCENARIO_DIR.glob("lever_*.yaml"):
        lever = load_scenario(path).to_dict()
        changed = {k for k in base if k not in ("name", "description") and base[k] != lever[k]}
        if path.stem == "lever_regrid":
            # re-drawing the grids with the same staff: the grid workers' total is pinned to
            # the pre-reform staff (one per pre-reform grid)
            assert changed == {"grids", "grid_workers"}, changed
            assert lever["grid_workers"]["total"] == pre.grid_workers.per_grid * pre.grids.count
            continue
        assert len(changed) == 1, (path.name, changed)


def test_extends_merges_deeply_and_overrides_apply():
    s = load_scenario("pingxiang_reform", {"grids.count": 3000, "incidents.hazard.base_rate": 70})
    assert s.grids.count == 3000
    assert s.incidents.hazard.base_rate == 70
    assert s.incidents.hazard.latent is True          # untouched sibling keys survive
    assert s.city.population == 1_804_805              # inherited from the parent


# --------------------------------------------------------------------------- bad files
BAD_FILES = {
    "syntax": ("name: x\ncity: {width: 10\n", ["YAML syntax error", "line"]),
    "unknown_key": ("grids:\n  cuont: 10\n", ["grids.cuont", "unknown key", "count", "area_weight"]),
    "out_of_range": ("grids:\n  count: -3\n", ["grids.count", "-3", "greater than or equal to 1"]),
    "wrong_type": ("police:\n  officers: many\n", ["police.officers", "'many'", "valid integer"]),
    "bad_choice": ("police:\n  strategy: psychic\n", ["police.strategy", "psychic", "random", "hotspot"]),
    "missing_extends": ("extends: no_such_parent.yaml\n", ["extends", "no_such_parent"]),
    "shares": ("city:\n  rural_share: 0.9\n", ["city", "add up to 1"]),
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_raises_with_file_key_and_allowed(tmp_path, kind):
    text, needles = BAD_FILES[kind]
    path = _write(tmp_path, kind, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_extends_cycle_is_reported(tmp_path):
    _write(tmp_path, "a", "extends: b.yaml\n")
    b = _write(tmp_path, "b", "extends: a.yaml\n")
    with pytest.raises(ScenarioError, match="cycle of extends: b.yaml -> a.yaml -> b.yaml"):
        load_scenario(b)


def test_bad_override_names_valid_keys():
    with pytest.raises(ScenarioError, match="valid keys are: .*count"):
        load_scenario("default", {"grids.cout": 3})
    with pytest.raises(ScenarioError, match="grids.count"):
        load_scenario("default", {"grids.count": 10**7})


def test_scenario_is_frozen():
    s = load_scenario("default")
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        s.grids.count = 5  # type: ignore[misc]


def _govsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("kind", sorted(BAD_FILES) + ["cycle", "bad_set"])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, kind):
    if kind == "cycle":
        _write(tmp_path, "a", "extends: cycle.yaml\n")
        path = _write(tmp_path, "cycle", "extends: a.yaml\n")
        extra: list[str] = []
    elif kind == "bad_set":
        path = SCENARIO_DIR / "default.yaml"
        extra = ["--set", "grids.count=zero"]
    else:
        path = _write(tmp_path, kind, BAD_FILES[kind][0])
        extra = []
    out = tmp_path / "out"
    proc = _govsim("run", str(path), "--days", "2", "--out", str(out), *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr
    assert not out.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_cli_refuses_to_overwrite_results(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    proc = _govsim("run", "default", "--days", "2", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
    assert (out / "keep.txt").read_text() == "precious"
