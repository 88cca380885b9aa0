"""The explorer's Solara components: the sidebar card and the panels inside Mesa's SolaraViz.

They only lay out what other modules compute: :mod:`sim.explorer.state` (settings, model,
session state), :mod:`sim.explorer.mapdata` and :mod:`sim.explorer.charts` (the map and the
charts as Vega-Lite specs), :mod:`sim.explorer.series` (headline outcomes). Each panel listens
to Mesa's update counter, so it redraws when SolaraViz steps the model, and rebuilds its chart
only once per simulated day (:func:`use_spec`).

:data:`PANELS` lists the panels with their place in SolaraViz's draggable grid.
"""

from __future__ import annotations

import time
from dataclasses import replace
from html import escape
from typing import Any

import pandas as pd
import solara
from mesa.visualization.utils import update_counter

from sim import outcomes
from sim.explorer.charts import (
    backlog_chart,
    channels_chart,
    difference_chart,
    map_chart,
    rates_chart,
    survey_chart,
    ttr_chart,
)
from sim.explorer.mapdata import LAYERS, STATE_LABELS, MapData, grid_table, map_data
from sim.explorer.series import headline_table
from sim.explorer.state import (
    BASELINE,
    COMPARE_OFF,
    LEVERS,
    ExplorerModel,
    apply_settings,
    current_settings,
    lever_bounds,
    lever_values,
    map_layer,
    scenario_label,
    scenario_names,
    selected_grid,
    settings_error,
    show_boundaries,
    show_incidents,
    show_staff,
)

#: Seconds the last render of each panel's body took (the page-side cost of an update).
RENDER_SECONDS: dict[str, float] = {}


# --------------------------------------------------------------------------- sidebar
@solara.component
def ScenarioPanel(model_r: solara.Reactive):
    """Sidebar card: scenario, seed, levers and compare mode. Every change rebuilds the model."""
    s = current_settings.value
    values = lever_values(s)
    bounds = lever_bounds(s)
    names = scenario_names(s.scenario if s.scenario not in scenario_names() else None)
    compare_options = {"off": COMPARE_OFF,
                       f"{scenario_label(s.scenario)} without lever changes": BASELINE}
    compare_options.update({n: n for n in names})
    compare_label = next((k for k, v in compare_options.items() if v == s.compare), "off")

    def lever(key: str):
        def set_value(v, key=key):
            if v is None:
                return
            if key in bounds:
                lo, hi = bounds[key]
                if not lo <= int(v) <= hi:
                    settings_error.set(f"{key} must be between {lo:,} and {hi:,}, not {v:,}")
                    return
            apply_settings(model_r, s.with_lever(key, v))
        return set_value

    with solara.Card("Scenario and levers", margin=0, classes=["govsim-controls"]):
        solara.Select("Scenario", value=s.scenario, values=names,
                      on_value=lambda v: apply_settings(model_r, s.with_scenario(v)))
        solara.InputInt("Seed", value=s.seed, continuous_update=False,
                        on_value=lambda v: v is not None
                        and apply_settings(model_r, replace(s, seed=int(v))))
        solara.HTML(tag="div", style={"margin": "8px 0 2px 0"}, unsafe_innerHTML=(
            "<b>Levers</b> (a change rebuilds the model with the same seed)"))
        for lv in LEVERS:
            css = f"govsim-lever-{lv.key.replace('.', '-')}"
            if lv.kind == "bool":
                with solara.Div(classes=[css]):
                    solara.Checkbox(label=lv.label, value=bool(values[lv.key]),
                                    on_value=lever(lv.key))
            else:
                solara.InputInt(lv.label, value=int(values[lv.key]), continuous_update=False,
                                on_value=lever(lv.key), classes=[css])
        solara.Select("Compare with (same seed, in lockstep)", value=compare_label,
                      values=list(compare_options),
                      on_value=lambda v: apply_settings(
                          model_r, replace(s, compare=compare_options[v])))
        if settings_error.value:
            solara.Error(settings_error.value)
        if s.levers:
            solara.Button("Back to the file's values", text=True,
                          on_click=lambda: apply_settings(model_r, replace(s, levers=())))


