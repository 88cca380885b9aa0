"""Calibration (sim.calibration): the file's checks, the pieces against known answers, the
synthetic problem whose true parameters are known, and resume after kill -9.

The synthetic problem (tests/calibration_parts.py): targets made by running the model at known
parameter values (another seed than the calibration's, so the data carry their own noise);
the ensemble's 90% intervals must contain the truth for the identifiable parameters and the
inert parameter must be reported as not identifiable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from calibration_parts import TRUTH, observed, tiny_raw

from sim.calibration import CalibrationError, build_calibration, run_calibration
from sim.calibration.emulator import Emulator, max_implausibility, maximin_subset
from sim.calibration.results import load
from sim.calibration.spec import load_calibration
from sim.calibration.targets import distance, ess, point_means, target_values, weighted_quantile
from sim.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def obs() -> dict[str, float]:
    return observed()


def _raw(**changes):
    raw = tiny_raw({"survey_share_safe": 0.8, "mediation_success_rate": 0.75})
    for key, value in changes.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value
    return raw


# --------------------------------------------------------------------------- bad files
BAD = [
    ("unknown parameter key", {"parameters.drone_detect.keys": ["channels.drone.nope"]},
     "parameters.drone_detect.keys", "channels.drone.nope"),
    ("empty range", {"parameters.survey_threshold.low": 0.9, "parameters.survey_threshold.high": 0.9},
     "parameters.survey_threshold", "empty range"),
    ("reversed range", {"parameters.survey_threshold.low": 0.95, "parameters.survey_threshold.high": 0.7},
     "parameters.survey_threshold", "low (0.95) must be less than high"),
    ("unknown outcome", {"targets.0.outcome": "happiness"}, "targets.0.outcome", "happiness"),
    ("zero uncertainty", {"targets.1.sd": 0}, "targets.1.sd", "greater than 0"),
    ("negative uncertainty", {"targets.0.sd": -0.01}, "targets.0.sd", "greater than 0"),
    ("negative discrepancy", {"targets.0.discrepancy": -1}, "targets.0.discrepancy", ""),
    ("unknown scenario label", {"targets.0.scenario": "elsewhere"}, "targets.0", "elsewhere"),
    ("log prior at zero", {"parameters.drone_detect.scale": "log", "parameters.drone_detect.low": 0.0},
     "parameters.drone_detect.low", "low > 0"),
    ("not a number", {"parameters.drone_detect.keys": ["channels.drone.enabled"]},
     "parameters.drone_detect.keys", "not a number"),
    ("invalid at a corner", {"parameters.dispute_success.high": 1.5},
     "parameters", "Narrow the range"),
    ("unknown method key", {"method.abc": {"particles": 10, "speed": 3}}, "method.abc.speed", ""),
    ("no fit target", {"targets.0.role": "holdout", "targets.1.role": "check"}, "targets", "nothing is fitted"),
    ("bool as a number", {"targets.0.value": True}, "targets.0.value", ""),
]


@pytest.mark.parametrize(("what", "changes", "key", "text"), BAD, ids=[b[0] for b in BAD])
def test_bad_calibration_file_exits_2_naming_the_key_before_any_run(tmp_path, capsys, what,
                                                                    changes, key, text):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_raw(**changes)))
    out = tmp_path / "out"
    assert main(["calibrate", str(path), "--out", str(out), "--workers", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert key in err and str(path.name) in err, err
    assert text in err, err
    assert not out.exists()  # nothing written, no model run


def test_a_key_claimed_by_two_parameters_is_refused():
    raw = _raw()
    raw["parameters"]["again"] = {"keys": ["safety.survey_safe_threshold"], "low": 0.6, "high": 0.7}
    with pytest.raises(CalibrationError, match="already set by parameter 'survey_threshold'"):
        build_calibration(raw, "x")


def test_unknown_calibration_name_lists_the_shipped_ones(capsys):
    assert main(["calibrate", "atlantis"]) == 2
    assert "pingxiang" in capsys.readouterr().err


def test_the_shipped_calibration_loads_and_holds_out_the_reform_effects():
    cal = load_calibration("pingxiang")
    fit = {t.name for t in cal.fit_targets()}
    holdout = {t.name for t in cal.targets if t.spec.role == "holdout"}
    assert {"anyuan_minor_cases_change", "anyuan_clearance_change", "closure_after_reform"} <= holdout
    # the fit uses only scenarios before the reform
    assert set(cal.labels_for(cal.fit_targets())) == {"pre", "anyuan_pre"}
    assert fit and not fit & holdout
    assert all(t.spec.source for t in cal.targets)


# --------------------------------------------------------------------------- the pieces
def test_parameter_scales_round_trip_and_multiply_uses_each_scenarios_own_value():
    raw = _raw()
    raw["parameters"]["volume"] = {"keys": ["incidents.dispute.base_rate", "incidents.welfare.base_rate"],
                                   "mode": "multiply", "low": 0.5, "high": 2.0, "scale": "log"}
    cal = build_calibration(raw, "x")
    p = cal.parameter("volume")
    assert p.from_unit(0.5) == pytest.approx(1.0)  # geometric midpoint of [0.5, 2]
    x = np.array([0.5, 0.9, 1.7])
    assert np.allclose(p.from_unit(p.to_unit(x)), x)
    sc = cal.base["district"]
    ov = cal.apply(sc, {"volume": 2.0, "survey_threshold": 0.8})
    assert ov["incidents.dispute.base_rate"] == pytest.approx(2 * sc.get("incidents.dispute.base_rate"))
    assert ov["incidents.welfare.base_rate"] == pytest.approx(2 * sc.get("incidents.welfare.base_rate"))
    assert ov["safety.survey_safe_threshold"] == 0.8


def _runs() -> pd.DataFrame:
    rows = []
    for pid in range(2):
        for r in range(2):
            for lab, base in (("a", 100.0), ("b", 80.0)):
                rows.append({"point_id": pid, "replication": r, "scenario": lab, "status": "done",
                             "incidents_recorded": base + 10 * pid + r, "population": 1000,
                             "closure_rate": 0.5 + 0.1 * pid + (0.1 if lab == "b" else 0)})
    return pd.DataFrame(rows)


def test_target_values_level_difference_relative_change_and_per_resident_year():
    raw = _raw()
    raw["scenarios"]["other"] = dict(raw["scenarios"]["district"])
    raw["targets"] = [
        {"name": "lvl", "scenario": "district", "outcome": "closure_rate", "value": 0.5, "sd": 0.1},
        {"name": "diff", "scenarios": ["district", "other"], "kind": "difference",
         "outcome": "closure_rate", "value": 0.1, "sd": 0.1},
        {"name": "rel", "scenarios": ["district", "other"], "kind": "relative_change",
         "outcome": "incidents_recorded", "value": -0.2, "sd": 0.1},
        {"name": "per", "scenario": "district", "outcome": "incidents_recorded",
         "per": "resident_year", "value": 0.4, "sd": 0.1},
    ]
    cal = build_calibration(raw, "x")
    runs = _runs().replace({"scenario": {"a": "district", "b": "other"}})
    v = target_values(runs, cal.targets, days=120, warmup_days=30)  # 90 days = 90/365 years
    assert v.loc[(1, 1), "lvl"] == pytest.approx(0.6)
    assert v.loc[(0, 0), "diff"] == pytest.approx(0.1)
    assert v.loc[(1, 0), "rel"] == pytest.approx(90 / 110 - 1)
    assert v.loc[(0, 1), "per"] == pytest.approx(101 / (1000 * 90 / 365))
    # a failed run makes its point's targets undefined, and the point mean too
    runs.loc[(runs.point_id == 1) & (runs.replication == 0) & (runs.scenario == "other"), "status"] = "failed"
    v = target_values(runs, cal.targets, days=120, warmup_days=30)
    assert np.isnan(v.loc[(1, 0), "diff"]) and v.loc[(1, 0), "lvl"] == pytest.approx(0.6)
    means = point_means(v)
    assert np.isnan(means.loc[1, "diff"]) and means.loc[0, "diff"] == pytest.approx(0.1)


def test_distance_weighted_quantile_and_ess():
    cal = build_calibration(_raw(), "x")
    t = cal.fit_targets()
    z = np.array([[0.8, 0.75], [0.8 + 0.01, 0.75 - 0.03], [np.nan, 0.75]])
    d = distance(z, t)
    assert d[0] == 0 and d[1] == pytest.approx(np.sqrt((1 + 1) / 2)) and np.isinf(d[2])
    x = np.array([1.0, 2.0, 3.0])
    w = np.array([1, 2, 1])
    assert weighted_quantile(x, 0.5, w) == pytest.approx(np.quantile(np.repeat(x, w), 0.5,
                                                                     method="inverted_cdf"))
    assert ess(np.ones(10)) == pytest.approx(10) and ess(np.array([1.0, 0, 0])) == pytest.approx(1)


def test_emulator_learns_a_known_function_and_finds_its_root():
    """y = sin(3 x1) + 0.5 x2 with noise sd 0.02: cross-validated R^2 near 1, the held-out
    errors within 2 sd in about 95% of points, and the implausibility of the true inputs of an
    observation small, of far ones large."""
    rng = np.random.default_rng(1)
    X = rng.random((60, 2))
    y = np.sin(3 * X[:, 0]) + 0.5 * X[:, 1] + rng.normal(0, 0.02, 60)
    em = Emulator(["y"], seed=0).fit(X, y[:, None])
    diag = em.diagnostics()[0]
    assert diag["cv_r2"] > 0.98
    assert diag["cv_within_2sd"] >= 0.85  # 95% expected; 60 points: binomial sd ~3%
    assert diag["noise_sd"] == pytest.approx(0.02, rel=0.5)
    truth = np.array([[0.3, 0.6]])
    z = np.array([np.sin(0.9) + 0.3])
    err = np.array([0.02])
    assert max_implausibility([em], truth, z, err)[0] < 2
    assert max_implausibility([em], np.array([[0.9, 0.1]]), z, err)[0] > 10


def test_maximin_subset_spreads_points():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.2, 0.01, (100, 2)), [[0.9, 0.9]]])
    idx = maximin_subset(X, 2, np.random.default_rng(3))
    assert 100 in idx  # the lone far point is always among the first picks


# --------------------------------------------------------------------------- the synthetic problem
@pytest.mark.slow
def test_synthetic_problem_recovers_the_true_parameters_and_flags_the_inert_one(tmp_path, obs):
    cal = build_calibration(tiny_raw(obs, particles=30, generations=3, points=16), "tiny")
    res = load(run_calibration(cal, out=tmp_path / "cal", workers=2))
    ident = res.identifiability.set_index("parameter")
    for name in ("survey_threshold", "dispute_success"):
        row = ident.loc[name]
        assert row["active"] and row["identified"], row
        assert row["posterior_q05"] <= TRUTH[name] <= row["posterior_q95"], (name, row)
    drone = ident.loc["drone_detect"]
    assert not drone["identified"] and "not identifiable" in drone["note"]
    # the fit: every target within tolerance, and the table says where each comes from
    assert res.fit["within"].all(), res.fit
    assert set(res.fit["target"]) == {"survey", "mediation"}
    # the ensemble is weighted and its weights sum to one
    assert res.ensemble["weight"].sum() == pytest.approx(1.0) and len(res.ensemble) >= 5
    # scenarios/calibrated: a complete scenario at the best member, loadable on its own
    from sim.scenario import load_scenario

    best = res.ensemble.loc[res.ensemble["distance"].idxmin()]
    sc = load_scenario(res.path / "scenarios" / "calibrated" / "district.yaml")
    assert sc.get("safety.survey_safe_threshold") == pytest.approx(best["survey_threshold"])
    assert sc.get("city.population") == 20_000
    meta = res.metadata
    assert meta["status"] == "complete" and meta["model_runs"] == sum(s["runs"] for s in meta["stages"])
    assert {"versions", "git", "seed", "spec_hash"} <= set(meta)


def test_the_screening_stage_uses_common_random_numbers_and_later_stages_do_not(tiny_calibration_dir):
    stages = sorted((tiny_calibration_dir / "stages").glob("*-screening"))
    runs = pd.read_parquet(stages[0] / "runs.parquet")
    assert runs["spawn_key"].nunique() == 1  # one seed: elementary effects without the noise
    wave = pd.read_parquet(next((tiny_calibration_dir / "stages").glob("*-wave1")) / "runs.parquet")
    assert wave["spawn_key"].nunique() == len(wave)  # one seed per point


# --------------------------------------------------------------------------- resume after kill -9
def _govsim(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim", *args], cwd=ROOT, text=True,
                            env={**os.environ, "GOVSIM_FLUSH_RUNS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stage_runs(path: Path) -> pd.DataFrame:
    frames = []
    for d in sorted((path / "stages").iterdir()):
        if d.is_dir():
            r = pd.read_parquet(d / "runs.parquet")
            r["stage"] = d.name
            frames.append(r)
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9")
def test_calibration_resumes_after_kill_9_without_losing_or_repeating_runs(tmp_path, obs):
    raw = tiny_raw(obs, particles=8, generations=2, points=8)
    raw["method"]["screening"]["trajectories"] = 2
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(raw))
    ref = tmp_path / "ref"
    assert main(["calibrate", str(spec), "--out", str(ref), "--workers", "1", "--quiet"]) == 0

    out = tmp_path / "killed"
    proc = _govsim("calibrate", str(spec), "--out", str(out), "--workers", "2", "--quiet")
    wave = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # kill in the middle of wave 1
        waves = list((out / "stages").glob("*-wave1/runs/*.parquet")) if (out / "stages").is_dir() else []
        if len(waves) >= 2:
            wave = waves
            break
        time.sleep(0.05)
    assert proc.poll() is None and wave, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "running"  # killed: nothing could write otherwise
    # without --resume the folder is refused; with it the calibration completes
    assert main(["calibrate", str(spec), "--out", str(out), "--workers", "2", "--quiet"]) == 2
    assert main(["calibrate", str(spec), "--out", str(out), "--workers", "2", "--quiet",
                 "--resume"]) == 0
    runs, ref_runs = _stage_runs(out), _stage_runs(ref)
    assert not runs.duplicated(["stage", "run_id"]).any()
    assert len(runs) == len(ref_runs)
    # the same points, seeds and numbers as the uninterrupted serial run
    cols = ["stage", "run_id", "seed", "spawn_key", "survey_share_safe", "mediation_success_rate"]
    pd.testing.assert_frame_equal(runs[cols].sort_values(["stage", "run_id"]).reset_index(drop=True),
                                  ref_runs[cols].sort_values(["stage", "run_id"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "ensemble.parquet"),
                                  pd.read_parquet(ref / "ensemble.parquet"))
