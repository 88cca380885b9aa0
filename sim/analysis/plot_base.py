"""What every plot shares: axes in one style, colours, unit-aware axes, and saving a figure as a
PNG that records where it came from.

The figures themselves live in :mod:`sim.analysis.outcome_plots` (time series, forest, ECDF),
:mod:`sim.analysis.maps` (the city map) and :mod:`sim.analysis.factor_plots` (experiments);
:mod:`sim.analysis.plots` gathers them. Labels and units come from the outcome registry
(:mod:`sim.outcomes`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import metadata as _md
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from sim import outcomes
from sim.files import InputError, atomic_write, results_kind

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from sim.batch.results import Results

__all__ = ["figure_of", "new_axes", "plot_metadata", "save"]


# --------------------------------------------------------------------------- units and labels
def unit_text(unit: str) -> str:
    """A unit as an axis shows it (``share`` -> ``%``), as in :func:`sim.outcomes.axis_label`."""
    # the registry's own table, so that axis labels and these texts cannot disagree
    return outcomes.unit_text(unit)


def with_unit(label: str, unit: str) -> str:
    """``"label (unit)"``, or the label alone when there is no unit."""
    u = unit_text(unit)
    return f"{label} ({u})" if u else label


def format_axis(axis: Any, unit: str) -> None:
    """Tick labels in percent on an axis whose unit is a share."""
    if unit in outcomes.SHARE_UNITS:
        axis.set_major_formatter(ticker.PercentFormatter(xmax=1.0, decimals=None))


def outcome_error(outcome: str, columns: Iterable[str], what: str) -> ValueError:
    """The error for a column that is not in a table, listing the outcomes that are."""
    have = [c for c in columns if c in outcomes.OUTCOMES]
    return ValueError(f"no column {outcome!r} in the {what}; "
                      f"available: {', '.join(sorted(have)) or '(none)'}")


# --------------------------------------------------------------------------- axes and colours
def new_axes(figsize: tuple[float, float] = (8.0, 4.8), *, pyplot: bool = True) -> Axes:
    """A fresh axes in seaborn's white-grid style (``pyplot=False``: a figure outside pyplot,
    for scripts and servers that must not keep figures alive)."""
    import seaborn as sns

    with sns.axes_style("whitegrid"):
        if pyplot:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=figsize, layout="constrained")
        else:
            fig = Figure(figsize=figsize, layout="constrained")
            ax = fig.subplots()
    return ax


def axes_or_new(ax: Axes | None, figsize: tuple[float, float] = (8.0, 4.8)) -> Axes:
    return new_axes(figsize) if ax is None else ax


def palette(n: int) -> list:
    """``n`` colours, colour-blind safe up to ten."""
    import seaborn as sns

    return sns.color_palette("colorblind" if n <= 10 else "husl", max(n, 1))


# --------------------------------------------------------------------------- inputs
def is_results(obj: Any) -> bool:
    """True for a :class:`~sim.batch.results.Results` (duck-typed: no import of the batch layer
    at module load)."""
    return hasattr(obj, "runs") and hasattr(obj, "metadata")


# --------------------------------------------------------------------------- saving
def _package_version() -> str:
    try:
        return _md.version("govsim")
    except _md.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _is_batch(results: Any, meta: dict) -> bool:
    """True when the metadata describe a batch (experiment, comparison or sensitivity
    directory) rather than a single ``govsim run``."""
    if not meta:
        return False
    path = Path(results.path) if is_results(results) else Path(".")
    try:
        return results_kind(path, meta) != "run"
    except InputError:  # a kind this version does not know: label it as a single run
        return False


def plot_metadata(results: Results | dict | None = None, **extra: Any) -> dict[str, str]:
    """The PNG text chunks for a figure of ``results``: commit (and whether the tree was dirty),
    seed, scenario or experiment name, package version, source directory, plus ``extra``."""
    meta = (results.metadata if is_results(results) else results) or {}
    out: dict[str, str] = {"Software": f"govsim {_package_version()}"}
    git = meta.get("git") or {}
    if git.get("commit"):
        out["Commit"] = str(git["commit"]) + (" (uncommitted changes)" if git.get("dirty") else "")
    seed = meta.get("seed")
    if isinstance(seed, dict):
        seed = seed.get("entropy", seed.get("root"))
    if seed is not None:
        out["Seed"] = str(seed)
    if _is_batch(results, meta):
        out["Experiment"] = str(meta.get("name", ""))
        if meta.get("scenarios"):
            out["Scenario"] = ", ".join(map(str, meta["scenarios"]))
        if meta.get("replications") is not None:
            out["Replications"] = str(meta["replications"])
    elif meta.get("scenario_name") or meta.get("scenario"):
        sc = meta.get("scenario")
        out["Scenario"] = str(meta.get("scenario_name")
                              or (sc.get("name") if isinstance(sc, dict) else sc))
    if meta.get("scenario_digest"):
        out["Scenario digest"] = str(meta["scenario_digest"])
    version = (meta.get("versions") or {}).get("govsim")
    out["Version"] = str(version or _package_version())
    if is_results(results):
        out["Source"] = str(results.path)
    for k, v in extra.items():
        if v is not None:
            out[str(k)] = v if isinstance(v, str) else json.dumps(v, default=str)
    return out


def figure_of(fig_or_ax: Any) -> Figure:
    """The figure an axes (or array of axes, or subfigure) belongs to."""
    obj = fig_or_ax
    if isinstance(obj, np.ndarray):
        obj = obj.flat[0]
    while not isinstance(obj, Figure):
        nxt = getattr(obj, "figure", None)
        if nxt is None or nxt is obj:
            raise TypeError(f"cannot find the figure of {fig_or_ax!r}")
        obj = nxt
    return obj


def save(fig_or_ax: Any, path: str | Path, metadata: dict[str, Any] | None = None,
         dpi: int = 150) -> Path:
    """Save a figure as PNG with ``metadata`` in its text chunks (values turned into text).

    ``metadata`` is typically :func:`plot_metadata` ``(results)``: commit, seed, scenario or
    experiment, package version. Read it back with ``PIL.Image.open(path).text``. The file is
    written atomically (:func:`sim.files.atomic_write`).
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save writes PNG files with their metadata; got {path.name!r} "
                         "(use a .png name)")
    fig = figure_of(fig_or_ax)
    text = {"Software": f"govsim {_package_version()}"}
    for k, v in (metadata or {}).items():
        if v is None:
            continue
        key = str(k)[:79]  # PNG text keywords are at most 79 bytes
        text[key] = v if isinstance(v, str) else json.dumps(v, default=str)
    # format="png": the temporary file's name does not end in .png
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=text,
                                                      bbox_inches="tight", facecolor="white"))
