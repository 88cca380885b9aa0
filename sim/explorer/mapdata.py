"""The map's layers as tables: what :func:`sim.explorer.charts.map_chart` draws for one run.

* a coloured layer per cell (population density, perceived safety or unresolved backlog),
  aggregated into blocks of cells on big lattices (at most 64 x 64 blocks), never one marker
  per resident;
* the grid boundaries (where the grid label changes between neighbouring blocks);
* per-grid figures for the tooltip and the details panel (:func:`grid_table`);
* open incidents by category and state (at most 2000 markers, evenly sampled);
* staff markers: grid workers, police, volunteers and riders (volunteers and riders sampled,
  one marker standing for several agents).

Coordinates are in blocks (x right, y down; one unit = ``factor`` cells). Positions inside a
cell are jittered by a hash of the agent's or incident's id, never with the model's random
streams, so drawing the map cannot change a run.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.agents import GridWorker, PoliceOfficer, Volunteer
from sim.codes import CATEGORIES, OPEN_STATES, State
from sim.model import GovernanceModel

if TYPE_CHECKING:
    from sim.explorer.state import Run

#: The coloured layer has at most 64 x 64 blocks (Altair's default limit is 5000 rows).
MAX_BLOCKS_PER_SIDE = 64
#: Staff markers per role at most; with more agents one marker stands for several.
MAX_MARKERS = {"grid worker": 400, "police officer": 400, "volunteer": 120, "rider": 120}
MAX_INCIDENT_MARKERS = 2000

#: The coloured layers: key -> (title, unit).
LAYERS = {
    "density": ("Population density", "people per km²"),
    "safety": ("Perceived safety", "mean score of residents, 0-1"),
    "backlog": ("Unresolved backlog", "reported cases not truly resolved"),
}


class MapState(IntEnum):
    """How the map shows an open incident: the open :class:`~sim.codes.State` s, with KNOWN
    split into waiting and in hand (in service in a handler pool)."""

    LATENT = 0
    WAITING = 1
    IN_HAND = 2
    PAPER_CLOSED = 3


#: Legend text of each :class:`MapState`, in code order.
STATE_LABELS = ("latent (not yet found)", "reported, waiting", "in hand", "closed on paper only")
ROLE_NAMES = ("grid worker", "police officer", "volunteer", "rider")


def block_factor(width: int, height: int, max_side: int = MAX_BLOCKS_PER_SIDE) -> int:
    """Cells per block side so that the coloured layer has at most ``max_side`` blocks a side."""
    return max(1, math.ceil(max(width, height) / max_side))


def _jitter(ids: np.ndarray, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic offsets in [-0.35, 0.35] of a cell, so markers in one cell do not hide
    each other (a multiplicative hash of the id, not the model's random streams)."""
    h = (np.asarray(ids, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(salt)) \
        % np.uint64(1 << 32)
    a = (h & np.uint64(0xFFFF)).astype(np.float64) / 65535.0
    b = (h >> np.uint64(16)).astype(np.float64) / 65535.0
    return 0.7 * a - 0.35, 0.7 * b - 0.35


def _blocks(values: np.ndarray, width: int, height: int, f: int, how: str,
            weights: np.ndarray | None = None) -> np.ndarray:
    """Aggregate a per-cell array (row-major, y * width + x) into f x f blocks: ``"sum"``,
    ``"mean"`` or weighted mean ``"wmean"``. Returns shape (ceil(height/f), ceil(width/f))."""
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
    # mean over the cells that exist (blocks on the right and bottom edges may be partial)
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


# Static layers per model, computed once; weak keys so a discarded model frees its entry.
_STATIC: weakref.WeakKeyDictionary[GovernanceModel, dict[str, Any]] = weakref.WeakKeyDictionary()


def static_layers(model: GovernanceModel) -> dict[str, Any]:
    """Geometry and agent lists that do not change during a run (computed once per model):
    the block factor and size, each block's grid, the boundaries, and the staff's ids, homes,
    grids and beats."""
    cached = _STATIC.get(model)
    if cached is None:
        cached = _STATIC[model] = _compute_static_layers(model)
    return cached


def _compute_static_layers(model: GovernanceModel) -> dict[str, Any]:
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
    # each officer's rank within its beat: officers of one beat spread over its visited cells
    order = np.argsort(officer_beat, kind="stable")
    rank = np.empty(len(officers), dtype=np.int64)
    if len(officers):
        starts = np.searchsorted(officer_beat[order], officer_beat[order], side="left")
        rank[order] = np.arange(len(officers)) - starts
    helpers = [a for a in vols if a.kind != "rider"]
    riders = [a for a in vols if a.kind == "rider"]
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
    }


def in_hand_ids(model: GovernanceModel) -> np.ndarray:
    """Incidents being handled right now (in service in a handler pool)."""
    ids = [i for pool in model.dispatcher.pools for i in pool.in_service_ids()]
    return np.asarray(ids, dtype=np.int64)


