"""sim.analysis.plots on real result files: every plot labels itself, intervals are over runs, PNGs carry
their metadata, and ``plot_command`` (``govsim plot``) fits each kind to the right directory."""

from __future__ import annotations

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from analysis_data import make_compare, make_levers, make_run, make_sobol
from PIL import Image
from scipy import stats

import sim.analysis.plots as plots
from sim import outcomes
from sim.analysis import maps
from sim.analysis.compare import attribute, compare
from sim.batch.results import load


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("plots")
    return {"run": make_run(base / "run"), "cmp": make_compare(base / "cmp"),
            "lev": make_levers(base / "lev"), "sob": make_sobol(base / "sob")}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labelled(ax, *, title: bool = True, legend: bool = False) -> None:
    assert ax.get_xlabel().strip(), "x axis has no label"
    assert ax.get_ylabel().strip(), "y axis has no label"
    if title:
        assert ax.get_title().strip(), "no title"
    if legend:
        assert ax.get_legend() is not None, "no legend"


def _non_blank(path) -> None:
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].var()) > 1e-3, f"{path} looks blank"


# --------------------------------------------------------------------------- timeseries
def test_timeseries_single_run(dirs):
    res = load(dirs["run"])
    ax = plots.timeseries(res, "closure_rate")
    _labelled(ax, legend=True)
    assert ax.get_xlabel() == "Day"
    assert "Official closure rate" in ax.get_ylabel() and "%" in ax.get_ylabel()
    assert "1 run" in ax.get_legend().get_texts()[0].get_text()


