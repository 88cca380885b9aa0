"""The explorer's Altair charts: the map and the daily charts, as Vega-Lite specs.

Mesa's visualisation renders Altair with Solara's ``VegaLite`` widget, as its own components
do. Each builder takes the model (or the map's tables) and returns a :class:`Figure`, whose
:meth:`~Figure.spec` is what the widget shows. Labels and units come from the outcome
registry (:mod:`sim.outcomes`); the number formats inside a chart are Vega's (d3-format
strings), applied in the browser.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import altair as alt
import pandas as pd

from sim import outcomes
from sim.codes import CATEGORIES, CHANNELS
from sim.explorer.mapdata import LAYERS, ROLE_NAMES, STATE_LABELS, MapData
from sim.explorer.series import difference_series, series
from sim.explorer.state import CHANNEL_LABELS, ExplorerModel

# Colours and shapes, in the order of STATE_LABELS, CATEGORIES, ROLE_NAMES and the runs.
STATE_COLOURS = ("#8c6bb1", "#ff7f0e", "#1f77b4", "#d62728")
CATEGORY_SHAPES = ("circle", "square", "triangle-up", "diamond", "cross", "triangle-down")
ROLE_COLOURS = ("#1a9850", "#08306b", "#c51b7d", "#8c510a")
ROLE_SHAPES = ("triangle-up", "square", "circle", "diamond")
RUN_COLOURS = ("#1f77b4", "#d62728")
#: Size of one daily chart, pixels.
CHART_W, CHART_H = 380, 190


class Figure:
    """A Vega-Lite chart built with Altair whose data travel as named datasets of JSON text.

    Three costs dominate when a chart is rebuilt every simulated day: Altair validates inline
    data record by record (about a second for a map); it resolves each encoding against the
    Vega-Lite schema (tens of ms per chart); and Solara's renderer walks every nested value of a
    widget's arguments, so thousands of records as Python dicts cost hundreds of ms. Here the
    chart refers to datasets by name, each dataset is one JSON string (Vega parses it in the
    browser), and the spec without data (the "skeleton") is cached under ``key``: on a new day
    only the data strings are rebuilt. ``key`` must hold everything the chart's structure
    depends on (labels, sizes, switches), never data.
    """

    _cache: ClassVar[dict[Any, dict[str, Any]]] = {}
    _CACHE_SIZE = 512

    def __init__(self, key: Any, svg: bool = True) -> None:
        self.key = key
        self.svg = svg  # SVG for charts; the map (thousands of marks) draws faster on a canvas
        self.datasets: dict[str, str] = {}
        self.chart: alt.TopLevelMixin | None = None

    def data(self, df: pd.DataFrame | list[dict[str, Any]], digits: int = 4) -> alt.NamedData:
        """Register a dataset; returns the reference the chart uses."""
        # not "data_N": Vega-Lite gives its own sources those names
        name = f"govsim_{len(self.datasets)}"
        if isinstance(df, list):
            text = json.dumps(df, allow_nan=False)
        else:
            text = df.to_json(orient="records", double_precision=digits)
        self.datasets[name] = text
        return alt.NamedData(name=name, format=alt.DataFormat(type="json"))

    def frame(self, name: str) -> pd.DataFrame:
        """A dataset back as a frame (for tests)."""
        return pd.DataFrame(json.loads(self.datasets[name]))

    def build(self, make) -> None:
        """Build the chart with ``make()`` unless a skeleton for this key is cached."""
        if self.key not in Figure._cache:
            self.chart = make()

    def spec(self) -> dict[str, Any]:
        """The Vega-Lite spec, data included."""
        skel = Figure._cache.get(self.key)
        if skel is None:
            skel = self.chart.to_dict(validate=False)
            skel.pop("datasets", None)
            if len(Figure._cache) >= Figure._CACHE_SIZE:
                Figure._cache.clear()
            Figure._cache[self.key] = skel
        out = dict(skel)
        # the page loads Vega-Lite 5 (solara's VegaLite widget); Altair writes the v6 schema URL
        out["$schema"] = "https://vega.github.io/schema/vega-lite/v5.json"
        out["datasets"] = dict(self.datasets)
        if self.svg:
            # vega-embed's renderer option: SVG keeps titles and labels readable as text
            out["usermeta"] = {"embedOptions": {"renderer": "svg"}}
        return out


# --------------------------------------------------------------------------- map chart
#: The grid table's columns the map's tooltip shows.
_GRID_FIELDS = ["population", "worker_utilisation", "open_incidents", "open_reported",
                "open_latent", "perceived_safety"]


def map_chart(data: list[MapData], show_incidents: bool = True, show_staff: bool = True,
              show_boundaries: bool = True, selected: tuple[int, int] | None = None,
              size: int = 520) -> Figure:
    """One map per run, side by side with a shared colour scale (so two scenarios read alike).

    Args:
        data: the map's tables, one per run (:func:`sim.explorer.mapdata.map_data`).
        show_incidents, show_staff, show_boundaries: which layers to draw.
        selected: (run index, grid) whose outline to draw, or None.
        size: width of one map, pixels.
    """
    layer = data[0].layer
    title, unit = LAYERS[layer]
    key = ("map", layer, show_incidents, show_staff, show_boundaries, size,
           tuple((d.run, d.width, d.height, d.factor, tuple(sorted(d.role_scale.items())),
                  len(d.incidents) > 0, len(d.staff) > 0,
                  selected is not None and selected[0] == k) for k, d in enumerate(data)))
    fig = Figure(key, svg=False)
    refs = []
    for k, d in enumerate(data):
        r = {"cells": fig.data(d.cells[["x", "y", "value", "grid"]]),
             "grids": fig.data(d.grids[["grid", *_GRID_FIELDS]])}
        if show_boundaries:
            r["boundaries"] = fig.data(d.boundaries)
        if show_incidents and len(d.incidents):
            r["incidents"] = fig.data(d.incidents[["x", "y", "category", "state", "grid"]], 3)
        if show_staff and len(d.staff):
            labels = {role: _role_label(role, d.role_scale.get(role, 1)) for role in ROLE_NAMES}
            r["staff"] = fig.data(pd.DataFrame({"x": d.staff["x"], "y": d.staff["y"],
                                                "who": d.staff["role"].map(labels),
                                                "grid": d.staff["grid"]}), 3)
        if selected is not None and selected[0] == k:
            box = _grid_box(d, selected[1])
            r["selected"] = fig.data([box] if box else [])
        refs.append(r)
    fig.build(lambda: _map_spec(data, refs, title, unit, size))
    return fig


def _map_spec(data: list[MapData], refs: list[dict[str, Any]], title: str, unit: str, size: int):
    layer = data[0].layer
    maps = []
    for k, (d, r) in enumerate(zip(data, refs, strict=True)):
        px = size / max(d.width, d.height)  # pixels per block: markers scale with it
        xs = alt.Scale(domain=[0, d.width], nice=False, zero=False)
        ys = alt.Scale(domain=[0, d.height], nice=False, zero=False, reverse=True)
        noax = alt.Axis(labels=False, ticks=False, title=None, grid=False, domain=False)
        x = alt.X("x:Q", scale=xs, axis=noax)
        y = alt.Y("y:Q", scale=ys, axis=noax)
        first = k == 0  # legends once, on the first map
        legend = alt.Legend(orient="right") if first else None
        colour = alt.Color("value:Q", title=f"{title} ({unit})", scale=_layer_scale(layer),
                           legend=alt.Legend(orient="right", gradientLength=140, format="~s",
                                             tickCount=4) if first else None)
        layers = [alt.Chart(r["cells"]).transform_lookup(
            lookup="grid", from_=alt.LookupData(r["grids"], key="grid", fields=_GRID_FIELDS),
        ).transform_calculate(x2="datum.x + 1", y2="datum.y + 1", run=str(k)).mark_rect().encode(
            x=x, x2="x2:Q", y=y, y2="y2:Q", color=colour,
            tooltip=[
                alt.Tooltip("grid:Q", title="Grid"),
                alt.Tooltip("population:Q", title=outcomes.label("population"), format=","),
                alt.Tooltip("worker_utilisation:Q", title=outcomes.label("worker_utilisation"),
                            format=".0%"),
                alt.Tooltip("open_incidents:Q", title="Open incidents"),
                alt.Tooltip("open_reported:Q", title="  reported, not closed"),
                alt.Tooltip("open_latent:Q", title="  not yet found"),
                alt.Tooltip("perceived_safety:Q", title=outcomes.axis_label("perceived_safety"),
                            format=".2f"),
                alt.Tooltip("value:Q", title=f"{title} here", format=",.2f"),
            ])]
        if "boundaries" in r:
            layers.append(alt.Chart(r["boundaries"])
                          .mark_rule(color="#333333", strokeWidth=0.8, opacity=0.75)
                          .encode(x=x, y=y, x2="x2:Q", y2="y2:Q"))
        if "incidents" in r:
            layers.append(alt.Chart(r["incidents"]).transform_calculate(run=str(k)).mark_point(
                filled=True, size=max(18, min(60, px * px * 0.35)), stroke="white",
                strokeWidth=0.4, opacity=0.95,
            ).encode(
                x=x, y=y,
                shape=alt.Shape("category:N", title="Open incident (category)",
                                scale=alt.Scale(domain=list(CATEGORIES),
                                                range=list(CATEGORY_SHAPES)), legend=legend),
                fill=alt.Fill("state:N", title="Incident state",
                              scale=alt.Scale(domain=list(STATE_LABELS),
                                              range=list(STATE_COLOURS)), legend=legend),
                tooltip=[alt.Tooltip("category:N", title="Incident"),
                         alt.Tooltip("state:N", title="State"),
                         alt.Tooltip("grid:Q", title="Grid (click for details)")]))
        if "staff" in r:
            domain = [_role_label(role, d.role_scale.get(role, 1)) for role in ROLE_NAMES]
            layers.append(alt.Chart(r["staff"]).transform_calculate(run=str(k)).mark_point(
                filled=False, size=max(16, min(46, px * px * 0.3)), strokeWidth=1.4, opacity=0.9,
            ).encode(
                x=x, y=y,
                stroke=alt.Stroke("who:N", title="Staff (today's position)",
                                  scale=alt.Scale(domain=domain, range=list(ROLE_COLOURS)),
                                  legend=legend),
                shape=alt.Shape("who:N", title="Staff (today's position)",
                                scale=alt.Scale(domain=domain, range=list(ROLE_SHAPES)),
                                legend=legend),
                tooltip=[alt.Tooltip("who:N", title="Staff"),
                         alt.Tooltip("grid:Q", title="Grid (click for details)")]))
        if "selected" in r:
            layers.append(alt.Chart(r["selected"])
                          .mark_rect(fill=None, stroke="#ffd700", strokeWidth=3)
                          .encode(x=x, x2="x2:Q", y=y, y2="y2:Q"))
        note = "" if d.factor == 1 else f"1 square = {d.factor} x {d.factor} cells"
        maps.append(alt.layer(*layers)
                    .resolve_scale(shape="independent", fill="independent", stroke="independent")
                    .properties(width=size, height=size * d.height / d.width,
                                title=alt.TitleParams(d.run, subtitle=note, anchor="start")))
    if len(maps) == 1:
        out = maps[0]
    else:
        out = alt.hconcat(*maps, spacing=18).resolve_scale(color="shared")
    return out.configure_view(stroke="#999999").configure_legend(
        labelLimit=220, titleLimit=220, symbolLimit=40, rowPadding=1, titlePadding=3, padding=2)


def _role_label(role: str, k: int) -> str:
    return role if k == 1 else f"{role} (1 marker = {k})"


def _layer_scale(layer: str) -> alt.Scale:
    if layer == "density":
        # symlog: densities run from a few rural people to tens of thousands per km²
        return alt.Scale(type="symlog", scheme="greys", constant=100)
    if layer == "safety":
        return alt.Scale(scheme="redyellowgreen")
    return alt.Scale(scheme="orangered", domainMin=0)


def _grid_box(d: MapData, grid: int) -> dict[str, float] | None:
    """The bounding box of a grid's blocks (grids are contiguous), or None if not drawn."""
    sel = d.cells["grid"].to_numpy() == grid
    if not sel.any():
        return None
    c = d.cells[sel]
    return {"x": float(c["x"].min()), "x2": float(c["x2"].max()),
            "y": float(c["y"].min()), "y2": float(c["y2"].max())}


