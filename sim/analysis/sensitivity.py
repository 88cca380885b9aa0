"""Sensitivity analysis of experiment results: Sobol', Morris, factorial main effects, SRC.

The experiment runner writes a results directory whose ``runs.parquet`` has one row per run
(``scenario``, ``point_id``, ``replication``, ``status``, one column per factor, one column per
outcome) and whose ``metadata.json`` describes the design (``metadata["design"]``). This module
turns those runs into tidy tables of sensitivity measures:

==================  ===============================  =========================================
design kind         function                         files in ``<results>/analysis/``
==================  ===============================  =========================================
``sobol``           :func:`sobol_indices`            ``sobol.*``, ``sobol_second_order.*``
``morris``          :func:`morris_indices`           ``morris.*``
``full_factorial``  :func:`factorial_effects`        ``factorial_effects.*``
``latin_hypercube`` :func:`src_indices`              ``src.*``
==================  ===============================  =========================================

(``*`` = ``.parquet`` and ``.csv``.) :func:`analyze` does all of it for a results directory,
:func:`read_frames` reads the frames back, and :func:`format_tables` renders them as ``rich``
tables for the terminal. The estimators live in :mod:`sim.analysis.indices` (Sobol' and Morris
through SALib) and :mod:`sim.analysis.effects` (factorial main effects and SRC); their names
are importable from here.

Conventions shared by all functions:

* Only runs with ``status == "done"`` are used.
* Stochastic noise is handled by averaging each outcome over the replications of a design
  point (``point_id``) before the variance-based (Sobol'), elementary-effect (Morris) and
  regression (SRC) estimators see it; the factorial main effects use the runs themselves, so
  their t-intervals include the replication noise. Replications whose outcome is NaN (e.g. a
  median time when nothing was resolved) are skipped in that average.
* ``point_id`` is the row index of the SALib sample matrix, so nothing depends on the row
  order of ``runs.parquet``.
* Every group of results is computed per base scenario label (``scenario`` column).
* Problems that make an index undefined (an outcome that is constant, or NaN at some design
  point) give NaN indices and an explanation in a ``note`` column instead of an exception.
  Problems that make the *design* unusable (missing points of a Sobol' or Morris matrix, factor
  values that do not match the regenerated sample) raise :class:`ValueError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim import outcomes as registry
from sim.analysis.compare import done_runs
from sim.analysis.effects import FACTORIAL_COLUMNS, SRC_COLUMNS, factorial_effects, src_indices
from sim.analysis.indices import (
    MORRIS_COLUMNS,
    SOBOL2_COLUMNS,
    SOBOL_COLUMNS,
    morris_indices,
    morris_sample,
    sobol_indices,
    sobol_sample,
)
from sim.files import atomic_write, atomic_write_json, atomic_write_parquet

__all__ = [
    "FACTORIAL_COLUMNS",
    "FRAME_NAMES",
    "MORRIS_COLUMNS",
    "SOBOL2_COLUMNS",
    "SOBOL_COLUMNS",
    "SRC_COLUMNS",
    "analyze",
    "factorial_effects",
    "format_tables",
    "morris_indices",
    "morris_sample",
    "read_frames",
    "sobol_indices",
    "sobol_sample",
    "src_indices",
    "write_frames",
]

#: The frames :func:`analyze` may write into ``<results>/analysis/``, in reading order.
FRAME_NAMES: tuple[str, ...] = ("sobol", "sobol_second_order", "morris", "factorial_effects",
                                "src")


# ----------------------------------------------------------------------------------------------
# Results directories
# ----------------------------------------------------------------------------------------------

def write_frames(frames: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write every frame as ``<name>.parquet`` and ``<name>.csv`` (atomically, file by file)."""
    out = Path(out_dir)
    written: list[Path] = []
    for name, df in frames.items():
        written.append(atomic_write_parquet(out / f"{name}.parquet", df))
        written.append(atomic_write(out / f"{name}.csv",
                                    lambda tmp, df=df: df.to_csv(tmp, index=False)))
    return written