def test_timeseries_band_is_a_t_interval_over_runs_and_ignores_repeated_rows(dirs):
    res = load(dirs["cmp"])
    ts = res.timeseries
    ax = plots.timeseries(ts, "backlog")
    _labelled(ax, legend=True)
    bands = [c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(bands) == 2  # one per scenario
    # the band of scenario 1 on day 20 is the t-interval of the 3 runs' values on that day
    scen = ts["scenario"].iloc[0]  # lines follow the scenarios' order of appearance
    vals = ts[(ts["scenario"] == scen) & (ts["day"] == 20)]["backlog"].to_numpy(float)
    assert len(vals) == 3
    half = stats.t.ppf(0.975, 2) * vals.std(ddof=1) / np.sqrt(3)
    verts = bands[0].get_paths()[0].vertices
    at20 = verts[np.isclose(verts[:, 0], 20)][:, 1]
    assert np.allclose(min(at20), vals.mean() - half) and np.allclose(max(at20), vals.mean() + half)
    # repeating every row must not narrow the interval (intervals are over runs, not rows)
    plt.close("all")
    ax2 = plots.timeseries(pd.concat([ts, ts], ignore_index=True), "backlog")
    bands2 = [c for c in ax2.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert np.allclose(bands2[0].get_paths()[0].vertices, verts)


def test_timeseries_survey_uses_only_survey_days(dirs):
    res = load(dirs["run"])
    ax = plots.timeseries(res, "survey_share_safe")
    _labelled(ax, legend=True)
    days = set(res.timeseries.loc[res.timeseries["survey_share_safe"].notna(), "day"])
    xs = {float(x) for line in ax.get_lines() for x in np.atleast_1d(line.get_xdata()) if len(np.atleast_1d(line.get_xdata()))}
    assert xs and xs <= {float(d) for d in days}
    assert "Wilson" in ax.get_title()


def test_timeseries_unknown_outcome(dirs):
    with pytest.raises(ValueError, match="no column 'nope'"):
        plots.timeseries(load(dirs["run"]), "nope")


# --------------------------------------------------------------------------- forest
def test_forest_all_outcomes_scaled_and_one_outcome_in_units(dirs):
    res = load(dirs["cmp"])
    comp = compare(res)
    ax = plots.forest(comp)
    _labelled(ax)
    base_mean = comp[comp["scenario"] == comp["baseline"]].set_index("outcome")["mean"]
    rows = comp[comp["scenario"] != comp["baseline"]]
    shown = rows[np.isfinite(rows["diff"]) & (rows["outcome"].map(base_mean).abs() > 0)]
    assert len(ax.get_yticklabels()) == len(shown)
    starred = {t.get_text().rstrip(" *") for t in ax.get_yticklabels() if t.get_text().endswith("*")}
    assert starred == {outcomes.label(o) for o in shown.loc[shown["distinguishable"], "outcome"]}
    assert "% of the baseline mean" in ax.get_xlabel()
    assert ax.get_legend() is not None
    assert any(line.get_xdata()[0] == 0 for line in ax.get_lines() if len(line.get_xdata()) == 2
               and line.get_linestyle() == "--")  # the zero line
    plt.close("all")
    ax = plots.forest(comp, outcome="closure_rate")
    _labelled(ax)
    assert "percentage points" in ax.get_xlabel()
    assert [t.get_text().rstrip(" *") for t in ax.get_yticklabels()] == ["default"]
    plt.close("all")
    ax = plots.forest(comp, outcome="time_to_resolution_median_h")
    assert "hours" in ax.get_xlabel()


def test_forest_needs_two_scenarios(dirs):
    comp = compare(load(dirs["cmp"]))
    with pytest.raises(ValueError, match=">= 2 scenarios"):
        plots.forest(comp[comp["scenario"] == comp["baseline"]])


# --------------------------------------------------------------------------- ECDF
@pytest.mark.parametrize("by", ["first_channel", "route"])
def test_resolution_ecdf(dirs, by):
    res = load(dirs["run"])
    ax = plots.resolution_ecdf(res, by=by)
    _labelled(ax, legend=True)
    assert ax.get_xscale() == "log"
    assert "hours" in ax.get_xlabel()
    inc = res.incidents
    sel = (inc["state"].astype(str) == "resolved") & (inc["t_occurred"] >= 10)
    n = sum(int(t.get_text().split("n=")[1].split(",")[0].replace(",", "")) for t in ax.get_legend().get_texts())
    assert n == int(sel.sum())
    ys = np.concatenate([line.get_ydata() for line in ax.get_lines() if len(line.get_ydata()) > 2])
    assert ys.min() >= 0 and ys.max() == pytest.approx(1.0)


# --------------------------------------------------------------------------- map
def test_city_map(dirs):
    res = load(dirs["run"])
    ax = plots.city_map(res.cells, "perceived_safety")
    _labelled(ax)
    img = ax.get_images()[0].get_array()
    assert img.shape == (16, 16)
    assert any(type(c).__name__ == "LineCollection" for c in ax.collections)  # grid boundaries
    cbar_label = ax.figure.axes[-1].get_ylabel()
    assert "Perceived safety" in cbar_label
    plt.close("all")
    ax = plots.city_map(res, "incidents", boundaries=("grid", "township"))
    assert len([c for c in ax.collections if type(c).__name__ == "LineCollection"]) == 2
    assert "Incidents" in ax.figure.axes[-1].get_ylabel()
    assert "250 m" in ax.get_xlabel()
    with pytest.raises(ValueError, match="no column 'nope'"):
        plots.city_map(res.cells, "nope")


def test_boundaries_are_drawn_where_labels_change():
    labels = np.array([[0, 0, 1], [0, 2, 1]])
    segs = maps._boundary_segments(labels)
    # vertical: (0,1)|(0,2) at x=1.5 row 0; (1,0)|(1,1) at x=0.5 row 1; (1,1)|(1,2) at x=1.5 row 1
    # horizontal: (0,1)|(1,1) below cell x=1 (0 vs 2)
    assert len(segs) == 4


# --------------------------------------------------------------------------- factor response
def test_factor_response_levers_and_sampled_factor(dirs):
    res = load(dirs["lev"])
    ax = plots.factor_response(res, "fusion", "closure_rate")
    _labelled(ax, legend=True)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert any("enabled=false" in t for t in ticks) and any("enabled=true" in t for t in ticks)
    assert "%" in ax.get_ylabel()
    plt.close("all")
    ax = plots.factor_response(load(dirs["sob"]).runs, "paperwork.forms", "worker_utilisation")
    _labelled(ax, legend=True)
    assert ax.get_xlabel() == "paperwork.forms"
    with pytest.raises(ValueError, match="no factor column"):
        plots.factor_response(res, "nope", "closure_rate")


# --------------------------------------------------------------------------- sensitivity
def test_sensitivity_bars_sobol(dirs):
    frame = pd.read_parquet(dirs["sob"] / "analysis" / "sobol.parquet")
    ax = plots.sensitivity_bars(frame)
    _labelled(ax, legend=True)
    assert "Sobol" in ax.get_title() and "Sobol" in ax.get_xlabel()
    texts = [t.get_text() for t in ax.get_yticklabels()]
    assert "police.officers" in texts and "Official closure rate" in texts
    plt.close("all")
    ax = plots.sensitivity_bars(frame, outcome="closure_rate")
    assert len(ax.get_yticklabels()) == 3  # one row per factor, no header


def test_sensitivity_bars_morris_detected_from_columns():
    frame = pd.DataFrame({"scenario": "s", "outcome": ["harm"] * 2 + ["closure_rate"] * 2,
                          "factor": ["a", "b"] * 2, "mu": [1.0, -2, 0.1, 0.2], "mu_star": [1.0, 2.0, 0.1, 0.2],
                          "mu_star_conf": [0.2, 0.5, 0.05, 0.05], "sigma": [0.5, 1.0, 0.1, 0.1], "note": ""})
    ax = plots.sensitivity_bars(frame)
    _labelled(ax, legend=True)
    assert "Morris" in ax.get_title() and "scaled" in ax.get_xlabel()
    plt.close("all")
    ax = plots.sensitivity_bars(frame, outcome="harm")
    assert "people harmed" in ax.get_xlabel()
    with pytest.raises(ValueError, match="Sobol"):
        plots.sensitivity_bars(pd.DataFrame({"x": [1]}))


# --------------------------------------------------------------------------- attribution
def test_attribution_waterfall(dirs):
    res = load(dirs["lev"])
    att = attribute(res)
    ax = plots.attribution_waterfall(att, "worker_utilisation")
    _labelled(ax, legend=True)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[1:3] == ["fusion", "paperwork"] and ticks[0].startswith("before") and ticks[-1].startswith("after")
    assert "Shapley" in ax.get_title()
    # bars: before, each lever from the running total, after; the steps add up to after
    before, lev1, lev2, after = ax.patches[:4]
    assert before.get_height() + lev1.get_height() + lev2.get_height() == pytest.approx(after.get_height())
    with pytest.raises(ValueError, match="not in the attribution"):
        plots.attribution_waterfall(att, "nope")


# --------------------------------------------------------------------------- save
def test_save_writes_a_non_blank_png_with_metadata(dirs, tmp_path):
    res = load(dirs["run"])
    ax = plots.timeseries(res, "backlog")
    path = plots.save(ax, tmp_path / "sub" / "ts.png", plots.plot_metadata(res, Outcome="backlog"))
    _non_blank(path)
    text = Image.open(path).text
    meta = res.metadata
    assert text["Commit"].startswith(str(meta["git"]["commit"]))
    assert text["Seed"] == "3"
    assert text["Scenario"] == "default"
    assert text["Version"] == meta["versions"]["govsim"]
    assert text["Outcome"] == "backlog"
    assert text["Software"].startswith("govsim")
    with pytest.raises(ValueError, match="PNG"):
        plots.save(ax, tmp_path / "x.pdf", {})


def test_plot_metadata_of_an_experiment(dirs):
    text = plots.plot_metadata(load(dirs["lev"]))
    assert text["Experiment"] == "levers" and text["Seed"] == "5" and text["Replications"] == "3"


# --------------------------------------------------------------------------- govsim plot
@pytest.mark.parametrize("kind,which,outcome,name", [
    ("timeseries", "run", None, "timeseries-closure_rate.png"),
    ("timeseries", "cmp", "survey_share_safe", "timeseries-survey_share_safe.png"),
    ("forest", "cmp", None, "forest-all.png"),
    ("forest", "cmp", "true_resolution_rate", "forest-true_resolution_rate.png"),
    ("ecdf", "run", None, "ecdf-first_channel.png"),
    ("ecdf", "run", "route", "ecdf-route.png"),
    ("map", "run", None, "map-perceived_safety.png"),
    ("map", "run", "backlog", "map-backlog.png"),
    ("factor", "lev", None, "factor-closure_rate.png"),
    ("factor", "sob", "worker_utilisation", "factor-worker_utilisation.png"),
    ("sensitivity", "sob", None, "sensitivity-all.png"),
    ("attribution", "lev", None, "attribution-closure_rate.png"),
])
def test_plot_command_each_kind(dirs, kind, which, outcome, name):
    path = plots.plot_command(dirs[which], kind, outcome=outcome)
    assert path == dirs[which] / "plots" / name
    _non_blank(path)
    text = Image.open(path).text
    assert text["Plot"] == kind and "Commit" in text and "Version" in text


def test_plot_command_out(dirs, tmp_path):
    out = tmp_path / "mine.png"
    assert plots.plot_command(dirs["run"], "map", "population", out=out) == out
    _non_blank(out)


@pytest.mark.parametrize("which,kind,outcome,message", [
    ("cmp", "map", None, "cells.parquet"),
    ("run", "forest", None, ">= 2 scenarios"),
    ("lev", "sensitivity", None, "not a sensitivity experiment"),
    ("run", "attribution", None, "no levers"),
    ("run", "factor", None, "swept no factor"),
    ("sob", "timeseries", None, "no timeseries.parquet"),
    ("cmp", "ecdf", None, "no incidents.parquet"),
    ("run", "timeseries", "harm_total", "not a daily metric"),
    ("run", "pie", None, "unknown plot kind 'pie'"),
])
def test_plot_command_explains_a_kind_that_does_not_fit(dirs, which, kind, outcome, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_command(dirs[which], kind, outcome=outcome)
    assert not (dirs[which] / "plots" / f"{kind}-{outcome}.png").exists()


def test_plot_command_asks_for_analyze_first(dirs, tmp_path):
    import shutil

    d = tmp_path / "sob"
    shutil.copytree(dirs["sob"], d)
    shutil.rmtree(d / "analysis")
    with pytest.raises(ValueError, match="govsim experiment analyze"):
        plots.plot_command(d, "sensitivity")


def test_plot_command_not_a_results_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a results directory"):
        plots.plot_command(tmp_path, "timeseries")


def _cli_has(command: str) -> bool:
    import argparse

    from sim.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return command in sub.choices


def test_govsim_plot_command_line(dirs, tmp_path, capsys):
    if not _cli_has("plot"):
        pytest.skip("`govsim plot` is not wired into sim/cli.py yet")
    from sim.cli import main

    out = tmp_path / "cli.png"
    assert main(["plot", str(dirs["cmp"]), "--kind", "forest", "--outcome", "closure_rate", "--out", str(out)]) == 0
    _non_blank(out)
    assert main(["plot", str(dirs["run"]), "--kind", "timeseries"]) == 0
    assert (dirs["run"] / "plots" / "timeseries-closure_rate.png").is_file()
    capsys.readouterr()
    assert main(["plot", str(dirs["cmp"]), "--kind", "map"]) == 2  # a kind that does not fit: exit 2
    assert "cells.parquet" in capsys.readouterr().err
