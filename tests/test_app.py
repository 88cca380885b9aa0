"""The explorer's pieces in Python, without a browser: the model is built from the controls'
values, the map's layers have the right shapes, compare mode keeps both runs on the same day
and seed, the charts' specs carry the right data, and the Solara page renders and steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("solara", reason="the explorer needs mesa[rec] (solara, altair)")

from sim.codes import CHANNELS
from sim.codes import State as _State
from sim.explorer.charts import (
    backlog_chart,
    channels_chart,
    difference_chart,
    map_chart,
    rates_chart,
    survey_chart,
    ttr_chart,
)
from sim.explorer.mapdata import (
    ROLE_NAMES,
    STATE_LABELS,
    block_factor,
    boundary_segments,
    cell_layer,
    grid_table,
    map_data,
)
from sim.explorer.series import HEADLINES, difference_series, headline_table, series
from sim.explorer.state import (
    BASELINE,
    CHANNEL_LABELS,
    LEVER_KEYS,
    ExplorerModel,
    Run,
    Settings,
    current_settings,
    lever_values,
    scenario_names,
)
from sim.model import GovernanceModel
from sim.paths import SCENARIO_DIR

UNDISCOVERED, KNOWN, PAPER_CLOSED = _State.UNDISCOVERED, _State.KNOWN, _State.PAPER_CLOSED

SEED = 20240101


@pytest.fixture(scope="module")
def stepped():
    """The default scenario after 8 days."""
    m = ExplorerModel(Settings.for_scenario("default", seed=7))
    for _ in range(8):
        m.step()
    return m


# --------------------------------------------------------------------------- controls -> model
def test_scenario_picker_lists_the_scenario_files():
    names = scenario_names()
    assert names == sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
    assert "default" in names and "district_pre_reform" in names


def test_levers_cover_the_issue():
    expected = {"grids.count", "police.officers", "fusion.enabled", "paperwork.forms",
                *(f"channels.{c}.enabled" for c in CHANNELS)}
    assert set(LEVER_KEYS) == expected


def test_model_is_built_from_the_controls_values():
    s = Settings.for_scenario("default")
    assert s.seed == SEED  # the file's seed
    s = (s.with_lever("grids.count", 150).with_lever("police.officers", 80)
         .with_lever("channels.snap_report.enabled", False).with_lever("fusion.enabled", False)
         .with_lever("paperwork.forms", 118))
    s = Settings(s.scenario, 99, s.levers, s.compare)
    m = ExplorerModel(s)
    cfg = m.runs[0].model.config
    assert cfg.grids.count == 150 and m.runs[0].model.city.n_grids == 150
    assert cfg.police.officers == 80
    assert cfg.channels.snap_report.enabled is False
    assert cfg.fusion.enabled is False
    assert cfg.paperwork.forms == 118
    assert m.runs[0].model.seed_entropy == 99
    assert lever_values(s)["grids.count"] == 150
    assert len(m.runs) == 1 and m.days == 0


def test_a_lever_set_back_to_the_files_value_is_dropped():
    s = Settings.for_scenario("default").with_lever("paperwork.forms", 118)
    assert s.overrides == {"paperwork.forms": 118}
    s = s.with_lever("paperwork.forms", 49)  # the file's value
    assert s.levers == ()
    with pytest.raises(KeyError):
        s.with_lever("city.width", 10)


def test_changing_the_scenario_resets_the_levers_and_keeps_the_seed():
    s = Settings.for_scenario("default", seed=5).with_lever("paperwork.forms", 118)
    t = s.with_scenario("district_pre_reform")
    assert t.levers == () and t.seed == 5
    assert lever_values(t)["grids.count"] == 220


def test_rebuilding_after_a_lever_change_keeps_the_seed_and_starts_at_day_0(stepped):
    s = stepped.settings.with_lever("channels.snap_report.enabled", False)
    m = ExplorerModel(s)
    assert m.days == 0
    assert m.runs[0].model.seed_entropy == stepped.runs[0].model.seed_entropy == 7
    # the same seed gives the same city: only the channel differs
    np.testing.assert_array_equal(m.runs[0].model.city.population, stepped.runs[0].model.city.population)


def test_reset_without_arguments_uses_the_sessions_settings():
    """SolaraViz's Reset calls the model class without arguments."""
    s = Settings.for_scenario("default", seed=3).with_lever("police.officers", 60)
    old = current_settings.value
    current_settings.set(s)
    try:
        m = ExplorerModel()
        assert m.settings == s
        assert m.runs[0].model.config.police.officers == 60
    finally:
        current_settings.set(old)