# --------------------------------------------------------------------------- daily charts
def _labels(model: ExplorerModel) -> tuple[str, ...]:
    return tuple(r.label for r in model.runs)


def _run_colour(model: ExplorerModel) -> alt.Scale:
    return alt.Scale(domain=list(_labels(model)), range=list(RUN_COLOURS[: len(model.runs)]))


def _empty(title: Any, width: int, height: int,
           note: str = "Press Step or ▶ to run the model") -> Figure:
    fig = Figure(("empty", repr(title), width, height, note))
    ref = fig.data([{"t": note}])
    fig.build(lambda: alt.Chart(ref).mark_text(fontSize=13, color="#666666")
              .encode(text="t:N").properties(title=title, width=width, height=height))
    return fig


def _day_axis() -> alt.X:
    """Days as whole numbers; the axis spans at least days 1-10 (so early ticks are whole days).
    It depends on no data, so it belongs in a chart's cached skeleton."""
    return alt.X("day:Q", title="Day", axis=alt.Axis(format="d", tickMinStep=1),
                 scale=alt.Scale(domain=alt.DomainUnionWith(unionWith=[1, 10]), nice=False))


#: The rates chart's two lines: daily column -> registry outcome naming it.
RATES = {"closure_rate": "closure_rate", "resolution_rate": "true_resolution_rate"}