# --------------------------------------------------------------------------- helpers
class _timed:
    """Record how long a component's body takes in :data:`RENDER_SECONDS`."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        RENDER_SECONDS[self.name] = time.perf_counter() - self.t0


def use_spec(build, dependencies: list[Any]):
    """A chart spec rebuilt only when the model, its day or a display switch changed. Solara
    may render a panel several times per simulated day (once per state change it hears of);
    only the first of those builds anything."""
    return solara.use_memo(build, dependencies=dependencies)


@solara.component
def VegaFigure(spec: dict[str, Any], on_click=None):
    """Show a Vega-Lite spec (from :meth:`~sim.explorer.charts.Figure.spec`) with the widget
    ``solara.FigureAltair`` uses. Pass the same dict object while nothing changed: then the
    browser gets nothing."""
    return solara.widgets.VegaLite.element(spec=spec, on_click=on_click,
                                           listen_to_click=on_click is not None)


def _html_table(df: pd.DataFrame) -> str:
    """A small plain table (solara.Markdown would pull in extra browser libraries)."""
    cell = "padding:2px 14px 2px 0;border-bottom:1px solid #e0e0e0"

    def align(i: int) -> str:
        return "left" if i == 0 else "right"

    head = "".join(f'<th style="{cell};text-align:{align(i)}">{escape(str(c))}</th>'
                   for i, c in enumerate(df.columns))
    body = "".join("<tr>" + "".join(f'<td style="{cell};text-align:{align(i)}">'
                                    f"{escape(str(v))}</td>" for i, v in enumerate(r)) + "</tr>"
                   for r in df.itertuples(index=False))
    return (f'<table style="border-collapse:collapse;font-size:13px"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table>")


def _lever_text(v: Any) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else outcomes.fmt(v)


# --------------------------------------------------------------------------- panels
@solara.component
def StatusPanel(model: ExplorerModel):
    """Day counter, what is being run, and the headline outcomes (with B - A)."""
    update_counter.get()
    with _timed("status"):
        s = model.settings
        lever_txt = ", ".join(f"{k} = {_lever_text(v)}" for k, v in s.levers) or "as in the file"
        with solara.Column(gap="4px", style={"padding": "6px 10px"}):
            with solara.Row(gap="18px", style={"align-items": "baseline"}):
                solara.Text(f"Day {model.days}", classes=["govsim-day"],
                            style={"font-size": "26px", "font-weight": "600"})
                solara.Text(" vs ".join(r.label for r in model.runs) + f"  ·  seed {s.seed}",
                            classes=["govsim-runs"], style={"font-size": "16px"})
                last = [r.step_seconds[-1] for r in model.runs if r.step_seconds]
                if last:
                    solara.Text(f"last day simulated in {1000 * sum(last):.0f} ms",
                                style={"color": "#777", "font-size": "12px"})
            solara.Text(f"Levers: {lever_txt}", classes=["govsim-levers"],
                        style={"font-size": "13px"})
            solara.HTML(tag="div", unsafe_innerHTML=_html_table(headline_table(model)),
                        classes=["govsim-headlines"])


@solara.component
def MapPanel(model: ExplorerModel):
    """The lattice: coloured layer, grid boundaries, incidents and staff; hover a grid for its
    figures, click it for the details panel."""
    update_counter.get()
    with _timed("map"):
        layer, inc, staff, bounds, sel = (map_layer.value, show_incidents.value, show_staff.value,
                                          show_boundaries.value, selected_grid.value)

        def build():
            data = [map_data(r, layer) for r in model.runs]
            size = 560 if not model.compare else 380
            return data, map_chart(data, inc, staff, bounds, sel, size=size).spec()

        data, spec = use_spec(build, [model, model.days, layer, inc, staff, bounds, sel])

        with solara.Column(gap="4px", style={"padding": "4px 8px"}, classes=["govsim-map"]):
            with solara.Row(gap="16px", style={"align-items": "center", "flex-wrap": "wrap"}):
                by_label = {title: key for key, (title, _) in LAYERS.items()}
                solara.ToggleButtonsSingle(value=LAYERS[map_layer.value][0], values=list(by_label),
                                           on_value=lambda v: map_layer.set(by_label[v]),
                                           dense=True, classes=["govsim-layer"])
                solara.Checkbox(label="incidents", value=show_incidents)
                solara.Checkbox(label="staff", value=show_staff)
                solara.Checkbox(label="grid boundaries", value=show_boundaries)
            solara.Text(" | ".join(_map_caption(d) for d in data), classes=["govsim-map-caption"],
                        style={"font-size": "13px", "color": "#444"})
            if model.compare:  # two maps side by side: the details go underneath
                VegaFigure(spec, on_click=_on_map_click)
                GridDetails(model)
            else:
                with solara.Row(gap="12px", style={"align-items": "flex-start"}):
                    VegaFigure(spec, on_click=_on_map_click)
                    GridDetails(model)


def _on_map_click(datum) -> None:
    """A click on the map selects the grid under the pointer (run index and grid id)."""
    if datum and datum.get("grid") is not None:
        selected_grid.set((int(datum.get("run", 0) or 0), int(datum["grid"])))


def _map_caption(d: MapData) -> str:
    """Open incidents by state; counts scaled up when only a sample is drawn."""
    counts = d.incidents["state"].value_counts() if len(d.incidents) else {}
    scale = d.incidents_open / max(1, d.incidents_shown)
    parts = ", ".join(f"{outcomes.fmt(round(counts.get(s, 0) * scale))} {s}" for s in STATE_LABELS)
    return f"{d.run}, day {d.day}: {outcomes.fmt(d.incidents_open)} open incidents ({parts})"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


@solara.component
def GridDetails(model: ExplorerModel):
    """The figures of the grid clicked on the map."""
    sel = selected_grid.value
    with solara.Column(style={"min-width": "220px", "max-width": "300px"},
                       classes=["govsim-grid-details"]):
        if sel is None or sel[0] >= len(model.runs):
            solara.HTML(tag="div", unsafe_innerHTML="<b>Grid details</b><br>Hover over a grid for "
                        "its figures; click it to keep them here and outline it on the map.")
            return
        k, g = sel
        run = model.runs[k]
        t = grid_table(run.model)
        if g >= len(t):
            return
        row = t.iloc[g]
        city = run.model.city

        def item(name: str, value: Any) -> str:
            return f"{_lower_first(outcomes.axis_label(name))}: {outcomes.fmt_outcome(name, value)}"

        items = [
            item("population", int(row.population)),
            f"area: {outcomes.fmt(float(city.grid_area_km2[g]))} km²",
            item("worker_utilisation", row.worker_utilisation),
            (f"open incidents: {int(row.open_incidents)} ({int(row.open_reported)} reported, "
             f"{int(row.open_latent)} not yet found)"),
            f"unresolved backlog: {int(row.unresolved_backlog)}",
            item("perceived_safety", row.perceived_safety),
        ]
        solara.HTML(tag="div", unsafe_innerHTML=f"<b>Grid {g}</b> ({escape(run.label)}, "
                    f"day {model.days})<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items)
                    + "</ul>")
        solara.Button("clear", text=True, on_click=lambda: selected_grid.set(None))


def _chart_component(name: str, builder):
    """A panel showing one daily chart; ``name`` is its CSS class and timing key."""
    @solara.component
    def ChartPanel(model: ExplorerModel):
        update_counter.get()
        with _timed(name):
            spec = use_spec(lambda: builder(model).spec(), [model, model.days])
            with solara.Div(classes=[f"govsim-chart-{name}"], style={"padding": "4px"}):
                VegaFigure(spec)
    ChartPanel.__name__ = f"{name.title()}Chart"
    return ChartPanel


RatesChart = _chart_component("rates", rates_chart)
BacklogChart = _chart_component("backlog", backlog_chart)
TTRChart = _chart_component("ttr", ttr_chart)
ChannelsChart = _chart_component("channels", channels_chart)
SurveyChart = _chart_component("survey", survey_chart)


@solara.component
def ComparePanel(model: ExplorerModel):
    """The difference B - A of the headline outcomes, or how to switch compare mode on."""
    update_counter.get()
    with _timed("compare"):
        spec = use_spec(lambda: difference_chart(model).spec() if model.compare else None,
                        [model, model.days])
        with solara.Div(classes=["govsim-chart-compare"], style={"padding": "4px"}):
            if not model.compare:
                solara.HTML(tag="div", style={"padding": "8px"}, unsafe_innerHTML=(
                    "<b>Compare mode is off.</b> Choose a scenario under <i>Compare with</i> in "
                    "the sidebar: it runs in lockstep with the same seed (common random numbers), "
                    "its map appears beside this one, its lines join the charts, and the "
                    "difference of the headline outcomes is shown here as it evolves."))
                return
            VegaFigure(spec)


#: (component, (x, y, w, h)) in SolaraViz's 12-column draggable grid (rows of 30 px).
PANELS = (
    (StatusPanel, (0, 0, 12, 7)),
    (MapPanel, (0, 7, 12, 19)),
    (RatesChart, (0, 26, 6, 9)),
    (BacklogChart, (6, 26, 6, 9)),
    (TTRChart, (0, 35, 6, 9)),
    (ChannelsChart, (6, 35, 6, 9)),
    (SurveyChart, (0, 44, 6, 9)),
    (ComparePanel, (6, 44, 6, 9)),
)


def panel_layout() -> list[dict[str, Any]]:
    """Initial arrangement of the panels (users can still drag and resize them)."""
    return [{"i": i, "x": x, "y": y, "w": w, "h": h, "moved": False}
            for i, (_, (x, y, w, h)) in enumerate(PANELS)]