# --------------------------------------------------------------------------- map layers
def test_map_layers_have_the_right_shapes(stepped):
    run = stepped.runs[0]
    model = run.model
    city = model.city
    d = map_data(run, "density")
    assert d.factor == 1 and (d.width, d.height) == (city.width, city.height)
    # one row per cell (a layer, never one marker per resident)
    assert len(d.cells) == city.n_cells
    assert list(d.cells.columns[:4]) == ["x", "y", "value", "grid"]
    expected = (city.population / city.cell_km**2).reshape(city.height, city.width)
    got = d.cells["value"].to_numpy().reshape(city.height, city.width)
    np.testing.assert_allclose(got, expected)
    np.testing.assert_array_equal(d.cells["grid"].to_numpy(), city.grid)
    # grid table: one row per grid with its figures
    g = d.grids
    assert len(g) == city.n_grids
    assert g["population"].sum() == pytest.approx(city.population.sum(), rel=1e-6)
    assert {"worker_utilisation", "open_incidents", "perceived_safety"} <= set(g.columns)
    assert np.all((g["perceived_safety"].dropna() >= 0) & (g["perceived_safety"].dropna() <= 1))
    # incidents: every open incident, with a state of the legend
    st = model.incidents.state[: model.incidents.n]
    n_open = int(np.isin(st, [UNDISCOVERED, KNOWN, PAPER_CLOSED]).sum())
    assert d.incidents_open == n_open == len(d.incidents)
    assert set(d.incidents["state"]) <= set(STATE_LABELS)
    assert "in hand" in set(d.incidents["state"])
    for frame in (d.incidents, d.staff):
        assert frame["x"].between(0, d.width).all() and frame["y"].between(0, d.height).all()
    # staff: every grid worker and officer, volunteers and riders sampled
    roles = d.staff["role"].value_counts()
    assert set(roles.index) == set(ROLE_NAMES)
    assert roles["grid worker"] == city.n_grids * model.config.grid_workers.per_grid
    assert roles["police officer"] == model.config.police.officers
    assert roles["volunteer"] <= 120 and d.role_scale["volunteer"] > 1


def test_other_layers(stepped):
    model = stepped.runs[0].model
    safety = cell_layer(model, "safety")
    assert safety.shape == (model.city.n_cells,)
    assert np.nanmin(safety) >= 0 and np.nanmax(safety) <= 1
    backlog = cell_layer(model, "backlog")
    st = model.incidents.state[: model.incidents.n]
    assert backlog.sum() == ((st == KNOWN) | (st == PAPER_CLOSED)).sum()
    with pytest.raises(ValueError):
        cell_layer(model, "nonsense")


def test_boundaries_lie_where_the_grid_label_changes():
    labels = np.array([[0, 0, 1],
                       [0, 0, 1],
                       [2, 2, 2]])
    segs = boundary_segments(labels)
    length = float(np.hypot(segs.x2 - segs.x, segs.y2 - segs.y).sum())
    interior = (labels[:, 1:] != labels[:, :-1]).sum() + (labels[1:, :] != labels[:-1, :]).sum()
    assert length == interior + 2 * (3 + 3)  # interior edges plus the outline
    assert ((segs.x == segs.x2) | (segs.y == segs.y2)).all()  # axis-aligned


def test_big_lattices_are_drawn_in_blocks():
    model = GovernanceModel("default", rng=1, **{"city.width": 130, "city.height": 70})
    model.step()
    d = map_data(Run("big", model), "density")
    f = block_factor(130, 70)
    assert d.factor == f == 3
    assert len(d.cells) == math.ceil(130 / f) * math.ceil(70 / f) <= 64 * 64
    # the blocks keep the population: density x area summed over blocks
    n_real = np.zeros((d.height * f, d.width * f))
    n_real[:70, :130] = 1
    block_cells = n_real.reshape(d.height, f, d.width, f).sum(axis=(1, 3)).ravel()
    total = (d.cells["value"].to_numpy() * block_cells * model.city.cell_km**2).sum()
    assert total == pytest.approx(model.city.population.sum(), rel=1e-6)
    assert d.incidents["x"].max() <= d.width


def test_grid_table_before_the_first_day():
    m = ExplorerModel(Settings.for_scenario("default"))
    t = grid_table(m.runs[0].model)
    assert t["worker_utilisation"].isna().all()  # no working day yet
    assert (t["open_incidents"] == 0).all()