def rates_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Official closure rate and true resolution rate of the cases reported in the last 30 days
    (closed, or truly resolved, by the end of each day, over all of them), per run."""
    df = series(model) if df is None else df
    title = "Closure and true resolution of the last 30 days' reports"
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    names = {col: outcomes.label(name) for col, name in RATES.items()}
    fig = Figure(("rates", _labels(model)))
    long = df.melt(id_vars=["run", "day"], value_vars=list(RATES), var_name="measure",
                   value_name="share")
    long["measure"] = long["measure"].map(names)
    ref = fig.data(long)
    fig.build(lambda: alt.Chart(ref).mark_line(strokeWidth=2).encode(
        x=_day_axis(),
        y=alt.Y("share:Q", title="Share of cases reported in the last 30 days",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title="Scenario", scale=_run_colour(model)),
        strokeDash=alt.StrokeDash("measure:N", title="Measure",
                                  scale=alt.Scale(domain=list(names.values()),
                                                  range=[[1, 0], [5, 3]])),
        tooltip=["run:N", "day:Q", "measure:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(title=title, width=CHART_W, height=CHART_H))
    return fig


def backlog_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Known cases not yet closed, per run."""
    df = series(model) if df is None else df
    title = "Backlog: reported cases not yet closed"
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    fig = Figure(("backlog", _labels(model)))
    ref = fig.data(df[["run", "day", "backlog"]])
    fig.build(lambda: alt.Chart(ref).mark_line(strokeWidth=2).encode(
        x=_day_axis(), y=alt.Y("backlog:Q", title=outcomes.axis_label("backlog")),
        color=alt.Color("run:N", title="Scenario", scale=_run_colour(model)),
        tooltip=["run:N", "day:Q", "backlog:Q"],
    ).properties(title=title, width=CHART_W, height=CHART_H))
    return fig


