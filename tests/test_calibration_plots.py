"""Figures and report of a calibration: sim.analysis.calibration_plots on hand-built tables and on
a real finished calibration (the ``tiny_calibration_dir`` fixture), ``govsim plot`` with the
calibration kinds (and only on a calibration directory), and ``govsim report`` of one."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import sim.analysis.calibration_plots as cp
from sim import outcomes
from sim.analysis import plots
from sim.analysis.report import write_report


@pytest.fixture(scope="module")
def cal(tiny_calibration_dir, tmp_path_factory):
    """A copy of the finished tiny calibration (these tests write plots and reports into it)."""
    d = tmp_path_factory.mktemp("calplots") / "tiny"
    shutil.copytree(tiny_calibration_dir, d)
    return d


@pytest.fixture(scope="module")
def res(cal):
    return cp.load(cal)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _visible(fig):
    return [a for a in fig.axes if a.get_visible()]


def _texts(fig) -> str:
    """Every text of a figure: titles, labels, tick labels, annotations, legends."""
    out = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    return "\n".join(out)


# --------------------------------------------------------------------------- hand-built tables
PARAMS = [
    {"name": "rate", "keys": ["incidents.dispute.base_rate"], "low": 0.5, "high": 2.0,
     "scale": "log", "mode": "multiply", "nominal": 1.0},
    {"name": "share", "keys": ["channels.hotline.report_share"], "low": 0.2, "high": 0.9,
     "scale": "linear", "mode": "set", "nominal": 0.55},
    {"name": "inert", "keys": ["channels.drone.detect_prob"], "low": 0.1, "high": 0.9,
     "scale": "linear", "mode": "set", "nominal": 0.5},
]


def _fit_df() -> pd.DataFrame:
    return pd.DataFrame([
        {"target": "after", "role": "holdout", "kind": "level", "scenarios": "post",
         "outcome": "closure_rate", "observed": 0.99, "sd": 0.005, "discrepancy": 0.0,
         "model_mean": 0.97, "model_q05": 0.96, "model_q95": 0.98, "z": -4.0, "within": False},
        {"target": "closure", "role": "fit", "kind": "level", "scenarios": "pre",
         "outcome": "closure_rate", "observed": 0.80, "sd": 0.03, "discrepancy": 0.04,
         "model_mean": 0.82, "model_q05": 0.75, "model_q95": 0.90, "z": 0.4, "within": True},
        {"target": "minor", "role": "check", "kind": "relative_change", "scenarios": "pre -> post",
         "outcome": "incidents_total", "observed": -0.30, "sd": 0.05, "discrepancy": 0.0,
         "model_mean": -0.25, "model_q05": -0.35, "model_q95": -0.15, "z": 1.0, "within": True},
        {"target": "volume", "role": "fit", "kind": "level", "scenarios": "pre",
         "outcome": "incidents_total", "observed": 0.5, "sd": 0.1, "discrepancy": 0.0,
         "model_mean": 0.45, "model_q05": 0.3, "model_q95": 0.6, "z": -0.5, "within": True},
    ])


def _fake_results() -> SimpleNamespace:
    rng = np.random.default_rng(1)
    n = 40
    ens = pd.DataFrame({"member": range(n), "weight": rng.random(n) + 0.1,
                        "rate": np.exp(rng.uniform(np.log(0.8), np.log(1.2), n)),
                        "share": rng.uniform(0.2, 0.9, n), "inert": 0.5})
    ens["weight"] /= ens["weight"].sum()
    ident = pd.DataFrame([
        {"parameter": "rate", "low": 0.5, "high": 2.0, "scale": "log", "active": True,
         "posterior_q05": 0.82, "posterior_median": 1.0, "posterior_q95": 1.18,
         "width_ratio": 0.28, "identified": True, "note": ""},
        {"parameter": "share", "low": 0.2, "high": 0.9, "scale": "linear", "active": True,
         "posterior_q05": 0.24, "posterior_median": 0.55, "posterior_q95": 0.86,
         "width_ratio": 0.95, "identified": False, "note": "not identifiable"},
        {"parameter": "inert", "low": 0.1, "high": 0.9, "scale": "linear", "active": False,
         "posterior_q05": 0.14, "posterior_median": 0.5, "posterior_q95": 0.86,
         "width_ratio": 1.0, "identified": False, "note": "inert"},
    ])
    targets = [{"name": "volume", "per": "resident_year"}]
    return SimpleNamespace(path="fake", metadata={"name": "fake", "parameters": PARAMS,
                                                  "targets": targets},
                           fit=_fit_df(), ensemble=ens, identifiability=ident)


def test_fit_frame_standardises_and_orders_by_role():
    df = cp.fit_frame(_fit_df(), [{"name": "volume", "per": "resident_year"}])
    assert list(df["target"]) == ["closure", "volume", "after", "minor"]  # fit, holdout, check
    row = df.set_index("target").loc["closure"]
    assert row["error"] == pytest.approx(0.05)  # sqrt(0.03² + 0.04²)
    assert row["z_mean"] == pytest.approx((0.82 - 0.80) / 0.05)
    assert row["z_q05"] == pytest.approx((0.75 - 0.80) / 0.05)
    assert row["z_q95"] == pytest.approx((0.90 - 0.80) / 0.05)
    units = df.set_index("target")["unit"]
    assert units["closure"] == outcomes.unit("closure_rate") == "share"
    assert units["minor"] == "share"  # a relative change reads as %
    assert units["volume"] == "per resident-year"
    assert cp.fmt_target(0.8, "share") == "80.0%"
    assert cp.fmt_target(0.5, "per resident-year") == "0.5 per resident-year"
    with pytest.raises(ValueError, match="no fit table"):
        cp.fit_frame(pd.DataFrame())


def test_plot_fit_groups_roles_and_names_the_held_out_targets():
    fig = cp.plot_fit(_fake_results())
    ax, right = fig.axes  # the plot and the twin axis that carries the values
    assert [t.get_text() for t in ax.get_yticklabels()] == ["closure", "volume", "after", "minor"]
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert labels[0] == "observed 80.0% ± 5.0%\nmodel 82.0% [75.0%, 90.0%], z = +0.40"
    assert "97.0%" in labels[2] and "z = -4.00" in labels[2]
    assert labels[1] == ("observed 0.5 ± 0.1 per resident-year\n"
                         "model 0.45 [0.3, 0.6] per resident-year, z = -0.50")
    assert "2 fitted, 1 held out, 1 check)" in ax.get_title()
    assert "3 of 4 within 2 errors" in ax.get_title()
    assert "error" in ax.get_xlabel() and ax.get_ylabel() == "Target"
    lo, hi = ax.get_xlim()
    assert lo <= -4.0 * 1.08 + 1e-9 and hi >= 4.0  # the misfit of 'after' is on the axis
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("held out" in t for t in legend) and any("check" in t for t in legend)
    # the role colours differ between the fitted and held-out rows
    ticks = ax.get_yticklabels()
    assert ticks[0].get_color() == ticks[1].get_color() != ticks[2].get_color()


def test_weighted_histogram():
    edges, share = cp.weighted_histogram([1.0, 1.0, 4.0], [0.25, 0.25, 0.5], 1.0, 4.0, "log",
                                         bins=2)
    assert edges == pytest.approx([1.0, 2.0, 4.0])  # equal width on the log scale
    assert share == pytest.approx([0.5, 0.5]) and share.sum() == pytest.approx(1.0)
    edges, share = cp.weighted_histogram(np.linspace(0, 1, 1000), np.ones(1000), 0.0, 1.0,
                                         bins=10)
    assert share == pytest.approx(np.full(10, 0.1))  # uniform values: the flat prior


def test_plot_posterior_marks_inert_and_unidentified_parameters():
    fig = cp.plot_posterior(_fake_results())
    axes = _visible(fig)
    assert [a.get_title().split("\n")[0] for a in axes] == ["rate", "share", "inert"]
    rate, share, inert = axes
    assert rate.get_xscale() == "log" and share.get_xscale() == "linear"
    assert rate.get_xlim() == pytest.approx((0.5, 2.0))
    assert inert.get_xlim() == pytest.approx((0.1, 0.9))
    def texts(a):
        return " ".join(t.get_text() for t in a.texts)

    assert "inert: fixed at nominal" in texts(inert)
    assert "not identified" in texts(share) and "not identified" not in texts(rate)
    assert "multiplier of incidents.dispute.base_rate" in rate.get_xlabel()
    assert rate.get_ylabel().startswith("share of ensemble weight")
    assert "40 members" in fig.get_suptitle()


def test_pair_parameters_caps_at_the_most_narrowed():
    ident = pd.DataFrame({"parameter": list("abcdefgh"),
                          "active": [True] * 7 + [False],
                          "width_ratio": [0.9, 0.1, 0.5, 0.2, 0.8, 0.3, 0.4, 0.0]})
    assert cp.pair_parameters(ident) == ["b", "c", "d", "e", "f", "g"]  # not a (widest), not h
    assert cp.pair_parameters(ident, max_n=2) == ["b", "d"]
    assert cp.pair_parameters(ident, order=list("gfedcba"), max_n=3) == ["f", "d", "b"]


def test_implausibility_frame_converts_back_to_each_scale():
    cand = pd.DataFrame({"wave": [1, 2], "rate": [0.0, 1.0], "share": [0.5, 0.25],
                         "implausibility": [5.0, 1.0]})
    long = cp.implausibility_frame(cand, PARAMS)
    rate = long[long["parameter"] == "rate"]["value"].to_numpy()
    share = long[long["parameter"] == "share"]["value"].to_numpy()
    assert rate == pytest.approx([0.5, 2.0])
    assert share == pytest.approx([0.55, 0.375])
    assert set(long.columns) == {"wave", "parameter", "value", "implausibility"}
    with pytest.raises(ValueError, match="candidates"):
        cp.implausibility_frame(pd.DataFrame(), PARAMS)


# --------------------------------------------------------------------------- a real calibration
def test_plot_fit_from_a_calibration(res):
    fig = cp.plot_fit(res)
    ax, right = fig.axes
    fit = res.fit
    assert [t.get_text() for t in ax.get_yticklabels()] == list(fit["target"])
    labels = "\n".join(t.get_text() for t in right.get_yticklabels())
    for _, r in fit.iterrows():  # observed and model values, in % (shares)
        assert f"observed {100 * r['observed']:.1f}%" in labels
        assert f"model {100 * r['model_mean']:.1f}%" in labels
    assert "none held out" in ax.get_title()
    # the model markers sit at z = (mean - observed) / error
    xs = sorted(x for line in ax.lines if line.get_marker() == "D" for x in line.get_xdata())
    z = (fit["model_mean"] - fit["observed"]) / np.hypot(fit["sd"], fit["discrepancy"])
    assert xs == pytest.approx(sorted(z))
    assert z.to_numpy() == pytest.approx(fit["z"].to_numpy())


def test_plot_posterior_from_a_calibration(res):
    fig = cp.plot_posterior(res)
    axes = _visible(fig)
    assert len(axes) == len(res.parameters) == 3
    by_title = {a.get_title().split("\n")[0]: a for a in axes}
    assert set(by_title) == set(res.parameters)
    ident = res.identifiability.set_index("parameter")
    for name, a in by_title.items():
        p = next(q for q in res.metadata["parameters"] if q["name"] == name)
        assert a.get_xlim() == pytest.approx((p["low"], p["high"]))
        inert_note = "inert: fixed at nominal" in " ".join(t.get_text() for t in a.texts)
        assert inert_note == (not bool(ident.loc[name, "active"]))
    assert "drone_detect" in by_title  # the tiny problem's inert parameter
    assert "inert: fixed at nominal" in _texts(fig)


def test_plot_pairs_from_a_calibration(res):
    fig = cp.plot_pairs(res)
    active = list(res.identifiability.query("active")["parameter"])
    n = len(active)
    assert len(fig.axes) == n * n and len(_visible(fig)) == n * (n + 1) // 2
    assert [a.get_title() for a in _visible(fig) if a.get_title()] == active
    if n >= 2:
        scatter = fig.axes[n]  # row 1, column 0
        assert scatter.get_xlabel() == active[0] and scatter.get_ylabel() == active[1]
        sizes = scatter.collections[0].get_sizes()
        w = res.ensemble["weight"].to_numpy()
        assert np.argmax(sizes) == np.argmax(w)  # marker area by weight
    assert "inert" not in " ".join(a.get_title() for a in fig.axes)


def test_plot_implausibility_from_a_calibration(res):
    fig = cp.plot_implausibility(res)
    axes = _visible(fig)
    active = [c for c in res.candidates.columns if c in res.parameters]
    assert len(axes) == len(active) + 1
    for a, name in zip(axes, active, strict=False):
        assert a.get_title() == name and a.get_yscale() == "log"
        cut = [line.get_ydata()[0] for line in a.lines if line.get_linestyle() == "--"]
        assert cut == pytest.approx(list(res.waves["cutoff"]))
    bars = [b.get_height() for b in axes[-1].patches]
    assert bars == pytest.approx(list(res.waves["nroy_share"]))
    assert axes[0].get_ylabel().startswith("implausibility")
    legend = "\n".join(t.get_text() for t in fig.legends[0].get_texts())
    assert all(f"wave {w}" in legend for w in res.waves["wave"])


# --------------------------------------------------------------------------- govsim plot
@pytest.mark.parametrize("kind", cp.KINDS)
def test_plot_command_writes_each_calibration_kind(cal, kind):
    path = plots.plot_command(cal, kind)
    assert path == cal / "plots" / f"{kind}.png"
    img = Image.open(path)
    assert img.text["Plot"] == kind and img.text["Seed"] == "7"
    px = np.asarray(img.convert("L"), dtype=float)
    assert px.std() > 5  # not blank


def test_plot_command_rejects_kinds_that_do_not_fit(cal):
    for kind in ("timeseries", "forest", "sensitivity"):
        with pytest.raises(ValueError, match=r"is a calibration directory: use --kind "
                                             r"fit\|posterior\|pairs\|implausibility"):
            plots.plot_command(cal, kind)
    with pytest.raises(ValueError, match="--outcome does not apply"):
        plots.plot_command(cal, "fit", outcome="closure_rate")
    stage = cal / "stages" / "02-wave1"  # an experiment folder: not a calibration
    with pytest.raises(ValueError, match="--kind fit needs a calibration directory"):
        plots.plot_command(stage, "fit")
    assert not (stage / "plots").exists()
    with pytest.raises(ValueError, match="needs a calibration directory"):
        plots.draw(SimpleNamespace(path=stage, metadata={"kind": "experiment"}), "pairs")


def test_kinds_agree_with_the_command_line():
    from sim.cli import PLOT_KINDS

    assert tuple(PLOT_KINDS) == plots.KINDS
    assert set(cp.KINDS) <= set(plots.KINDS)


def test_govsim_plot_command_line(cal, tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "fit.png"
    assert main(["plot", str(cal), "--kind", "fit", "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["plot", str(cal), "--kind", "posterior"]) == 0
    assert (cal / "plots" / "posterior.png").is_file()
    capsys.readouterr()
    assert main(["plot", str(cal), "--kind", "timeseries"]) == 2
    assert "calibration directory" in capsys.readouterr().err


# --------------------------------------------------------------------------- govsim report
VOID = frozenset({"br", "img", "meta", "hr", "input", "link"})


class _Balanced(HTMLParser):

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(tag)
        else:
            self.stack.pop()


def test_calibration_report(cal, tmp_path):
    d = tmp_path / "tiny"
    shutil.copytree(cal, d)
    meta = json.loads((d / "metadata.json").read_text())
    meta["warnings"] = ["wave 2: <b>relaxed</b> & so on"]
    (d / "metadata.json").write_text(json.dumps(meta))
    path = write_report(d)
    assert path == d / "report.html"
    text = path.read_text(encoding="utf-8")
    p = _Balanced()
    p.feed(text)
    assert text.startswith("<!DOCTYPE html>") and not p.errors and not p.stack
    assert "script" not in p.tags and not re.search(r'(src|href)="(https?:)?//', text)
    assert "Calibration &#x27;tiny&#x27;" in text
    # the summary: seed, model runs, stages, status, the warning (escaped)
    assert "<dt>Seed</dt><dd>7</dd>" in text and f"<dd>{meta['model_runs']}</dd>" in text
    assert "wave1: 12 points" in text and "<dd>complete</dd>" in text
    assert "&lt;b&gt;relaxed&lt;/b&gt; &amp; so on" in text and "<b>relaxed</b>" not in text
    # the fit table: one row per target with observed ± sd and the model's mean [90% interval]
    for _, r in pd.read_parquet(d / "fit.parquet").iterrows():
        def f(v):
            return f"{100 * v:.1f}%"

        assert f"<tr><td>{r['target']}</td><td>fitted</td>" in text
        assert f"{f(r['observed'])} ± {f(r['sd'])}" in text
        assert f"{f(r['model_mean'])} [{f(r['model_q05'])}, {f(r['model_q95'])}]" in text
        assert f"{r['z']:+.2f}" in text
    # identifiability, waves, ABC, emulators, screening
    for words in ("Posterior median [90%]", "no (inert)", "Non-implausible share",
                  "Emulator diagnostics", "CV R²", "Effective sample size", "μ*/error",
                  "drone_detect", "Caveats"):
        assert words in text, words
    assert text.count("data:image/png;base64,") == 4  # fit, posterior, pairs, implausibility


def test_govsim_report_command_line(cal, tmp_path):
    from sim.cli import main

    out = tmp_path / "cal.html"
    assert main(["report", str(cal), "--out", str(out)]) == 0
    assert "Fit to the targets" in out.read_text(encoding="utf-8")
