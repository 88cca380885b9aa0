"""Comparisons under parameter uncertainty (sim/calibration/posterior.py, ``govsim compare
--posterior``): the variance split against a hand computation, and the whole path on the tiny
calibration (tests/calibration_parts.py): every scenario at every member, the members'
parameters in the runs, common random numbers, the table, the command line and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from calibration_parts import TINY_SET

from sim.calibration.posterior import TABLE_FILE, format_table, posterior_compare, posterior_table
from sim.calibration.results import load
from sim.calibration.spec import CalibrationError
from sim.calibration.targets import weighted_mean_var
from sim.cli import main

MEMBERS, REPS, DAYS, WARMUP = 3, 2, 60, 10


# --------------------------------------------------------------------------- the table, by hand
def _runs(diffs: dict[int, list[float]], failed: tuple[tuple[int, int], ...] = ()) -> pd.DataFrame:
    """Runs of baseline A and scenario B whose paired harm differences are ``diffs[member]``
    (and a share outcome at a hundredth of them)."""
    rows = []
    for m, ds in diffs.items():
        for r, d in enumerate(ds):
            base = 10.0 + 3 * r + m  # varies by replication and member: pairing must remove it
            status = "failed" if (m, r) in failed else "done"
            rows.append({"scenario": "A", "point_id": m, "replication": r, "status": "done",
                         "harm": base, "closure_rate": 0.5})
            rows.append({"scenario": "B", "point_id": m, "replication": r, "status": status,
                         "harm": base + d, "closure_rate": 0.5 + d / 100})
    return pd.DataFrame(rows)


def test_posterior_table_matches_hand_computation():
    # member 0 (weight 1/4): differences 1, 2, 3 (mean 2, var 1);
    # member 1 (weight 3/4): differences 4, 6, 8 (mean 6, var 4)
    t = posterior_table(_runs({0: [1, 2, 3], 1: [4, 6, 8]}), {0: 0.25, 1: 0.75}, "A",
                        ["harm", "closure_rate"])
    assert list(t["outcome"]) == ["harm", "closure_rate"]
    row = t.set_index("outcome").loc["harm"]
    mu = 0.25 * 2 + 0.75 * 6
    v_raw = 0.25 * (2 - mu) ** 2 + 0.75 * (6 - mu) ** 2
    v_sto = 0.25 * 1 + 0.75 * 4
    v_par = v_raw - v_sto / 3  # Monte Carlo noise of the members' means over 3 replications
    assert row["scenario"] == "B" and row["baseline"] == "A"
    assert row["effect"] == pytest.approx(mu)
    assert row["mean_scenario"] - row["mean_baseline"] == pytest.approx(mu)
    assert row["var_parameter_raw"] == pytest.approx(v_raw)
    assert row["var_stochastic"] == pytest.approx(v_sto)
    assert row["var_parameter"] == pytest.approx(v_par)
    assert row["sd_total"] == pytest.approx(np.sqrt(v_par + v_sto))
    assert row["share_parameter"] == pytest.approx(v_par / (v_par + v_sto))
    assert row["share_stochastic"] == pytest.approx(v_sto / (v_par + v_sto))
    # member means 2 (weight 1/4) and 6 (3/4): the 5% quantile is 2, the 95% is 6
    assert (row["effect_q05"], row["effect_q95"]) == (2, 6)
    # every pair weighs w_m / 3: 1, 2, 3 at 1/12 each, 4, 6, 8 at 1/4 each
    assert (row["predictive_q05"], row["predictive_q95"]) == (1, 8)
    assert (row["members"], row["reps"], row["pairs"]) == (2, 3, 6)
    # the total variance is the weighted variance of all single differences
    pooled = weighted_mean_var(np.array([1, 2, 3, 4, 6, 8]), np.array([1, 1, 1, 3, 3, 3]) / 12)[1]
    assert row["sd_total"] ** 2 == pytest.approx(pooled)
    # a share outcome scales with its values; its shares do not change
    share = t.set_index("outcome").loc["closure_rate"]
    assert share["effect"] == pytest.approx(mu / 100)
    assert share["share_parameter"] == pytest.approx(row["share_parameter"])
    assert format_table(t).row_count == 2


def test_posterior_table_without_parameter_spread_is_all_chance():
    t = posterior_table(_runs({0: [1, 3], 1: [3, 1], 2: [2, 2]}), [0.2, 0.3, 0.5], "A", ["harm"])
    row = t.iloc[0]
    # member means 2, 2, 2: nothing between members; the MC correction is clipped at 0
    assert row["var_parameter_raw"] == pytest.approx(0)
    assert row["var_parameter"] == 0
    assert row["share_parameter"] == 0 and row["share_stochastic"] == 1


def test_posterior_table_leaves_out_failed_runs_and_nan():
    runs = _runs({0: [1, 2, 3], 1: [4, 6, 8]}, failed=((1, 2),))
    runs.loc[(runs["scenario"] == "B") & (runs["point_id"] == 0) & (runs["replication"] == 0),
             "harm"] = np.nan
    row = posterior_table(runs, {0: 0.25, 1: 0.75}, "A", ["harm"]).iloc[0]
    # member 0 keeps 2, 3 (mean 2.5, var 0.5); member 1 keeps 4, 6 (mean 5, var 2)
    assert (row["members"], row["reps"], row["pairs"]) == (2, 2, 4)
    assert row["effect"] == pytest.approx(0.25 * 2.5 + 0.75 * 5)
    assert row["var_stochastic"] == pytest.approx(0.25 * 0.5 + 0.75 * 2)
    # one pair per member: chance cannot be told from the parameters
    one = posterior_table(_runs({0: [1], 1: [5]}), [0.5, 0.5], "A", ["harm"]).iloc[0]
    assert one["effect"] == pytest.approx(3)
    assert np.isnan(one["var_stochastic"]) and np.isnan(one["share_parameter"])


def test_posterior_table_refuses_an_unknown_baseline():
    with pytest.raises(ValueError, match="baseline"):
        posterior_table(_runs({0: [1, 2]}), [1.0], "C")


# --------------------------------------------------------------------------- the whole path
def _nested(dotted: dict) -> dict:
    out: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _scenario_files(folder: Path) -> list[str]:
    """Two scenarios on the tiny calibration's district: ``lo`` (its settings) and ``hi``
    (the same with 60 grids instead of 36)."""
    folder.mkdir(parents=True, exist_ok=True)
    lo = {"name": "lo", "extends": "default.yaml", **_nested(TINY_SET)}
    hi = {"name": "hi", "extends": "lo.yaml", "grids": {"count": 60}}
    for name, data in (("lo", lo), ("hi", hi)):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return [str(folder / "lo.yaml"), str(folder / "hi.yaml")]


@pytest.fixture(scope="module")
def posterior_run(tiny_calibration_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("posterior")
    files = _scenario_files(folder / "scenarios")
    notes: list[str] = []
    out = posterior_compare(files, tiny_calibration_dir, members=MEMBERS, reps=REPS, days=DAYS,
                            warmup=WARMUP, workers=1, out=folder / "out", note=notes.append)
    return {"files": files, "out": out, "notes": notes, "calibration": tiny_calibration_dir}


def test_every_scenario_runs_at_every_member_with_common_seeds(posterior_run):
    out = posterior_run["out"]
    runs = pd.read_parquet(out / "runs.parquet")
    members = load(posterior_run["calibration"]).members(MEMBERS)
    m = len(members)
    assert len(runs) == 2 * m * REPS and (runs["status"] == "done").all()
    assert f"{2 * m * REPS} runs" in posterior_run["notes"][0]
    # replication r has one seed across scenarios and members (common random numbers)
    seeds = runs["seed"].astype(str) + "/" + runs["spawn_key"].astype(str)
    assert (seeds.groupby(runs["replication"]).nunique() == 1).all()
    assert seeds.nunique() == REPS
    # each member's parameter values are in its runs (one column per parameter) ...
    names = load(posterior_run["calibration"]).parameters
    for pid, member in members.iterrows():
        sub = runs[runs["point_id"] == pid]
        for n in names:
            assert np.allclose(sub[n].astype(float), member[n]), (pid, n)
    # ... and in the scenarios they ran: each member's scenario differs from the others'
    assert (runs.groupby("scenario")["scenario_digest"].nunique() == m).all()
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    design = meta["design"]
    assert meta["kind"] == "comparison" and meta["factors"] == names
    assert design["posterior"] == str(Path(posterior_run["calibration"]).resolve())
    assert design["weights"] == pytest.approx(list(members["weight"] / members["weight"].sum()))
    assert len(design["members"]) == m


def test_the_table_splits_each_effect(posterior_run):
    out = posterior_run["out"]
    table = pd.read_parquet(out / f"{TABLE_FILE}.parquet")
    assert (out / f"{TABLE_FILE}.csv").is_file()
    assert set(table["scenario"]) == {"hi"} and set(table["baseline"]) == {"lo"}
    assert (table["reps"] == REPS).all()
    finite = table["share_parameter"].notna()
    assert finite.sum() >= 5
    shares = table.loc[finite, "share_parameter"] + table.loc[finite, "share_stochastic"]
    assert np.allclose(shares, 1.0)
    assert ((table["effect_q05"] <= table["effect"] + 1e-12)
            & (table["effect"] <= table["effect_q95"] + 1e-12)).all()
    # 60 grids instead of 36: less work per grid worker in every member and replication
    util = table.set_index("outcome").loc["worker_utilisation"]
    assert util["effect"] < 0 and util["predictive_q95"] < 0


def test_a_multiply_parameter_multiplies_each_scenarios_own_value(posterior_run, tmp_path):
    # the tiny calibration with its parameter dispute_success moving grids.count by a factor
    cal = tmp_path / "cal"
    shutil.copytree(posterior_run["calibration"], cal, ignore=shutil.ignore_patterns("stages"))
    meta = json.loads((cal / "metadata.json").read_text(encoding="utf-8"))
    meta["spec"]["parameters"]["dispute_success"] = {"keys": ["grids.count"], "mode": "multiply",
                                                     "low": 0.6, "high": 0.95}
    (cal / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    out = posterior_compare(posterior_run["files"], cal, members=2, reps=1, days=20, warmup=5,
                            workers=1, out=tmp_path / "out")
    runs = pd.read_parquet(out / "runs.parquet")
    own = {"lo": 36, "hi": 60}
    expected = [round(own[s] * f) for s, f in zip(runs["scenario"], runs["dispute_success"],
                                                  strict=True)]
    assert list(runs["grids"]) == expected
    assert runs.groupby("point_id")["grids"].nunique().eq(2).all()


def test_cli_prints_the_table_and_resumes(posterior_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps to the terminal's width (80 without one)
    out = posterior_run["out"]
    before = len(pd.read_parquet(out / "runs.parquet"))
    rc = main(["compare", *posterior_run["files"], "--posterior", str(posterior_run["calibration"]),
               "--members", str(MEMBERS), "--reps", str(REPS), "--days", str(DAYS), "--warmup",
               str(WARMUP), "--workers", "1", "--out", str(out), "--resume"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "under parameter uncertainty" in printed and "Grid worker workload" in printed
    assert f"{MEMBERS} posterior member(s)" in printed
    assert len(pd.read_parquet(out / "runs.parquet")) == before  # nothing ran again


def test_cli_refuses_what_is_not_a_finished_calibration(posterior_run, tmp_path, capsys):
    files = posterior_run["files"]
    # a comparison folder, an empty folder, and a calibration that has not finished
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    src = Path(posterior_run["calibration"])
    shutil.copy(src / "ensemble.parquet", unfinished)
    meta = json.loads((src / "metadata.json").read_text(encoding="utf-8"))
    (unfinished / "metadata.json").write_text(json.dumps({**meta, "status": "running"}),
                                              encoding="utf-8")
    (tmp_path / "empty").mkdir()
    for bad, says in ((posterior_run["out"], "not a calibration"),
                      (tmp_path / "empty", "metadata"), (unfinished, "not finished")):
        out = tmp_path / "never"
        rc = main(["compare", *files, "--posterior", str(bad), "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert says in err.replace("\n", " ")
        assert not out.exists()
    with pytest.raises(CalibrationError, match="not finished"):
        posterior_compare(files, unfinished, out=tmp_path / "never")
    assert main(["compare", *files, "--members", "3"]) == 2
    assert "--members needs --posterior" in capsys.readouterr().err