def ttr_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Median time from report to true fix of the cases resolved in the last 7 days."""
    df = series(model) if df is None else df
    title = alt.TitleParams("Median time to resolution",
                            subtitle="report to true fix, cases resolved in the last 7 days")
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    unit = outcomes.unit("time_to_resolution_median_h")
    fig = Figure(("ttr", _labels(model)))
    ref = fig.data(df[["run", "day", "ttr7_h"]].dropna(subset=["ttr7_h"]))
    fig.build(lambda: alt.Chart(ref).mark_line(
        strokeWidth=2, point=alt.OverlayMarkDef(size=12)).encode(
        x=_day_axis(), y=alt.Y("ttr7_h:Q", title=unit.capitalize()),
        color=alt.Color("run:N", title="Scenario", scale=_run_colour(model)),
        tooltip=["run:N", "day:Q", alt.Tooltip("ttr7_h:Q", title=unit, format=".1f")],
    ).properties(title=title, width=CHART_W, height=CHART_H))
    return fig


def channels_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Reports per day by channel, stacked (one panel per run in compare mode)."""
    df = series(model) if df is None else df
    title = "Reports by channel (per day, stacked)"
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    fig = Figure(("channels", _labels(model)))
    long = df.melt(id_vars=["run", "day"], value_vars=[f"reports_{c}" for c in CHANNELS],
                   var_name="channel", value_name="reports")
    long["channel"] = (long["channel"].str.removeprefix("reports_")
                       .map(lambda c: CHANNEL_LABELS.get(c, c)))
    ref = fig.data(long)

    def make():
        names = [CHANNEL_LABELS.get(c, c) for c in CHANNELS]
        chart = alt.Chart(ref).mark_area().encode(
            x=_day_axis(),
            y=alt.Y("reports:Q", title="Reports per day", stack="zero"),
            color=alt.Color("channel:N", title="Channel", sort=names,
                            scale=alt.Scale(domain=names, scheme="tableau10"),
                            legend=alt.Legend(orient="bottom", columns=3, labelLimit=200)),
            order=alt.Order("channel:N"),
            tooltip=["run:N", "day:Q", "channel:N", "reports:Q"],
        ).properties(width=CHART_W if not model.compare else CHART_W // 2 - 10, height=CHART_H)
        if model.compare:
            return chart.facet(column=alt.Column("run:N", title=None, sort=list(_labels(model))),
                               title=title)
        return chart.properties(title=title)

    fig.build(make)
    return fig


def survey_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Survey waves (share feeling safe with the 95% interval) and the share of all residents
    who would answer "safe" (what the survey estimates)."""
    df = series(model) if df is None else df
    interval = model.runs[0].model.config.safety.survey_interval_days
    title = alt.TitleParams("Surveyed share feeling safe",
                            subtitle=f"survey waves every {interval} days with 95% interval; "
                                     "line: all residents (expected answer)")
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    waves = df[["run", "day", "survey_share_safe", "survey_ci_low", "survey_ci_high"]].dropna(
        subset=["survey_share_safe"])
    # the y axis starts a little below the lowest value, on a multiple of 5%
    lows = pd.concat([df["expected_safe"], waves["survey_ci_low"]]).dropna()
    floor = max(0.0, math.floor((lows.min() if len(lows) else 0.9) * 20) / 20 - 0.05)
    fig = Figure(("survey", _labels(model), interval, len(waves) > 0, floor))
    line_ref = fig.data(df[["run", "day", "expected_safe"]])
    wave_ref = fig.data(waves) if len(waves) else fig.data(
        [{"day": float(df["day"].max()) / 2, "t": f"first survey wave on day {interval}"}])

    def make():
        colour = alt.Color("run:N", title="Scenario", scale=_run_colour(model))
        layers = [alt.Chart(line_ref).mark_line(strokeWidth=1.2, opacity=0.6).encode(
            x=_day_axis(),
            y=alt.Y("expected_safe:Q", title="Share feeling safe", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[floor, 1.0])),
            color=colour)]
        if len(waves):
            layers.append(alt.Chart(wave_ref).mark_rule(strokeWidth=2).encode(
                x="day:Q", y="survey_ci_low:Q", y2="survey_ci_high:Q", color=colour))
            tips = [alt.Tooltip(f"{name}:Q", title=outcomes.label(name), format=".1%")
                    for name in ("survey_share_safe", "survey_ci_low", "survey_ci_high")]
            layers.append(alt.Chart(wave_ref).mark_point(filled=True, size=50).encode(
                x="day:Q", y="survey_share_safe:Q", color=colour,
                tooltip=["run:N", "day:Q", *tips]))
        else:
            layers.append(alt.Chart(wave_ref).mark_text(color="#666666", dy=-20)
                          .encode(x="day:Q", text="t:N"))
        return alt.layer(*layers).properties(title=title, width=CHART_W, height=CHART_H)

    fig.build(make)
    return fig


def difference_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """B - A per day for the headline outcomes, one small panel each."""
    title = "Difference B − A as it evolves"
    diff = difference_series(model, df)
    if diff.empty:
        return _empty(title, CHART_W, CHART_H, "Run the model to see the difference")
    labels = _labels(model)
    fig = Figure(("difference", labels))
    ref = fig.data(diff)

    def make():
        zero = alt.Chart().mark_rule(color="#888888", strokeDash=[3, 3]).encode(y=alt.datum(0))
        line = alt.Chart().mark_line(strokeWidth=2, color="#6a3d9a").encode(
            x=_day_axis(), y=alt.Y("difference:Q", title=None),
            tooltip=["day:Q", "outcome:N", alt.Tooltip("difference:Q", format="+.2f")])
        return (alt.layer(zero, line, data=ref)
                .properties(width=CHART_W // 2 - 12, height=CHART_H // 2 - 8)
                .facet(facet=alt.Facet("outcome:N", title=None), columns=2,
                       title=alt.TitleParams(title, subtitle=f"B = {labels[1]}, A = {labels[0]}"))
                .resolve_scale(y="independent"))

    fig.build(make)
    return fig
