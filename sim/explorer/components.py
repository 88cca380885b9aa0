"""Pieces of the interactive explorer (:mod:`sim.explorer.app`): the model behind the page, the map's
layers, the charts, and the Solara components that show them inside Mesa's ``SolaraViz``.

Everything that computes something is a plain function of the model (tested in
``tests/test_app.py`` without a browser); the ``@solara.component`` functions at the end only
lay those results out.

* :class:`Settings` is what the controls hold: scenario file, seed, the levers changed from the
  file, and the scenario to compare against. :class:`ExplorerModel` (a Mesa model) is built from
  it: one :class:`~sim.model.GovernanceModel` per run (two in compare mode, same seed: common
  random numbers), all stepped together, so both are always on the same day.
* :func:`map_data` turns a run into the map's layers: a coloured layer per cell (population
  density, perceived safety or unresolved backlog; aggregated into blocks of cells on big
  lattices, never one marker per resident), the grid boundaries (where the grid label changes
  between neighbouring cells), per-grid figures for the tooltip and details panel, open
  incidents by category and state, and staff markers (grid workers, police, volunteers,
  riders; volunteers and riders sampled, one marker standing for several agents).
* :func:`series` gives the daily chart data; the ``*_chart`` functions build Altair charts
  (Mesa's visualisation renders Altair with Solara's ``VegaLite`` widget, as its own components do).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import altair as alt
import mesa
import numpy as np
import pandas as pd
import solara
from mesa.visualization.utils import update_counter

from sim.agents import GridWorker, PoliceOfficer, Volunteer
from sim.incidents import CATEGORIES, KNOWN, PAPER_CLOSED, UNDISCOVERED
from sim.model import GovernanceModel
from sim.scenario import CHANNELS, SCENARIO_DIR, ScenarioError, load_scenario

# --------------------------------------------------------------------------- settings
SCENARIO_ENV = "GOVSIM_EXPLORE_SCENARIO"
#: ``Settings.compare`` value meaning "scenario A's file without the lever changes".
BASELINE = "@file"
COMPARE_OFF = ""

CHANNEL_LABELS = {
    "hotline": "Hotline (12345)",
    "snap_report": "Phone channel (snap & report)",
    "grid_patrol": "Grid worker patrols",
    "police_patrol": "Police patrols",
    "joint_screening": "Joint screening (needs fusion)",
    "drone": "Drone overflights",
}


@dataclass(frozen=True)
class Lever:
    key: str     # dotted scenario key
    label: str
    kind: str    # "int" or "bool"


LEVERS: tuple[Lever, ...] = (
    Lever("grids.count", "Grid count", "int"),
    Lever("police.officers", "Police officers (patrol density)", "int"),
    *(Lever(f"channels.{ch}.enabled", CHANNEL_LABELS.get(ch, ch), "bool") for ch in CHANNELS),
    Lever("fusion.enabled", "Police-grid fusion", "bool"),
    Lever("paperwork.forms", "Forms per grid worker", "int"),
)
LEVER_KEYS = tuple(lv.key for lv in LEVERS)


def scenario_names(extra: str | None = None) -> list[str]:
    """The scenario files in ``scenarios/`` (names without ``.yaml``), plus ``extra`` (a file
    given on the command line that lives elsewhere)."""
    names = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
    if extra and extra not in names:
        names.append(extra)
    return names


def scenario_label(ref: str) -> str:
    """Short name of a scenario reference (a name under ``scenarios/`` or a path)."""
    p = Path(ref)
    return p.stem if p.suffix in (".yaml", ".yml") else ref


@dataclass(frozen=True)
class Settings:
    """What the controls hold. ``levers`` are the lever values changed from the scenario file
    (sorted ``(key, value)`` pairs); they apply to scenario A."""

    scenario: str = "default"
    seed: int = 20240101
    levers: tuple[tuple[str, Any], ...] = ()
    compare: str = COMPARE_OFF

    @classmethod
    def for_scenario(cls, scenario: str, seed: int | None = None, compare: str = COMPARE_OFF) -> Settings:
        """Settings for a scenario file as it is (seed: the given one or the file's)."""
        if seed is None:
            seed = int(load_scenario(scenario).seed)
        return cls(scenario=scenario, seed=int(seed), compare=compare)

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.levers)

    def with_lever(self, key: str, value: Any) -> Settings:
        """These settings with one lever set (dropped again when it equals the file's value)."""
        if key not in LEVER_KEYS:
            raise KeyError(f"unknown lever {key!r}; levers are {', '.join(LEVER_KEYS)}")
        file_value = load_scenario(self.scenario).get(key)
        lv = dict(self.levers)
        if value == file_value:
            lv.pop(key, None)
        else:
            lv[key] = value
        return replace(self, levers=tuple(sorted(lv.items())))

    def with_scenario(self, scenario: str) -> Settings:
        """Another scenario file: levers go back to that file's values; seed and compare stay."""
        return replace(self, scenario=scenario, levers=())

    def runs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(label, scenario reference, overrides)`` for each run: A, and B in compare mode."""
        a_name = scenario_label(self.scenario)
        a_label = a_name + (" + levers" if self.levers else "")
        out = [(a_label, self.scenario, self.overrides)]
        if self.compare == BASELINE:
            out.append((f"{a_name} (file)", self.scenario, {}))
        elif self.compare:
            out.append((scenario_label(self.compare), self.compare, {}))
        if len(out) == 2 and out[0][0] == out[1][0]:
            out = [(f"A: {out[0][0]}", *out[0][1:]), (f"B: {out[1][0]}", *out[1][1:])]
        return out


def lever_values(settings: Settings) -> dict[str, Any]:
    """The value of every lever for scenario A: the file's, or the changed one."""
    cfg = load_scenario(settings.scenario, settings.overrides or None)
    return {key: cfg.get(key) for key in LEVER_KEYS}


def lever_bounds(settings: Settings) -> dict[str, tuple[int, int]]:
    """Allowed range of the whole-number levers (grids must nest in communities and fit in
    the lattice)."""
    cfg = load_scenario(settings.scenario)
    return {
        "grids.count": (cfg.admin.communities, cfg.city.width * cfg.city.height),
        "police.officers": (0, 1_000_000),
        "paperwork.forms": (0, 10_000),
    }


def initial_settings() -> Settings:
    """Start-up settings: the scenario given to ``govsim explore`` (via the environment) or
    ``default``, with the file's seed."""
    scenario = os.environ.get(SCENARIO_ENV) or "default"
    try:
        return Settings.for_scenario(scenario)
    except (ScenarioError, FileNotFoundError):
        return Settings.for_scenario("default")


