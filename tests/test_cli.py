"""``govsim run`` end to end: progress, summary, result files that load back."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd

from sim.batch.results import SCHEMA_VERSION, load

SMALL = ["--set", "city.width=16", "--set", "city.height=16", "--set", "city.population=8000",
         "--set", "admin.communities=4", "--set", "grids.count=14", "--set", "police.officers=8",
         "--set", "volunteers.community=1600", "--set", "volunteers.riders=20"]


def test_run_writes_tidy_tables_and_metadata(tmp_path):
    out = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-m", "sim", "run", "default", "--days", "40",
                           "--warmup", "10", "--seed", "11", "--out", str(out), *SMALL],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Official closure rate" in proc.stdout and "Surveyed share feeling safe" in proc.stdout
    r = load(out)
    assert len(r.runs) == 1
    assert len(r.timeseries) == 40 and list(r.timeseries["day"]) == list(range(1, 41))
    assert len(r.incidents) == r.runs.loc[0, "incidents_occurred"] + int(
        (r.incidents["t_occurred"] < 10).sum())
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["seed"]["entropy"] == "11"
    assert meta["scenario"]["grids"]["count"] == 14
    assert {"mesa", "numpy", "pandas", "python"} <= set(meta["versions"])
    assert "commit" in meta["git"]
    # the seed in the metadata reproduces the run exactly
    from sim import GovernanceModel, load_scenario

    m = GovernanceModel(load_scenario(None).model_validate(meta["scenario"]), rng=int(meta["seed"]["entropy"]))
    m.run(40)
    ts = m.timeseries()
    pd.testing.assert_series_equal(ts["occurred"], r.timeseries["occurred"], check_names=False)
    assert np.isclose(m.summary(10)["closure_rate"], r.runs.loc[0, "closure_rate"])
    assert r.runs.loc[0, "closure_rate"] == r.runs.loc[0, "closure_rate"]  # a month after warm-up


def test_quiet_prints_only_the_path(tmp_path):
    out = tmp_path / "q"
    proc = subprocess.run([sys.executable, "-m", "sim", "run", "default", "--days", "3", "--quiet",
                           "--out", str(out), *SMALL], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-c", "import shutil; print(shutil.which('govsim') or '')"],
                          capture_output=True, text=True)
    from pathlib import Path
    exe = Path(sys.executable).parent / "govsim"
    assert exe.exists() or proc.stdout.strip()


def test_compare_prints_paired_table_and_writes_csv(tmp_path):
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "sim", "compare", "default", "district_pre_reform",
                           "--reps", "3", "--days", "25", "--warmup", "5", "--workers", "2",
                           "--out", str(out), *SMALL], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Scenario comparison" in proc.stdout and "(baseline)" in proc.stdout
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["scenario"]) == {"default", "district_pre_reform"}
    runs = load(out).runs
    # replication i shares its seed across the two scenarios (common random numbers)
    seeds = runs.pivot(index="replication", columns="scenario", values="spawn_key")
    assert (seeds["default"] == seeds["district_pre_reform"]).all()


def test_compare_rejects_unknown_baseline(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim", "compare", "default", "district_pre_reform",
                           "--baseline", "nope", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--baseline" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_cli_plot_kinds_match_the_plots_module():
    from sim.cli import PLOT_KINDS
    from sim.analysis.plots import KINDS

    assert tuple(PLOT_KINDS) == tuple(KINDS)


def test_plot_and_report_commands(tmp_path):
    out = tmp_path / "res"
    assert subprocess.run([sys.executable, "-m", "sim", "run", "default", "--days", "12", "--warmup", "2",
                           "--quiet", "--out", str(out), *SMALL], timeout=300).returncode == 0
    proc = subprocess.run([sys.executable, "-m", "sim", "plot", str(out), "--kind", "map",
                           "--out", str(tmp_path / "map.png")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "map.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "sim", "plot", str(out), "--kind", "forest"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "error:" in bad.stderr
    rep = subprocess.run([sys.executable, "-m", "sim", "report", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    assert "data:image/png;base64" in (out / "report.html").read_text()
