"""The city map: the lattice coloured by a column of ``cells.parquet``, with the borders of
grids, communities, townships and counties.

:data:`CELL_INFO` labels the cell columns that are not outcomes of the registry
(:mod:`sim.outcomes`), so the colour bar says what the colours mean and in which unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from sim import outcomes as registry
from sim.analysis.plot_base import axes_or_new, format_axis, is_results, with_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sim.batch.results import Results

__all__ = ["CELL_INFO", "city_map"]

#: Labels and units of the columns of ``cells.parquet`` (for maps) not in the outcome registry.
CELL_INFO: dict[str, tuple[str, str]] = {
    "population": ("Residents", "people"),
    "urban": ("Urban cell", "1 = urban"),
    "risk": ("Background risk", "relative, mean 1"),
    "incidents": ("Incidents over the run", "incidents"),
    "undiscovered": ("Undiscovered problems at the end", "problems"),
    "backlog": ("Known open cases at the end", "cases"),
    "paper_closed": ("Closed on paper but unresolved, at the end", "cases"),
    "perceived_safety": ("Perceived safety, mean of residents", "0-1"),
    "trust": ("Trust in local government, mean of residents", "0-1"),
    "guardian_presence": ("Guardian presence", "remembered visits/day"),
}

_BOUNDARY_STYLE = {  # level: (line width, colour, legend text)
    "grid": (0.45, "0.15", "grid"),
    "community": (0.9, "0.1", "community"),
    "township": (1.7, "black", "township"),
    "county": (2.8, "black", "county"),
}
_SEQUENTIAL_BAD = ("incidents", "undiscovered", "backlog", "paper_closed", "risk")


def cell_column(name: str) -> tuple[str, str]:
    """(label, unit) of a column of ``cells.parquet``: :data:`CELL_INFO`, else the registry."""
    if name in CELL_INFO:
        return CELL_INFO[name]
    return registry.label(name), registry.unit(name)


def _boundary_segments(labels: np.ndarray) -> np.ndarray:
    """Line segments (k, 2, 2) between neighbouring cells whose labels differ, in cell
    coordinates (cell (x, y) spans x-0.5..x+0.5, y-0.5..y+0.5)."""
    segs = []
    yy, xx = np.nonzero(labels[:, :-1] != labels[:, 1:])
    segs.append(np.stack([np.c_[xx + 0.5, yy - 0.5], np.c_[xx + 0.5, yy + 0.5]], axis=1))
    yy, xx = np.nonzero(labels[:-1, :] != labels[1:, :])
    segs.append(np.stack([np.c_[xx - 0.5, yy + 0.5], np.c_[xx + 0.5, yy + 0.5]], axis=1))
    return np.concatenate(segs, axis=0).astype(float)


def city_map(cells_df: Results | pd.DataFrame, value: str = "perceived_safety",
             ax: Axes | None = None, boundaries: str | Sequence[str] | None = "grid",
             cmap: str | None = None, cell_km: float | None = None) -> Axes:
    """The lattice coloured by a cell column, with administrative boundaries.

    North is up (row ``y = 0`` is the north edge). Cells without residents show grey where the
    value is per resident (perceived safety, trust).

    Args:
        cells_df: a Results of ``govsim run`` (its ``cells``) or the cell table (one run).
        value: a column of the cell table: ``perceived_safety``, ``trust``, ``incidents``,
            ``backlog``, ``undiscovered``, ``paper_closed``, ``population``, ``risk``,
            ``guardian_presence``, ``urban``.
        boundaries: the unit(s) whose borders are drawn: ``"grid"`` (default), ``"community"``,
            ``"township"``, ``"county"``, a sequence of them (coarser units drawn thicker), or
            None.
        cmap: a colormap name (default: viridis for safety and trust, rocket for counts).
        cell_km: side of a cell in km for the axis labels (default: from the Results' scenario).
    """
    import seaborn as sns  # noqa: F401  (registers the rocket and mako colormaps)

    if is_results(cells_df):
        cells = cells_df.cells
        if cells is None:
            raise ValueError(f"{cells_df.path} has no cells table "
                             "(maps need the results of `govsim run`)")
        if cell_km is None:
            scenario = (cells_df.metadata or {}).get("scenario") or {}
            cell_km = scenario.get("city", {}).get("cell_km")
    else:
        cells = cells_df
    if "run_id" in cells and cells["run_id"].nunique() > 1:
        raise ValueError("the cell table holds several runs; pass the rows of one run")
    for col in ("x", "y"):
        if col not in cells:
            raise ValueError(f"the cell table needs an {col!r} column")
    if value not in cells:
        have = [c for c in cells.columns if c not in ("run_id", "cell", "x", "y")]
        raise ValueError(f"no column {value!r} in the cell table; available: {', '.join(have)}")
    w, h = int(cells["x"].max()) + 1, int(cells["y"].max()) + 1
    xs, ys = cells["x"].to_numpy(int), cells["y"].to_numpy(int)
    arr = np.full((h, w), np.nan)
    arr[ys, xs] = cells[value].to_numpy(dtype=float)
    if cmap is None:
        cmap = ("rocket_r" if value in _SEQUENTIAL_BAD
                else "mako_r" if value == "population" else "viridis")
    import matplotlib as mpl

    cm = mpl.colormaps[cmap].with_extremes(bad="0.85")  # seaborn registers rocket and mako
    ax = axes_or_new(ax, (7.0, 6.2))
    # robust colour range: a few extreme cells must not wash out the rest (arrows on the bar)
    finite = arr[np.isfinite(arr)]
    vmin = vmax = None
    extend = "neither"
    if finite.size and value != "urban":
        lo, hi = np.percentile(finite, [1, 99])
        if lo > finite.min():
            vmin, extend = lo, "min"
        if hi < finite.max():
            vmax, extend = hi, ("both" if extend == "min" else "max")
    im = ax.imshow(arr, origin="upper", cmap=cm, interpolation="nearest", vmin=vmin, vmax=vmax,
                   extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    levels: list[str] = ([] if boundaries is None else [boundaries]
                         if isinstance(boundaries, str) else list(boundaries))
    handles = []
    order = [lv for lv in _BOUNDARY_STYLE if lv in levels]
    unknown = [lv for lv in levels if lv not in _BOUNDARY_STYLE]
    if unknown:
        raise ValueError(f"unknown boundaries {unknown}; use grid, community, township or county")
    for lv in order:
        if lv not in cells:
            raise ValueError(f"the cell table has no {lv!r} column for boundaries")
        lab = np.full((h, w), -1, dtype=np.int64)
        lab[ys, xs] = cells[lv].to_numpy()
        lw, colour, text = _BOUNDARY_STYLE[lv]
        segs = _boundary_segments(lab)
        if len(segs):
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, alpha=0.85,
                                             capstyle="round"))
            k = int(cells[lv].nunique())
            plural = text[:-1] + "ies" if text.endswith("y") else text + "s"
            handles.append(Line2D([], [], color=colour, lw=lw,
                                  label=f"{text} boundaries ({k} {plural})"))
    ax.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, lw=1.2, ec="black"))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.grid(False)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    size = f"cells of {cell_km * 1000:.0f} m" if cell_km else "cells"
    ax.set_xlabel(f"x ({size}; west → east)")
    ax.set_ylabel(f"y ({size}; north → south)")
    label, unit = cell_column(value)
    cb = ax.figure.colorbar(im, ax=ax, shrink=0.85, pad=0.02, extend=extend)
    cb.set_label(with_unit(label, unit))
    format_axis(cb.ax.yaxis, unit)
    ax.set_title(f"{label} by cell (synthetic city)", fontsize="medium")
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1),
                  ncol=len(handles), fontsize="x-small", frameon=False)
    return ax