# --------------------------------------------------------------------------- the model
class Run:
    """One simulated city in the explorer, with what the page needs beyond Mesa's
    DataCollector: the median time to resolution of the last 7 days and the share of all
    residents who would answer "safe" (the quantity the survey estimates)."""

    def __init__(self, label: str, model: GovernanceModel):
        self.label = label
        self.model = model
        self.ttr7_h: list[float] = []
        self.expected_safe: list[float] = []
        self.step_seconds: list[float] = []
        self._static: dict[str, Any] | None = None

    def step(self) -> None:
        t0 = time.perf_counter()
        self.model.step()
        self._record()
        self.step_seconds.append(time.perf_counter() - t0)

    def _record(self) -> None:
        m = self.model
        log = m.incidents
        n = log.n
        d = m.day
        tr = log.t_resolved[:n]
        with np.errstate(invalid="ignore"):
            sel = (tr >= d - 6) & (tr < d + 1)
        dt = (tr[sel] - log.t_reported[:n][sel]) * 24.0
        self.ttr7_h.append(float(np.median(dt)) if len(dt) else float("nan"))
        res = m.residents
        bias = m.config.safety.survey_nonresponse_bias
        self.expected_safe.append(float(np.clip(res.safety + bias, 0.0, 1.0).mean()) if res.n else float("nan"))

    @property
    def static(self) -> dict[str, Any]:
        """Geometry and agent lists that do not change during a run (computed once)."""
        if self._static is None:
            self._static = _static_layers(self.model)
        return self._static


class ExplorerModel(mesa.Model):
    """The model behind the page: one run, or two in compare mode, stepped in lockstep.

    Args:
        settings: what the controls hold. None takes the current session's settings (this is
            how SolaraViz's Reset button, which calls the class without arguments, rebuilds the
            model from the controls).
    """

    def __init__(self, settings: Settings | None = None):
        if settings is None:
            settings = current_settings.value
        super().__init__(rng=int(settings.seed))
        self.settings = settings
        self.runs: list[Run] = [
            Run(label, GovernanceModel(ref, rng=int(settings.seed), **overrides))
            for label, ref, overrides in settings.runs()
        ]

    def step(self) -> None:
        """One day in every run."""
        for run in self.runs:
            run.step()

    @property
    def days(self) -> int:
        """Days simulated so far (the same in every run)."""
        return self.runs[0].model.steps

    @property
    def compare(self) -> bool:
        return len(self.runs) > 1

    @property
    def datacollector(self):
        """Run A's DataCollector, so Mesa's own plot components work on this model too."""
        return self.runs[0].model.datacollector


# --------------------------------------------------------------------------- map layers
MAX_BLOCKS_PER_SIDE = 64     # the coloured layer has at most 64 x 64 blocks (< Altair's 5000 rows)
# staff markers per role at most; with more agents one marker stands for several
MAX_MARKERS = {"grid worker": 400, "police officer": 400, "volunteer": 120, "rider": 120}
MAX_INCIDENT_MARKERS = 2000

LAYERS = {
    "density": ("Population density", "people per km²"),
    "safety": ("Perceived safety", "mean score of residents, 0-1"),
    "backlog": ("Unresolved backlog", "reported cases not truly resolved"),
}
STATE_LABELS = ("latent (not yet found)", "reported, waiting", "in hand", "closed on paper only")
STATE_COLOURS = ("#8c6bb1", "#ff7f0e", "#1f77b4", "#d62728")
CATEGORY_SHAPES = ("circle", "square", "triangle-up", "diamond", "cross", "triangle-down")
ROLE_NAMES = ("grid worker", "police officer", "volunteer", "rider")
ROLE_COLOURS = ("#1a9850", "#08306b", "#c51b7d", "#8c510a")
ROLE_SHAPES = ("triangle-up", "square", "circle", "diamond")
RUN_COLOURS = ("#1f77b4", "#d62728")


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
        name = f"govsim_{len(self.datasets)}"  # not "data_N": Vega-Lite names its own sources so
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


def block_factor(width: int, height: int, max_side: int = MAX_BLOCKS_PER_SIDE) -> int:
    """Cells per block side so that the coloured layer has at most ``max_side`` blocks a side."""
    return max(1, math.ceil(max(width, height) / max_side))