def grid_table(model: GovernanceModel) -> pd.DataFrame:
    """Per-grid figures: population, worker workload (share of working hours), open incidents
    (found and not yet found), unresolved backlog and residents' mean perceived safety (0-1)."""
    city = model.city
    g = city.n_grids
    log = model.incidents
    n = log.n
    st = log.state[:n]
    cells = log.cell[:n]
    grid_of = city.grid[cells]
    found = np.bincount(grid_of[st == State.KNOWN], minlength=g)
    latent = np.bincount(grid_of[st == State.UNDISCOVERED], minlength=g)
    paper = np.bincount(grid_of[st == State.PAPER_CLOSED], minlength=g)
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
    """The coloured layer's value per cell (units in :data:`LAYERS`)."""
    city = model.city
    if layer == "density":
        return city.population / city.cell_km**2
    if layer == "safety":
        return model.residents.cell_mean(model.residents.safety)
    if layer == "backlog":
        log = model.incidents
        st = log.state[: log.n]
        sel = (st == State.KNOWN) | (st == State.PAPER_CLOSED)
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
    s = static_layers(model)
    f, bw, bh = s["f"], s["bw"], s["bh"]
    w = city.width
    # coloured layer
    vals = cell_layer(model, layer)
    if f == 1:
        block = vals.reshape(city.height, w)
    elif layer == "density":
        # people / area of the block's real cells (edge blocks may be partial)
        n_cells = _blocks(np.ones(city.n_cells), w, city.height, f, "sum")
        block = _blocks(city.population, w, city.height, f, "sum") / (n_cells * city.cell_km**2)
    elif layer == "safety":
        block = _blocks(vals, w, city.height, f, "wmean",
                        weights=model.residents.per_cell.astype(float))
    else:
        block = _blocks(vals, w, city.height, f, "sum")
    yy, xx = np.mgrid[0:bh, 0:bw]
    cells = pd.DataFrame({"x": xx.ravel().astype(float), "y": yy.ravel().astype(float),
                          "value": block.ravel(),
                          "grid": s["block_grid"].ravel().astype(np.int64)})
    cells["x2"] = cells["x"] + 1.0
    cells["y2"] = cells["y"] + 1.0

    incidents, n_open = _incident_markers(model, f)
    staff, scale = _staff_markers(model, s)
    return MapData(run=run.label, day=model.steps, layer=layer, factor=f, width=bw, height=bh,
                   cells=cells, boundaries=s["boundaries"], grids=grid_table(model),
                   incidents=incidents, staff=staff, role_scale=scale,
                   incidents_shown=len(incidents), incidents_open=n_open)


def _incident_markers(model: GovernanceModel, f: int) -> tuple[pd.DataFrame, int]:
    """Open incidents as markers (evenly sampled beyond :data:`MAX_INCIDENT_MARKERS`), and how
    many are open."""
    city = model.city
    w = city.width
    log = model.incidents
    st = log.state[: log.n]
    open_ids = np.flatnonzero(np.isin(st, OPEN_STATES))
    n_open = len(open_ids)
    if n_open > MAX_INCIDENT_MARKERS:
        open_ids = open_ids[np.linspace(0, n_open - 1, MAX_INCIDENT_MARKERS).astype(np.int64)]
    ost = st[open_ids]
    shown = np.select([ost == State.UNDISCOVERED, ost == State.PAPER_CLOSED],
                      [MapState.LATENT, MapState.PAPER_CLOSED], default=MapState.WAITING)
    busy = in_hand_ids(model)
    shown = np.where((ost == State.KNOWN) & np.isin(open_ids, busy), MapState.IN_HAND, shown)
    ocell = log.cell[open_ids].astype(np.int64)
    jx, jy = _jitter(open_ids, 1)
    incidents = pd.DataFrame({
        "x": ((ocell % w) + 0.5 + jx) / f, "y": ((ocell // w) + 0.5 + jy) / f,
        "category": np.asarray(CATEGORIES, dtype=object)[log.category[open_ids]],
        "state": np.asarray(STATE_LABELS, dtype=object)[shown],
        "id": open_ids.astype(np.int64),
        "grid": city.grid[ocell].astype(np.int64),
    })
    return incidents, n_open


def _staff_markers(model: GovernanceModel,
                   s: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Staff at today's positions, one marker per ``scale[role]`` agents of a role."""
    city = model.city
    w = city.width
    f = s["f"]
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

    # a worker's last patrolled cell, or its home cell before its first patrol
    wc = p.worker_last_cell[s["worker_grid"]] if len(s["worker_grid"]) else np.zeros(0, np.int64)
    add(ROLE_NAMES[0], np.where(wc >= 0, wc, s["worker_cell"]), s["worker_id"])
    add(ROLE_NAMES[1], _officer_cells(model, s), s["officer_id"])
    add(ROLE_NAMES[2], s["helper_cell"], s["helper_id"])
    add(ROLE_NAMES[3], _rider_cells(model, s), s["rider_id"])
    if not parts:
        return pd.DataFrame(columns=["x", "y", "role", "grid"]), scale
    return pd.concat(parts, ignore_index=True), scale


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
    if not len(visited):
        return fallback.astype(np.int64)
    return np.where(c > 0, visited[np.minimum(pos, len(visited) - 1)], fallback).astype(np.int64)


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