# --------------------------------------------------------------------------- compare mode
def test_compare_mode_keeps_both_models_on_the_same_day_and_seed():
    m = ExplorerModel(Settings.for_scenario("default", seed=11, compare="district_pre_reform"))
    assert m.compare and len(m.runs) == 2
    a, b = (r.model for r in m.runs)
    assert a.config.name == "default" and b.config.name == "district_pre_reform"
    assert a.seed_entropy == b.seed_entropy == 11
    for day in range(1, 5):
        m.step()
        assert m.days == a.steps == b.steps == day
        assert a.day == b.day == day - 1
        assert len(m.runs[0].ttr7_h) == len(m.runs[1].ttr7_h) == day
    df = series(m)
    assert sorted(df["run"].unique()) == sorted(r.label for r in m.runs)
    assert (df.groupby("run")["day"].max() == 4).all()
    table = headline_table(m)
    assert list(table.columns) == ["outcome", *(r.label for r in m.runs), "B − A"]
    assert len(table) == len(HEADLINES)
    diff = difference_series(m)
    assert len(diff) == 4 * 4
    a_close = df[df.run == m.runs[0].label]["closure_rate"].to_numpy()
    b_close = df[df.run == m.runs[1].label]["closure_rate"].to_numpy()
    got = diff[diff.outcome == "Closure rate (pp)"]["difference"].to_numpy()
    np.testing.assert_allclose(got, 100 * (b_close - a_close))


def test_compare_against_the_file_uses_common_random_numbers():
    """A with a lever, B = the same file without it: the first day's incidents are identical
    (the model draws them before any policy acts), so differences are the lever's."""
    s = Settings.for_scenario("default", seed=2, compare=BASELINE).with_lever("paperwork.forms", 118)
    m = ExplorerModel(s)
    assert m.runs[0].label == "default + levers" and m.runs[1].label == "default (file)"
    assert m.runs[0].model.config.paperwork.forms == 118
    assert m.runs[1].model.config.paperwork.forms == 49
    m.step()
    logs = [r.model.incidents for r in m.runs]
    first = [(lg.cell[: lg.n][lg.t_occurred[: lg.n] < 1.0], lg.category[: lg.n][lg.t_occurred[: lg.n] < 1.0])
             for lg in logs]
    np.testing.assert_array_equal(first[0][0], first[1][0])
    np.testing.assert_array_equal(first[0][1], first[1][1])


def test_same_scenario_twice_gets_distinct_labels():
    m = ExplorerModel(Settings.for_scenario("default", compare="default"))
    assert [r.label for r in m.runs] == ["A: default", "B: default"]


# --------------------------------------------------------------------------- charts
def _dataset_rows(spec):
    return {k: len(json.loads(v)) for k, v in spec["datasets"].items()}


def test_chart_specs_carry_the_daily_data(stepped):
    days = stepped.days
    for build, rows in ((rates_chart, 2 * days), (backlog_chart, days), (ttr_chart, None),
                        (channels_chart, len(CHANNELS) * days), (survey_chart, None)):
        spec = build(stepped).spec()
        json.dumps(spec, allow_nan=False)
        counts = _dataset_rows(spec)
        if rows is not None:
            assert rows in counts.values(), (build.__name__, counts)
        assert spec["$schema"].endswith("v5.json")
    text = json.dumps(channels_chart(stepped).spec())
    for label in CHANNEL_LABELS.values():
        assert label in text
    # compare off: the difference panel has nothing to draw
    assert "Run the model" in json.dumps(difference_chart(stepped).spec())


def test_survey_chart_shows_waves_with_their_interval():
    m = ExplorerModel(Settings.for_scenario("default", seed=4))
    interval = m.runs[0].model.config.safety.survey_interval_days
    for _ in range(interval):
        m.step()
    df = series(m)
    waves = df.dropna(subset=["survey_share_safe"])
    assert len(waves) == 1
    assert (waves["survey_ci_low"] <= waves["survey_share_safe"]).all()
    assert (waves["survey_share_safe"] <= waves["survey_ci_high"]).all()
    spec = json.dumps(survey_chart(m).spec())
    assert "survey_ci_low" in spec and "survey_ci_high" in spec