def _jitter(ids: np.ndarray, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic offsets in [-0.35, 0.35] of a cell, so markers in one cell do not hide
    each other (a hash of the id, not the model's random streams)."""
    h = (np.asarray(ids, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(salt)) % np.uint64(1 << 32)
    a = (h & np.uint64(0xFFFF)).astype(np.float64) / 65535.0
    b = (h >> np.uint64(16)).astype(np.float64) / 65535.0
    return 0.7 * a - 0.35, 0.7 * b - 0.35


def _blocks(values: np.ndarray, width: int, height: int, f: int, how: str,
            weights: np.ndarray | None = None) -> np.ndarray:
    """Aggregate a per-cell array (row-major, y * width + x) into f x f blocks: sum, mean, or
    weighted mean. Returns shape (ceil(height/f), ceil(width/f))."""
    bw, bh = math.ceil(width / f), math.ceil(height / f)
    a = np.zeros((bh * f, bw * f))
    a[:height, :width] = values.reshape(height, width)
    if how == "sum":
        return a.reshape(bh, f, bw, f).sum(axis=(1, 3))
    if how == "wmean":
        w = np.zeros((bh * f, bw * f))
        w[:height, :width] = weights.reshape(height, width)
        num = (a * w).reshape(bh, f, bw, f).sum(axis=(1, 3))
        den = w.reshape(bh, f, bw, f).sum(axis=(1, 3))
        return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
    cnt = np.zeros((bh * f, bw * f))
    cnt[:height, :width] = 1.0
    return a.reshape(bh, f, bw, f).sum(axis=(1, 3)) / cnt.reshape(bh, f, bw, f).sum(axis=(1, 3))


def boundary_segments(labels: np.ndarray) -> pd.DataFrame:
    """Line segments (x, y, x2, y2, in block units, y down) where the label changes between
    neighbouring blocks, plus the outline; collinear unit edges merged into runs."""
    bh, bw = labels.shape
    segs: list[tuple[float, float, float, float]] = []
    # vertical edges at x = i (between column i-1 and i); outline at 0 and bw
    diff_v = np.ones((bh, bw + 1), dtype=bool)
    diff_v[:, 1:bw] = labels[:, 1:] != labels[:, :-1]
    for x in range(bw + 1):
        col = diff_v[:, x]
        ys = np.flatnonzero(np.diff(np.concatenate([[0], col.astype(np.int8), [0]])))
        for y0, y1 in zip(ys[0::2], ys[1::2], strict=True):
            segs.append((x, y0, x, y1))
    diff_h = np.ones((bh + 1, bw), dtype=bool)
    diff_h[1:bh, :] = labels[1:, :] != labels[:-1, :]
    for y in range(bh + 1):
        row = diff_h[y, :]
        xs = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        for x0, x1 in zip(xs[0::2], xs[1::2], strict=True):
            segs.append((x0, y, x1, y))
    return pd.DataFrame(segs, columns=["x", "y", "x2", "y2"], dtype=float)


def _static_layers(model: GovernanceModel) -> dict[str, Any]:
    city = model.city
    w, h = city.width, city.height
    f = block_factor(w, h)
    bw, bh = math.ceil(w / f), math.ceil(h / f)
    # each block shows the grid of its central cell
    cy = np.minimum(np.arange(bh) * f + f // 2, h - 1)
    cx = np.minimum(np.arange(bw) * f + f // 2, w - 1)
    block_cell = (cy[:, None] * w + cx[None, :])
    block_grid = city.grid[block_cell]
    workers = list(model.agents_by_type.get(GridWorker, []))
    officers = list(model.agents_by_type.get(PoliceOfficer, []))
    vols = list(model.agents_by_type.get(Volunteer, []))
    officer_beat = np.array([a.beat for a in officers], dtype=np.int64)
    order = np.argsort(officer_beat, kind="stable")
    rank = np.empty(len(officers), dtype=np.int64)
    if len(officers):
        starts = np.searchsorted(officer_beat[order], officer_beat[order], side="left")
        rank[order] = np.arange(len(officers)) - starts
    helpers = [a for a in vols if a.kind != "rider"]
    riders = [a for a in vols if a.kind == "rider"]
    # bounding boxes of grids (grids are rectangles of the partition; the box outlines a
    # selected grid)
    gx, gy = city.grid_cells % w, city.grid_cells // w
    ptr = city.grid_cell_ptr
    gx0 = np.minimum.reduceat(gx, ptr[:-1]) if city.n_grids else np.zeros(0)
    gx1 = np.maximum.reduceat(gx, ptr[:-1]) + 1 if city.n_grids else np.zeros(0)
    gy0 = np.minimum.reduceat(gy, ptr[:-1]) if city.n_grids else np.zeros(0)
    gy1 = np.maximum.reduceat(gy, ptr[:-1]) + 1 if city.n_grids else np.zeros(0)
    return {
        "f": f, "bw": bw, "bh": bh, "block_grid": block_grid,
        "boundaries": boundary_segments(block_grid),
        "worker_grid": np.array([a.grid for a in workers], dtype=np.int64),
        "worker_cell": np.array([a.cell for a in workers], dtype=np.int64),
        "worker_id": np.array([a.unique_id for a in workers], dtype=np.int64),
        "officer_beat": officer_beat, "officer_rank": rank,
        "officer_id": np.array([a.unique_id for a in officers], dtype=np.int64),
        "helper_cell": np.array([a.home_cell for a in helpers], dtype=np.int64),
        "helper_id": np.array([a.unique_id for a in helpers], dtype=np.int64),
        "rider_cell": np.array([a.home_cell for a in riders], dtype=np.int64),
        "rider_id": np.array([a.unique_id for a in riders], dtype=np.int64),
        "grid_box": np.column_stack([gx0, gy0, gx1, gy1]).astype(float),
    }


def in_hand_ids(model: GovernanceModel) -> np.ndarray:
    """Incidents being handled right now (in service in a handler pool)."""
    ids = [i for pool in model.dispatcher.pools for i in pool.in_service_ids()]
    return np.asarray(ids, dtype=np.int64)


def grid_table(model: GovernanceModel) -> pd.DataFrame:
    """Per-grid figures: population, worker workload, open incidents (found and not yet
    found), unresolved backlog and residents' mean perceived safety."""
    city = model.city
    g = city.n_grids
    log = model.incidents
    n = log.n
    st = log.state[:n]
    cells = log.cell[:n]
    grid_of = city.grid[cells]
    found = np.bincount(grid_of[st == KNOWN], minlength=g)
    latent = np.bincount(grid_of[st == UNDISCOVERED], minlength=g)
    paper = np.bincount(grid_of[st == PAPER_CLOSED], minlength=g)
    res = model.residents
    rg = city.grid[res.home]
    cnt = np.bincount(rg, minlength=g)
    safety = np.divide(np.bincount(rg, weights=res.safety, minlength=g), cnt,
                       out=np.full(g, np.nan), where=cnt > 0)
    util = np.asarray(model.patrols.worker_util_grid, dtype=float)
    if model.steps == 0:
        util = np.full(g, np.nan)   # no working day yet
    return pd.DataFrame({
        "grid": np.arange(g),
        "population": city.grid_population.astype(np.int64),
        "worker_utilisation": util,
        "open_reported": found.astype(np.int64),
        "open_latent": latent.astype(np.int64),
        "open_incidents": (found + latent + paper).astype(np.int64),
        "unresolved_backlog": (found + paper).astype(np.int64),
        "perceived_safety": safety,
    })


def cell_layer(model: GovernanceModel, layer: str) -> np.ndarray:
    """The coloured layer's value per cell."""
    city = model.city
    if layer == "density":
        return city.population / city.cell_km**2
    if layer == "safety":
        return model.residents.cell_mean(model.residents.safety)
    if layer == "backlog":
        log = model.incidents
        st = log.state[: log.n]
        sel = (st == KNOWN) | (st == PAPER_CLOSED)
        return np.bincount(log.cell[: log.n][sel], minlength=city.n_cells).astype(float)
    raise ValueError(f"unknown layer {layer!r}; layers are {', '.join(LAYERS)}")


@dataclass
class MapData:
    """Everything one map shows, in block coordinates (x right, y down; one unit = f cells)."""

    run: str
    day: int
    layer: str
    factor: int                  # cells per block side
    width: int                   # blocks
    height: int
    cells: pd.DataFrame          # x, y, value, grid (one row per block)
    boundaries: pd.DataFrame     # x, y, x2, y2
    grids: pd.DataFrame          # grid_table()
    incidents: pd.DataFrame      # x, y, category, state, id
    staff: pd.DataFrame          # x, y, role
    role_scale: dict[str, int] = field(default_factory=dict)  # agents per marker
    incidents_shown: int = 0
    incidents_open: int = 0


def map_data(run: Run, layer: str = "density") -> MapData:
    """The map's layers for one run (see the module docstring)."""
    model = run.model
    city = model.city
    s = run.static
    f, bw, bh = s["f"], s["bw"], s["bh"]
    w = city.width
    # coloured layer
    vals = cell_layer(model, layer)
    if f == 1:
        block = vals.reshape(city.height, w)
    elif layer == "density":
        n_cells = _blocks(np.ones(city.n_cells), w, city.height, f, "sum")
        block = _blocks(city.population, w, city.height, f, "sum") / (n_cells * city.cell_km**2)
    elif layer == "safety":
        block = _blocks(vals, w, city.height, f, "wmean", weights=model.residents.per_cell.astype(float))
    else:
        block = _blocks(vals, w, city.height, f, "sum")
    yy, xx = np.mgrid[0:bh, 0:bw]
    cells = pd.DataFrame({"x": xx.ravel().astype(float), "y": yy.ravel().astype(float),
                          "value": block.ravel(), "grid": s["block_grid"].ravel().astype(np.int64)})
    cells["x2"] = cells["x"] + 1.0
    cells["y2"] = cells["y"] + 1.0

    # open incidents
    log = model.incidents
    n = log.n
    st = log.state[:n]
    open_ids = np.flatnonzero((st == UNDISCOVERED) | (st == KNOWN) | (st == PAPER_CLOSED))
    n_open = len(open_ids)
    if n_open > MAX_INCIDENT_MARKERS:
        open_ids = open_ids[np.linspace(0, n_open - 1, MAX_INCIDENT_MARKERS).astype(np.int64)]
    ost = st[open_ids]
    state_code = np.select([ost == UNDISCOVERED, ost == PAPER_CLOSED], [0, 3], default=1)
    busy = in_hand_ids(model)
    state_code = np.where((ost == KNOWN) & np.isin(open_ids, busy), 2, state_code)
    ocell = log.cell[open_ids].astype(np.int64)
    jx, jy = _jitter(open_ids, 1)
    incidents = pd.DataFrame({
        "x": ((ocell % w) + 0.5 + jx) / f, "y": ((ocell // w) + 0.5 + jy) / f,
        "category": np.asarray(CATEGORIES, dtype=object)[log.category[open_ids]],
        "state": np.asarray(STATE_LABELS, dtype=object)[state_code],
        "id": open_ids.astype(np.int64),
        "grid": city.grid[ocell].astype(np.int64),
    })

    # staff
    p = model.patrols
    parts = []
    scale: dict[str, int] = {}

    def add(role: str, cells_: np.ndarray, ids: np.ndarray) -> None:
        k = max(1, math.ceil(len(cells_) / MAX_MARKERS[role]))
        scale[role] = k
        cells_, ids = cells_[::k], ids[::k]
        if len(cells_) == 0:
            return
        jx_, jy_ = _jitter(ids, 7)
        parts.append(pd.DataFrame({"x": ((cells_ % w) + 0.5 + jx_) / f,
                                   "y": ((cells_ // w) + 0.5 + jy_) / f, "role": role,
                                   "grid": city.grid[cells_].astype(np.int64)}))

    wc = p.worker_last_cell[s["worker_grid"]] if len(s["worker_grid"]) else np.zeros(0, np.int64)
    add(ROLE_NAMES[0], np.where(wc >= 0, wc, s["worker_cell"]), s["worker_id"])
    add(ROLE_NAMES[1], _officer_cells(model, s), s["officer_id"])
    add(ROLE_NAMES[2], s["helper_cell"], s["helper_id"])
    add(ROLE_NAMES[3], _rider_cells(model, s), s["rider_id"])
    staff = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["x", "y", "role", "grid"])

    return MapData(run=run.label, day=model.steps, layer=layer, factor=f, width=bw, height=bh,
                   cells=cells, boundaries=s["boundaries"], grids=grid_table(model),
                   incidents=incidents, staff=staff, role_scale=scale,
                   incidents_shown=len(open_ids), incidents_open=n_open)


def _officer_cells(model: GovernanceModel, s: dict[str, Any]) -> np.ndarray:
    """Each officer at one of the cells its beat patrolled today (officers of one beat spread
    over the beat's visited cells); before the first day, at the beat's first cell."""
    p = model.patrols
    beats = s["officer_beat"]
    if len(beats) == 0:
        return np.zeros(0, np.int64)
    fallback = np.where(p.beat_last_cell[beats] >= 0, p.beat_last_cell[beats],
                        p.beat_cells[p.beat_ptr[beats]])
    if p.today is None:
        return fallback.astype(np.int64)
    visited = np.flatnonzero(p.today.police > 0)
    vb = p.beat_of_cell[visited]
    order = np.argsort(vb, kind="stable")
    visited, vb = visited[order], vb[order]
    cnt = np.bincount(vb, minlength=p.n_beats)
    start = np.concatenate([[0], np.cumsum(cnt)])[:-1]
    c = cnt[beats]
    pos = start[beats] + np.where(c > 0, s["officer_rank"] % np.maximum(c, 1), 0)
    return np.where(c > 0, visited[np.minimum(pos, max(len(visited) - 1, 0))] if len(visited) else fallback,
                    fallback).astype(np.int64)


def _rider_cells(model: GovernanceModel, s: dict[str, Any]) -> np.ndarray:
    """Riders at cells they passed today (drawn in proportion to today's passes with a
    generator of the page's own, never the model's streams); before the first day at home."""
    p = model.patrols
    home = s["rider_cell"]
    if p.today is None or len(home) == 0 or p.today.rider.sum() <= 0:
        return home
    rng = np.random.default_rng(model.steps)
    w = p.today.rider / p.today.rider.sum()
    return rng.choice(len(w), size=len(home), p=w).astype(np.int64)


# --------------------------------------------------------------------------- map chart
def map_chart(data: list[MapData], show_incidents: bool = True, show_staff: bool = True,
              show_boundaries: bool = True, selected: tuple[int, int] | None = None,
              size: int = 520) -> Figure:
    """One map per run, side by side with a shared colour scale (so two scenarios read alike).

    ``selected`` = (run index, grid) outlines that grid."""
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
             "grids": fig.data(d.grids[["grid", "population", "worker_utilisation", "open_incidents",
                                        "open_reported", "open_latent", "perceived_safety"]])}
        if show_boundaries:
            r["boundaries"] = fig.data(d.boundaries)
        if show_incidents and len(d.incidents):
            r["incidents"] = fig.data(d.incidents[["x", "y", "category", "state", "grid"]], 3)
        if show_staff and len(d.staff):
            labels = {role: _role_label(role, d.role_scale.get(role, 1)) for role in ROLE_NAMES}
            r["staff"] = fig.data(pd.DataFrame({"x": d.staff["x"], "y": d.staff["y"],
                                                "who": d.staff["role"].map(labels), "grid": d.staff["grid"]}), 3)
        if selected is not None and selected[0] == k:
            box = _grid_box(d, selected[1])
            r["selected"] = fig.data([box] if box else [])
        refs.append(r)
    fig.build(lambda: _map_spec(data, refs, title, unit, size))
    return fig


def _map_spec(data: list[MapData], refs: list[dict[str, Any]], title: str, unit: str, size: int):
    layer = data[0].layer
    grid_fields = ["population", "worker_utilisation", "open_incidents", "open_reported",
                   "open_latent", "perceived_safety"]
    maps = []
    for k, (d, r) in enumerate(zip(data, refs, strict=True)):
        px = size / max(d.width, d.height)
        xs = alt.Scale(domain=[0, d.width], nice=False, zero=False)
        ys = alt.Scale(domain=[0, d.height], nice=False, zero=False, reverse=True)
        noax = alt.Axis(labels=False, ticks=False, title=None, grid=False, domain=False)
        x = alt.X("x:Q", scale=xs, axis=noax)
        y = alt.Y("y:Q", scale=ys, axis=noax)
        first = k == 0
        colour = alt.Color("value:Q", title=f"{title} ({unit})", scale=_layer_scale(layer),
                           legend=alt.Legend(orient="right", gradientLength=140, format="~s",
                                             tickCount=4) if first else None)
        layers = [alt.Chart(r["cells"]).transform_lookup(
            lookup="grid", from_=alt.LookupData(r["grids"], key="grid", fields=grid_fields),
        ).transform_calculate(x2="datum.x + 1", y2="datum.y + 1", run=str(k)).mark_rect().encode(
            x=x, x2="x2:Q", y=y, y2="y2:Q", color=colour,
            tooltip=[
                alt.Tooltip("grid:Q", title="Grid"),
                alt.Tooltip("population:Q", title="Population", format=","),
                alt.Tooltip("worker_utilisation:Q", title="Worker utilisation", format=".0%"),
                alt.Tooltip("open_incidents:Q", title="Open incidents"),
                alt.Tooltip("open_reported:Q", title="  reported, not closed"),
                alt.Tooltip("open_latent:Q", title="  not yet found"),
                alt.Tooltip("perceived_safety:Q", title="Perceived safety (0-1)", format=".2f"),
                alt.Tooltip("value:Q", title=f"{title} here", format=",.2f"),
            ])]
        if "boundaries" in r:
            layers.append(alt.Chart(r["boundaries"]).mark_rule(color="#333333", strokeWidth=0.8, opacity=0.75)
                          .encode(x=x, y=y, x2="x2:Q", y2="y2:Q"))
        if "incidents" in r:
            layers.append(alt.Chart(r["incidents"]).transform_calculate(run=str(k)).mark_point(
                filled=True, size=max(18, min(60, px * px * 0.35)), stroke="white", strokeWidth=0.4, opacity=0.95,
            ).encode(
                x=x, y=y,
                shape=alt.Shape("category:N", title="Open incident (category)",
                                scale=alt.Scale(domain=list(CATEGORIES), range=list(CATEGORY_SHAPES)),
                                legend=alt.Legend(orient="right") if first else None),
                fill=alt.Fill("state:N", title="Incident state",
                              scale=alt.Scale(domain=list(STATE_LABELS), range=list(STATE_COLOURS)),
                              legend=alt.Legend(orient="right") if first else None),
                tooltip=[alt.Tooltip("category:N", title="Incident"), alt.Tooltip("state:N", title="State"),
                         alt.Tooltip("grid:Q", title="Grid (click for details)")]))
        if "staff" in r:
            domain = [_role_label(role, d.role_scale.get(role, 1)) for role in ROLE_NAMES]
            staff_legend = alt.Legend(orient="right") if first else None
            layers.append(alt.Chart(r["staff"]).transform_calculate(run=str(k)).mark_point(
                filled=False, size=max(16, min(46, px * px * 0.3)), strokeWidth=1.4, opacity=0.9,
            ).encode(
                x=x, y=y,
                stroke=alt.Stroke("who:N", title="Staff (today's position)",
                                  scale=alt.Scale(domain=domain, range=list(ROLE_COLOURS)), legend=staff_legend),
                shape=alt.Shape("who:N", title="Staff (today's position)",
                                scale=alt.Scale(domain=domain, range=list(ROLE_SHAPES)), legend=staff_legend),
                tooltip=[alt.Tooltip("who:N", title="Staff"), alt.Tooltip("grid:Q", title="Grid (click for details)")]))
        if "selected" in r:
            layers.append(alt.Chart(r["selected"]).mark_rect(fill=None, stroke="#ffd700", strokeWidth=3)
                          .encode(x=x, x2="x2:Q", y=y, y2="y2:Q"))
        note = "" if d.factor == 1 else f"1 square = {d.factor} x {d.factor} cells"
        maps.append(alt.layer(*layers)
                    .resolve_scale(shape="independent", fill="independent", stroke="independent")
                    .properties(width=size, height=size * d.height / d.width,
                                title=alt.TitleParams(d.run, subtitle=note, anchor="start")))
    out = maps[0] if len(maps) == 1 else alt.hconcat(*maps, spacing=18).resolve_scale(color="shared")
    return out.configure_view(stroke="#999999").configure_legend(labelLimit=220, titleLimit=220, symbolLimit=40,
                                                                 rowPadding=1, titlePadding=3, padding=2)


def _role_label(role: str, k: int) -> str:
    return role if k == 1 else f"{role} (1 marker = {k})"


def _layer_scale(layer: str) -> alt.Scale:
    if layer == "density":
        return alt.Scale(type="symlog", scheme="greys", constant=100)
    if layer == "safety":
        return alt.Scale(scheme="redyellowgreen")
    return alt.Scale(scheme="orangered", domainMin=0)


def _grid_box(d: MapData, grid: int) -> dict[str, float] | None:
    sel = d.cells["grid"].to_numpy() == grid
    if not sel.any():
        return None
    c = d.cells[sel]
    return {"x": float(c["x"].min()), "x2": float(c["x2"].max()),
            "y": float(c["y"].min()), "y2": float(c["y2"].max())}


# --------------------------------------------------------------------------- charts
SERIES_KEYS = ("closure_rate", "resolution_rate", "backlog", "latent_open",
               *(f"reports_{c}" for c in CHANNELS),
               "survey_share_safe", "survey_ci_low", "survey_ci_high")


def series(model: ExplorerModel) -> pd.DataFrame:
    """Daily values of every run, one row per (run, day): Mesa DataCollector columns plus the
    7-day median time to resolution and the expected share feeling safe."""
    frames = []
    for run in model.runs:
        mv = run.model.datacollector.model_vars
        days = len(mv.get("closure_rate", []))
        if days == 0:
            continue
        df = pd.DataFrame({k: np.asarray(mv[k], dtype=float) for k in SERIES_KEYS if k in mv})
        df.insert(0, "day", np.arange(1, days + 1))
        df.insert(0, "run", run.label)
        df["ttr7_h"] = np.asarray(run.ttr7_h[:days] + [np.nan] * (days - len(run.ttr7_h)))
        df["expected_safe"] = np.asarray(run.expected_safe[:days] + [np.nan] * (days - len(run.expected_safe)))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run", "day", *SERIES_KEYS, "ttr7_h", "expected_safe"])
    return pd.concat(frames, ignore_index=True)


def _day_key(df: pd.DataFrame) -> int:
    """The part of a chart's key that the day axis depends on (none: see ``_day_axis``)."""
    return 0


def _labels(model: ExplorerModel) -> tuple[str, ...]:
    return tuple(r.label for r in model.runs)


def _run_colour(model: ExplorerModel) -> alt.Scale:
    return alt.Scale(domain=list(_labels(model)), range=list(RUN_COLOURS[: len(model.runs)]))


def _empty(title: Any, width: int, height: int, note: str = "Press Step or ▶ to run the model") -> Figure:
    fig = Figure(("empty", repr(title), width, height, note))
    ref = fig.data([{"t": note}])
    fig.build(lambda: alt.Chart(ref).mark_text(fontSize=13, color="#666666")
              .encode(text="t:N").properties(title=title, width=width, height=height))
    return fig


CHART_W, CHART_H = 380, 190


def _day_axis(df: pd.DataFrame | None = None) -> alt.X:
    """Days as whole numbers; the axis spans at least days 1-10 (so early ticks are whole days)."""
    return alt.X("day:Q", title="Day", axis=alt.Axis(format="d", tickMinStep=1),
                 scale=alt.Scale(domain=alt.DomainUnionWith(unionWith=[1, 10]), nice=False))
MEASURES = {"closure_rate": "closed officially", "resolution_rate": "truly resolved"}


def rates_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Official closure rate and true resolution rate (share of recorded cases), per run."""
    df = series(model) if df is None else df
    title = "Closure rate and true resolution rate"
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    fig = Figure(("rates", _labels(model), _day_key(df)))
    long = df.melt(id_vars=["run", "day"], value_vars=list(MEASURES), var_name="measure", value_name="share")
    long["measure"] = long["measure"].map(MEASURES)
    ref = fig.data(long)
    fig.build(lambda: alt.Chart(ref).mark_line(strokeWidth=2).encode(
        x=_day_axis(df),
        y=alt.Y("share:Q", title="Share of recorded cases", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title="Scenario", scale=_run_colour(model)),
        strokeDash=alt.StrokeDash("measure:N", title="Measure",
                                  scale=alt.Scale(domain=list(MEASURES.values()), range=[[1, 0], [5, 3]])),
        tooltip=["run:N", "day:Q", "measure:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(title=title, width=CHART_W, height=CHART_H))
    return fig


def backlog_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Known cases not yet closed, per run."""
    df = series(model) if df is None else df
    title = "Backlog: reported cases not yet closed"
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    fig = Figure(("backlog", _labels(model), _day_key(df)))
    ref = fig.data(df[["run", "day", "backlog"]])
    fig.build(lambda: alt.Chart(ref).mark_line(strokeWidth=2).encode(
        x=_day_axis(df), y=alt.Y("backlog:Q", title="Cases"),
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
    fig = Figure(("ttr", _labels(model), _day_key(df)))
    ref = fig.data(df[["run", "day", "ttr7_h"]].dropna(subset=["ttr7_h"]))
    fig.build(lambda: alt.Chart(ref).mark_line(strokeWidth=2, point=alt.OverlayMarkDef(size=12)).encode(
        x=_day_axis(df), y=alt.Y("ttr7_h:Q", title="Hours"),
        color=alt.Color("run:N", title="Scenario", scale=_run_colour(model)),
        tooltip=["run:N", "day:Q", alt.Tooltip("ttr7_h:Q", title="hours", format=".1f")],
    ).properties(title=title, width=CHART_W, height=CHART_H))
    return fig


def channels_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """Reports per day by channel, stacked (one panel per run in compare mode)."""
    df = series(model) if df is None else df
    title = "Reports by channel (per day, stacked)"
    if df.empty:
        return _empty(title, CHART_W, CHART_H)
    fig = Figure(("channels", _labels(model), _day_key(df)))
    long = df.melt(id_vars=["run", "day"], value_vars=[f"reports_{c}" for c in CHANNELS],
                   var_name="channel", value_name="reports")
    long["channel"] = long["channel"].str.removeprefix("reports_").map(lambda c: CHANNEL_LABELS.get(c, c))
    ref = fig.data(long)

    def make():
        names = [CHANNEL_LABELS.get(c, c) for c in CHANNELS]
        chart = alt.Chart(ref).mark_area().encode(
            x=_day_axis(df),
            y=alt.Y("reports:Q", title="Reports per day", stack="zero"),
            color=alt.Color("channel:N", title="Channel", sort=names,
                            scale=alt.Scale(domain=names, scheme="tableau10"),
                            legend=alt.Legend(orient="bottom", columns=3, labelLimit=200)),
            order=alt.Order("channel:N"),
            tooltip=["run:N", "day:Q", "channel:N", "reports:Q"],
        ).properties(width=CHART_W if not model.compare else CHART_W // 2 - 10, height=CHART_H)
        if model.compare:
            return chart.facet(column=alt.Column("run:N", title=None, sort=list(_labels(model))), title=title)
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
    lows = pd.concat([df["expected_safe"], waves["survey_ci_low"]]).dropna()
    floor = max(0.0, math.floor((lows.min() if len(lows) else 0.9) * 20) / 20 - 0.05)
    fig = Figure(("survey", _labels(model), interval, len(waves) > 0, floor, _day_key(df)))
    line_ref = fig.data(df[["run", "day", "expected_safe"]])
    wave_ref = fig.data(waves) if len(waves) else fig.data(
        [{"day": float(df["day"].max()) / 2, "t": f"first survey wave on day {interval}"}])

    def make():
        colour = alt.Color("run:N", title="Scenario", scale=_run_colour(model))
        layers = [alt.Chart(line_ref).mark_line(strokeWidth=1.2, opacity=0.6).encode(
            x=_day_axis(df),
            y=alt.Y("expected_safe:Q", title="Share feeling safe", axis=alt.Axis(format="%"),
                    scale=alt.Scale(domain=[floor, 1.0])),
            color=colour)]
        if len(waves):
            layers.append(alt.Chart(wave_ref).mark_rule(strokeWidth=2).encode(
                x="day:Q", y="survey_ci_low:Q", y2="survey_ci_high:Q", color=colour))
            layers.append(alt.Chart(wave_ref).mark_point(filled=True, size=50).encode(
                x="day:Q", y="survey_share_safe:Q", color=colour,
                tooltip=["run:N", "day:Q", alt.Tooltip("survey_share_safe:Q", title="share safe", format=".1%"),
                         alt.Tooltip("survey_ci_low:Q", title="95% CI low", format=".1%"),
                         alt.Tooltip("survey_ci_high:Q", title="95% CI high", format=".1%")]))
        else:
            layers.append(alt.Chart(wave_ref).mark_text(color="#666666", dy=-20).encode(x="day:Q", text="t:N"))
        return alt.layer(*layers).properties(title=title, width=CHART_W, height=CHART_H)

    fig.build(make)
    return fig


HEADLINES: tuple[tuple[str, str, str], ...] = (
    # key, label, kind (share: percentage points in differences; count; hours)
    ("closure_rate", "Closure rate (official)", "share"),
    ("resolution_rate", "True resolution rate", "share"),
    ("backlog", "Backlog (cases)", "count"),
    ("ttr7_h", "Median time to resolution, 7 days (h)", "hours"),
    ("latent_open", "Problems not yet found", "count"),
    ("survey_share_safe", "Surveyed share feeling safe (last wave)", "share"),
)


def headline(run: Run) -> dict[str, float]:
    """The run's headline outcomes today (the last survey wave for the survey)."""
    mv = run.model.datacollector.model_vars
    out: dict[str, float] = {}
    for key, _, _ in HEADLINES:
        if key == "ttr7_h":
            out[key] = run.ttr7_h[-1] if run.ttr7_h else float("nan")
        elif key == "survey_share_safe":
            s = run.model.safety.surveys
            out[key] = s[-1].share_safe if s else float("nan")
        else:
            v = mv.get(key, [])
            out[key] = float(v[-1]) if len(v) else float("nan")
    return out


def headline_table(model: ExplorerModel) -> pd.DataFrame:
    """One row per headline outcome: each run's value and, in compare mode, B - A."""
    rows = []
    heads = [headline(r) for r in model.runs]
    for key, label, kind in HEADLINES:
        row = {"outcome": label}
        for r, h in zip(model.runs, heads, strict=True):
            row[r.label] = _fmt(h[key], kind)
        if model.compare:
            row["B − A"] = _fmt(heads[1][key] - heads[0][key], kind, diff=True)
        rows.append(row)
    return pd.DataFrame(rows)


def difference_series(model: ExplorerModel, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """B - A per day for the headline outcomes (rates in percentage points)."""
    df = series(model) if df is None else df
    if not model.compare or df.empty:
        return pd.DataFrame(columns=["day", "outcome", "difference"])
    a = df[df["run"] == model.runs[0].label].set_index("day")
    b = df[df["run"] == model.runs[1].label].set_index("day")
    out = []
    for key, label, unit, mult in (("closure_rate", "Closure rate (pp)", "pp", 100.0),
                                   ("resolution_rate", "True resolution rate (pp)", "pp", 100.0),
                                   ("backlog", "Backlog (cases)", "cases", 1.0),
                                   ("ttr7_h", "Median time to resolution (h)", "h", 1.0)):
        d = (b[key] - a[key]) * mult
        out.append(pd.DataFrame({"day": d.index.to_numpy(), "outcome": label, "difference": d.to_numpy()}))
    return pd.concat(out, ignore_index=True)


def difference_chart(model: ExplorerModel, df: pd.DataFrame | None = None) -> Figure:
    """B - A per day for the headline outcomes, one small panel each."""
    title = "Difference B − A as it evolves"
    diff = difference_series(model, df)
    if diff.empty:
        return _empty(title, CHART_W, CHART_H, "Run the model to see the difference")
    labels = _labels(model)
    fig = Figure(("difference", labels, _day_key(diff)))
    ref = fig.data(diff)

    def make():
        zero = alt.Chart().mark_rule(color="#888888", strokeDash=[3, 3]).encode(y=alt.datum(0))
        line = alt.Chart().mark_line(strokeWidth=2, color="#6a3d9a").encode(
            x=_day_axis(diff), y=alt.Y("difference:Q", title=None),
            tooltip=["day:Q", "outcome:N", alt.Tooltip("difference:Q", format="+.2f")])
        return (alt.layer(zero, line, data=ref)
                .properties(width=CHART_W // 2 - 12, height=CHART_H // 2 - 8)
                .facet(facet=alt.Facet("outcome:N", title=None), columns=2,
                       title=alt.TitleParams(title, subtitle=f"B = {labels[1]}, A = {labels[0]}"))
                .resolve_scale(y="independent"))

    fig.build(make)
    return fig


def _fmt(v: float, kind: str, diff: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if kind == "share":
        return f"{100 * v:+.1f} pp" if diff else f"{100 * v:.1f}%"
    if kind == "hours":
        return f"{v:+.1f}" if diff else f"{v:.1f}"
    return f"{v:+,.0f}" if diff else f"{v:,.0f}"


# --------------------------------------------------------------------------- session state
# Solara reactive variables are per browser session (per kernel).
current_settings: solara.Reactive[Settings] = solara.reactive(Settings())
map_layer = solara.reactive("density")
show_incidents = solara.reactive(True)
show_staff = solara.reactive(True)
show_boundaries = solara.reactive(True)
selected_grid: solara.Reactive[tuple[int, int] | None] = solara.reactive(None)
settings_error = solara.reactive("")


def apply_settings(model_r: solara.Reactive, new: Settings) -> bool:
    """Rebuild the model from new settings (same seed unless the seed changed). On a bad
    value the old model stays and the error is shown."""
    try:
        m = ExplorerModel(new)
    except (ScenarioError, ValueError, FileNotFoundError) as exc:
        settings_error.set(str(exc))
        return False
    settings_error.set("")
    current_settings.set(new)
    selected_grid.set(None)
    model_r.set(m)  # every panel gets the new model: no need for Mesa's force_update here
    return True


# --------------------------------------------------------------------------- components
@solara.component
def ScenarioPanel(model_r: solara.Reactive):
    """Sidebar card: scenario, seed, levers and compare mode. Every change rebuilds the model."""
    s = current_settings.value
    values = lever_values(s)
    bounds = lever_bounds(s)
    names = scenario_names(s.scenario if s.scenario not in scenario_names() else None)
    compare_options = {"off": COMPARE_OFF, f"{scenario_label(s.scenario)} without lever changes": BASELINE}
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
                        on_value=lambda v: v is not None and apply_settings(model_r, replace(s, seed=int(v))))
        solara.HTML(tag="div", unsafe_innerHTML="<b>Levers</b> (a change rebuilds the model with the same seed)",
                    style={"margin": "8px 0 2px 0"})
        for lv in LEVERS:
            if lv.kind == "bool":
                with solara.Div(classes=[f"govsim-lever-{lv.key.replace('.', '-')}"]):
                    solara.Checkbox(label=lv.label, value=bool(values[lv.key]), on_value=lever(lv.key))
            else:
                solara.InputInt(lv.label, value=int(values[lv.key]), continuous_update=False,
                                on_value=lever(lv.key), classes=[f"govsim-lever-{lv.key.replace('.', '-')}"])
        solara.Select("Compare with (same seed, in lockstep)", value=compare_label,
                      values=list(compare_options),
                      on_value=lambda v: apply_settings(model_r, replace(s, compare=compare_options[v])))
        if settings_error.value:
            solara.Error(settings_error.value)
        if s.levers:
            solara.Button("Back to the file's values", text=True,
                          on_click=lambda: apply_settings(model_r, replace(s, levers=())))


def _timed(name: str):
    """Record how long a component's body takes (the page-side cost of an update)."""
    class _T:
        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            RENDER_SECONDS[name] = time.perf_counter() - self.t0
    return _T()


RENDER_SECONDS: dict[str, float] = {}


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
            solara.Text(f"Levers: {lever_txt}", classes=["govsim-levers"], style={"font-size": "13px"})
            solara.HTML(tag="div", unsafe_innerHTML=_html_table(headline_table(model)),
                        classes=["govsim-headlines"])


def _html_table(df: pd.DataFrame) -> str:
    """A small plain table (solara.Markdown would pull in extra browser libraries)."""
    from html import escape

    cell = "padding:2px 14px 2px 0;border-bottom:1px solid #e0e0e0"
    head = "".join(f'<th style="{cell};text-align:{"left" if i == 0 else "right"}">{escape(str(c))}</th>'
                   for i, c in enumerate(df.columns))
    body = "".join("<tr>" + "".join(f'<td style="{cell};text-align:{"left" if i == 0 else "right"}">'
                                    f"{escape(str(v))}</td>" for i, v in enumerate(r)) + "</tr>"
                   for r in df.itertuples(index=False))
    return (f'<table style="border-collapse:collapse;font-size:13px"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _lever_text(v: Any) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else f"{v:,}"


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
        on_click = _on_map_click

        with solara.Column(gap="4px", style={"padding": "4px 8px"}, classes=["govsim-map"]):
            with solara.Row(gap="16px", style={"align-items": "center", "flex-wrap": "wrap"}):
                by_label = {title: key for key, (title, _) in LAYERS.items()}
                solara.ToggleButtonsSingle(value=LAYERS[map_layer.value][0], values=list(by_label),
                                           on_value=lambda v: map_layer.set(by_label[v]), dense=True,
                                           classes=["govsim-layer"])
                solara.Checkbox(label="incidents", value=show_incidents)
                solara.Checkbox(label="staff", value=show_staff)
                solara.Checkbox(label="grid boundaries", value=show_boundaries)
            solara.Text(" | ".join(_map_caption(d) for d in data), classes=["govsim-map-caption"],
                        style={"font-size": "13px", "color": "#444"})
            if model.compare:
                VegaFigure(spec, on_click=on_click)
                GridDetails(model)
            else:
                with solara.Row(gap="12px", style={"align-items": "flex-start"}):
                    VegaFigure(spec, on_click=on_click)
                    GridDetails(model)


def _on_map_click(datum) -> None:
    """A click on the map selects the grid under the pointer (run index and grid id)."""
    if datum and datum.get("grid") is not None:
        selected_grid.set((int(datum.get("run", 0) or 0), int(datum["grid"])))


def _map_caption(d: MapData) -> str:
    counts = d.incidents["state"].value_counts() if len(d.incidents) else {}
    scale = d.incidents_open / max(1, d.incidents_shown)
    parts = ", ".join(f"{round(counts.get(s, 0) * scale):,} {s}" for s in STATE_LABELS)
    return f"{d.run}, day {d.day}: {d.incidents_open:,} open incidents ({parts})"


@solara.component
def GridDetails(model: ExplorerModel):
    sel = selected_grid.value
    with solara.Column(style={"min-width": "220px", "max-width": "300px"}, classes=["govsim-grid-details"]):
        if sel is None or sel[0] >= len(model.runs):
            solara.HTML(tag="div", unsafe_innerHTML="<b>Grid details</b><br>Hover over a grid for its "
                        "figures; click it to keep them here and outline it on the map.")
            return
        k, g = sel
        run = model.runs[k]
        t = grid_table(run.model)
        if g >= len(t):
            return
        row = t.iloc[g]
        city = run.model.city
        safety = "–" if math.isnan(row.perceived_safety) else f"{row.perceived_safety:.2f}"
        items = [
            f"population: {int(row.population):,}",
            f"area: {city.grid_area_km2[g]:.2f} km²",
            f"grid worker utilisation: {_fmt(row.worker_utilisation, 'share')}",
            (f"open incidents: {int(row.open_incidents)} ({int(row.open_reported)} reported, "
             f"{int(row.open_latent)} not yet found)"),
            f"unresolved backlog: {int(row.unresolved_backlog)}",
            f"perceived safety (mean, 0-1): {safety}",
        ]
        from html import escape

        solara.HTML(tag="div", unsafe_innerHTML=f"<b>Grid {g}</b> ({escape(run.label)}, day {model.days})<ul>"
                    + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
        solara.Button("clear", text=True, on_click=lambda: selected_grid.set(None))


@solara.component
def VegaFigure(spec: dict[str, Any], on_click=None):
    """Show a Vega-Lite spec (from :meth:`Figure.spec`) with the widget ``solara.FigureAltair``
    uses. Pass the same dict object while nothing changed: then the browser gets nothing."""
    return solara.widgets.VegaLite.element(spec=spec, on_click=on_click,
                                           listen_to_click=on_click is not None)


def use_spec(build, dependencies: list[Any]) -> dict[str, Any]:
    """A chart spec rebuilt only when the model, its day or a display switch changed. Solara
    may render a panel several times per simulated day (once per state change it hears of);
    only the first of those builds anything."""
    return solara.use_memo(build, dependencies=dependencies)


def _chart_component(name: str, builder):
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
    update_counter.get()
    with _timed("compare"):
        spec = use_spec(lambda: difference_chart(model).spec() if model.compare else None, [model, model.days])
        with solara.Div(classes=["govsim-chart-compare"], style={"padding": "4px"}):
            if not model.compare:
                solara.HTML(tag="div", unsafe_innerHTML=(
                    "<b>Compare mode is off.</b> Choose a scenario under <i>Compare with</i> in the "
                    "sidebar: it runs in lockstep with the same seed (common random numbers), its map "
                    "appears beside this one, its lines join the charts, and the difference of the "
                    "headline outcomes is shown here as it evolves."), style={"padding": "8px"})
                return
            VegaFigure(spec)


# (component, page, (x, y, w, h)) in SolaraViz's 12-column draggable grid (rows of 30 px).
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