def read_frames(results_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The frames that :func:`analyze` wrote into ``<results_dir>/analysis/`` (those present,
    in the order of :data:`FRAME_NAMES`)."""
    adir = Path(results_dir) / "analysis"
    return {name: pd.read_parquet(adir / f"{name}.parquet") for name in FRAME_NAMES
            if (adir / f"{name}.parquet").is_file()}


def analyze(results_dir: str | Path, *, seed: int = 0,
            outcomes: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """Analyse an experiment's results directory according to its design.

    Reads ``runs.parquet`` and ``metadata.json`` (via :func:`sim.batch.results.load`), dispatches on
    ``metadata["design"]["kind"]``, writes the frames as Parquet and CSV into
    ``<results_dir>/analysis/`` together with ``analysis.json`` (what was analysed, how), and
    returns them:

    * ``sobol``: ``{"sobol": ..., "sobol_second_order": ...}`` (the latter only with second
      order), see :func:`sobol_indices`;
    * ``morris``: ``{"morris": ...}``, see :func:`morris_indices`;
    * ``full_factorial``: ``{"factorial_effects": ...}``, see :func:`factorial_effects`;
    * ``latin_hypercube``: ``{"src": ...}``, see :func:`src_indices`.

    Args:
        results_dir: the experiment's results directory.
        seed: seed of the bootstrap confidence intervals.
        outcomes: outcomes to analyse; default ``metadata["outcomes"]``, else those of
            :data:`sim.outcomes.SENSITIVITY` present in the runs table.

    Raises:
        ValueError: unknown design kind, missing outcomes or an incomplete/mismatched design.
    """
    from sim.batch.results import load

    res = load(results_dir, incidents=False)
    meta = res.metadata
    design = meta.get("design")
    if not design or "kind" not in design:
        raise ValueError(f"{results_dir}: metadata.json has no design; is this an experiment?")
    kind = design["kind"]
    runs = res.runs
    if outcomes is None:
        outcomes = meta.get("outcomes") or [o for o in registry.SENSITIVITY
                                            if o in runs.columns]
    outcomes = list(outcomes)
    if not outcomes:
        raise ValueError(f"{results_dir}: no outcomes to analyse")
    conf = float(meta.get("confidence", 0.95))

    frames: dict[str, pd.DataFrame] = {}
    if kind == "sobol":
        s = sobol_indices(runs, design, outcomes, conf_level=conf, seed=seed)
        frames["sobol"] = s["first_total"]
        if s["second"] is not None:
            frames["sobol_second_order"] = s["second"]
    elif kind == "morris":
        frames["morris"] = morris_indices(runs, design, outcomes, conf_level=conf, seed=seed)
    elif kind == "full_factorial":
        frames["factorial_effects"] = factorial_effects(runs, design, outcomes, conf_level=conf)
    elif kind == "latin_hypercube":
        frames["src"] = src_indices(runs, design, outcomes, conf_level=conf, seed=seed)
    else:
        raise ValueError(f"no sensitivity analysis for design kind {kind!r}")

    out = Path(results_dir) / "analysis"
    write_frames(frames, out)
    # analysis.json last: its presence marks the directory as analysed (sim.files.results_kind)
    info = {
        "design_kind": kind,
        "outcomes": outcomes,
        "confidence": conf,
        "seed": seed,
        "runs_used": int(done_runs(runs).shape[0]),
        "runs_failed": int(runs.shape[0] - done_runs(runs).shape[0]),
        "tables": sorted(frames),
        "salib": _salib_version(),
    }
    atomic_write_json(out / "analysis.json", info)
    return frames


def _salib_version() -> str:
    from importlib import metadata as md

    try:
        return md.version("SALib")
    except md.PackageNotFoundError:  # pragma: no cover
        return "unknown"


# ----------------------------------------------------------------------------------------------
# Terminal tables
# ----------------------------------------------------------------------------------------------

def _num(x: Any, decimals: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{float(x):,.{decimals}f}"


def _decimals(*columns: pd.Series, sig: int = 3) -> int:
    """Decimals showing about ``sig`` significant digits of the largest value in the columns."""
    vals = np.abs(pd.concat(columns).to_numpy(dtype=float))
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if not vals.size:
        return 3
    return int(min(3, max(0, sig - 1 - math.floor(math.log10(vals.max())))))


def _label(outcome: str) -> str:
    """``"Label (name)"`` for a registered outcome, else the column name."""
    if outcome in registry.OUTCOMES:
        return f"{registry.label(outcome)} ({outcome})"
    return outcome


def _title(kind: str, scenario: str, outcome: str) -> str:
    where = f" — {scenario}" if scenario else ""
    return f"{kind}: {_label(outcome)}{where}"


def _notes(df: pd.DataFrame) -> str | None:
    if "note" not in df:
        return None
    notes = sorted({n for n in df["note"].astype(str) if n})
    return "\n".join(notes) if notes else None


def _groups(df: pd.DataFrame) -> Iterable[tuple[str, str, pd.DataFrame]]:
    for (scenario, outcome), g in df.groupby(["scenario", "outcome"], sort=False):
        yield str(scenario), str(outcome), g


def format_tables(frames: Mapping[str, pd.DataFrame], *, conf_level: float | None = None,
                  top_pairs: int = 10) -> list[Any]:
    """Readable ``rich`` tables, one per frame, scenario and outcome.

    The kind of a frame is recognised from its columns, so both the dict returned by
    :func:`analyze` and ``{"sobol": sobol_indices(...)["first_total"], ...}`` work. Sobol'
    factors are sorted by ST, Morris by mu*, SRC by |SRC| (all descending, NaN last), factorial
    factors by the range of their effects with levels in design order; second-order Sobol'
    tables show the ``top_pairs`` largest S2. Values are rounded for reading; notes (why an
    index is NaN, integer rounding of Morris steps) go into the table caption.

    Args:
        frames: ``{name: frame}`` as returned by :func:`analyze`.
        conf_level: the confidence level used, only to label the factorial CI column.
        top_pairs: rows of the second-order Sobol' tables.

    Returns:
        A list of ``rich.table.Table`` (print each with a ``rich.console.Console``).
    """
    from rich.table import Table

    tables: list[Table] = []
    for df in frames.values():
        if df is None or df.empty:
            continue
        cols = set(df.columns)
        if {"S1", "ST"} <= cols:
            for scenario, outcome, g in _groups(df):
                t = Table(title=_title("Sobol' indices", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor", "S1", "± S1", "ST", "± ST"):
                    t.add_column(c, justify="left" if c == "Factor" else "right")
                for _, r in g.sort_values("ST", ascending=False, na_position="last").iterrows():
                    t.add_row(str(r["factor"]), _num(r["S1"]), _num(r["S1_conf"]),
                              _num(r["ST"]), _num(r["ST_conf"]))
                tables.append(t)
        elif "S2" in cols:
            for scenario, outcome, g in _groups(df):
                t = Table(title=_title("Sobol' second-order indices", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor i", "Factor j", "S2", "± S2"):
                    t.add_column(c, justify="right" if c.startswith(("S2", "±")) else "left")
                g = g.sort_values("S2", ascending=False, na_position="last").head(top_pairs)
                for _, r in g.iterrows():
                    t.add_row(str(r["factor_i"]), str(r["factor_j"]), _num(r["S2"]),
                              _num(r["S2_conf"]))
                tables.append(t)
        elif "mu_star" in cols:
            for scenario, outcome, g in _groups(df):
                t = Table(title=_title("Morris screening", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor", "mu*", "± mu*", "mu", "sigma"):
                    t.add_column(c, justify="left" if c == "Factor" else "right")
                d = _decimals(g["mu_star"], g["mu"], g["sigma"])
                for _, r in g.sort_values("mu_star", ascending=False,
                                          na_position="last").iterrows():
                    t.add_row(str(r["factor"]), _num(r["mu_star"], d),
                              _num(r["mu_star_conf"], d), _num(r["mu"], d),
                              _num(r["sigma"], d))
                tables.append(t)
        elif {"level", "effect"} <= cols:
            for scenario, outcome, g in _groups(df):
                pct = f"{100 * conf_level:.0f}% CI" if conf_level else "CI"
                t = Table(title=_title("Main effects", scenario, outcome),
                          caption=_notes(g), header_style="bold")
                for c in ("Factor", "Level", "Mean", pct, "n", "Effect"):
                    t.add_column(c, justify="left" if c in ("Factor", "Level") else "right")
                spread = g.groupby("factor", sort=False)["effect"].agg(
                    lambda e: float(np.nanmax(e) - np.nanmin(e)) if e.notna().any() else -1.0)
                d = _decimals(g["mean"], sig=4)
                de = _decimals(g["effect"])
                for factor in spread.sort_values(ascending=False, kind="stable").index:
                    t.add_section()
                    for i, (_, r) in enumerate(g[g["factor"] == factor].iterrows()):
                        t.add_row(str(factor) if i == 0 else "", str(r["level"]),
                                  _num(r["mean"], d),
                                  f"[{_num(r['ci_low'], d)}, {_num(r['ci_high'], d)}]",
                                  str(int(r["n"])), f"{float(r['effect']):+,.{de}f}"
                                  if np.isfinite(r["effect"]) else "–")
                tables.append(t)
        elif "src" in cols:
            for scenario, outcome, g in _groups(df):
                r2 = g["r2"].iloc[0]
                cap = "\n".join(x for x in (f"R² = {_num(r2)}", _notes(g)) if x)
                t = Table(title=_title("Standardized regression coefficients", scenario,
                                       outcome), caption=cap, header_style="bold")
                for c in ("Factor", "SRC", "CI low", "CI high"):
                    t.add_column(c, justify="left" if c == "Factor" else "right")
                order = g.assign(_a=g["src"].abs()).sort_values("_a", ascending=False,
                                                                 na_position="last")
                for _, r in order.iterrows():
                    t.add_row(str(r["factor"]), _num(r["src"]), _num(r["src_low"]),
                              _num(r["src_high"]))
                tables.append(t)
    return tables