def test_map_chart_spec(stepped):
    d = [map_data(r, "safety") for r in stepped.runs]
    spec = map_chart(d, selected=(0, 3)).spec()
    text = json.dumps(spec, allow_nan=False)
    for field in ("population", "worker_utilisation", "open_incidents", "perceived_safety"):
        assert field in text  # the grid tooltip
    counts = _dataset_rows(spec)
    assert stepped.runs[0].model.city.n_cells in counts.values()
    assert stepped.runs[0].model.city.n_grids in counts.values()
    assert 1 in counts.values()  # the selected grid's outline
    # switching layers off removes their data
    bare = map_chart(d, show_incidents=False, show_staff=False, show_boundaries=False).spec()
    assert len(bare["datasets"]) == 2


def test_compare_map_is_two_maps_side_by_side():
    m = ExplorerModel(Settings.for_scenario("default", compare="district_pre_reform"))
    m.step()
    spec = map_chart([map_data(r) for r in m.runs]).spec()
    assert len(spec["hconcat"]) == 2
    assert spec["resolve"]["scale"]["color"] == "shared"


# --------------------------------------------------------------------------- the page
def test_page_renders_and_steps():
    """The SolaraViz page in Solara's test renderer: Mesa's Step button advances the model one
    day and the panels follow."""
    import ipyvuetify as v
    import solara

    import sim.explorer.components as C
    from sim.explorer.app import Page

    @solara.component
    def Root():
        with solara.AppLayout():
            Page()

    old = current_settings.value
    current_settings.set(Settings.for_scenario("default"))
    try:
        _, rc = solara.render(Root(), handle_error=False)
        step = rc.find(v.Btn, children=["Step"])
        step.assert_single()
        C.RENDER_SECONDS.clear()
        for _ in range(3):
            step.widget.click()
        rc.find(v.Html, children=["Time: 3.0"]).assert_single()
        assert {"status", "map", "rates", "backlog", "ttr", "channels", "survey"} <= set(C.RENDER_SECONDS)
        # the scenario card's lever rebuilds the model (back to day 0)
        rc.find(v.Checkbox, label=CHANNEL_LABELS["snap_report"]).widget.v_model = False
        assert current_settings.value.overrides == {"channels.snap_report.enabled": False}
        step.widget.click()
        rc.find(v.Html, children=["Time: 1.0"]).assert_single()
        rc.close()
    finally:
        current_settings.set(old)


def test_serve_rejects_a_bad_scenario_before_starting(capsys):
    from sim.explorer.app import serve

    assert serve("no_such_scenario_file") == 2
    assert "no_such_scenario_file" in capsys.readouterr().err


def test_serve_reports_a_port_in_use(tmp_path):
    """Exit status 1 when the server cannot bind (run in a child process: it starts uvicorn)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = f"import sys; from sim.explorer.app import serve; sys.exit(serve(None, port={port}))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                             env={**__import__("os").environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"127.0.0.1:{port}" in out.stderr


# --------------------------------------------------------------------------- Mesa patches
def test_importing_the_explorer_leaves_mesa_alone():
    """The SolaraViz adjustments are applied when the server starts, never at import."""
    import subprocess
    import sys

    code = ("import mesa.visualization.solara_viz as v, mesa.visualization.utils as u\n"
            "before = (v.make_initial_grid_layout, v.force_update)\n"
            "import sim.explorer.app, sim.explorer.components, sim.explorer.charts\n"
            "import sim.explorer.patches as p\n"
            "assert (v.make_initial_grid_layout, v.force_update) == before\n"
            "assert v.force_update is u.force_update and not p.applied()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr


def test_patches_set_the_panel_layout_on_the_supported_mesa():
    from mesa.visualization import solara_viz

    from sim.explorer import patches
    from sim.explorer.app import apply_patches
    from sim.explorer.components import PANELS, panel_layout

    assert patches.mesa_supported("3.5.1") and not patches.mesa_supported("3.6.0")
    assert not patches.mesa_supported("4.0") and not patches.mesa_supported("x")
    assert apply_patches() is True and patches.applied()
    assert apply_patches() is True  # idempotent
    assert solara_viz.make_initial_grid_layout(len(PANELS)) == panel_layout()
    assert len(solara_viz.make_initial_grid_layout(3)) == 3  # other pages: Mesa's layout
    assert solara_viz.force_update is patches.force_update_once


def test_patches_are_skipped_with_a_warning_on_another_mesa(monkeypatch):
    import mesa

    from sim.explorer import patches
    from sim.explorer.components import panel_layout

    monkeypatch.setattr(mesa, "__version__", "3.9.0")
    monkeypatch.setattr(patches, "_warned", False)
    with pytest.warns(RuntimeWarning, match=r"Mesa 3\.9\.0 .* Mesa 3\.5\.x"):
        assert patches.apply(panel_layout) is False
