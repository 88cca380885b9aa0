"""Result files of a single run, reading any results directory back, and what every
``metadata.json`` records about the code (package versions, git commit, schema version).

A results directory holds:

``runs.parquet``
    one row per run: run id, scenario, seed, the summary metrics of :func:`sim.metrics.summarise`,
    wall time and status;
``timeseries.parquet``
    one row per run and day: the daily model-level metrics (``sim.metrics.DAILY_KEYS``);
``incidents.parquet``
    one row per incident: the event log with every time stamp (optional in batches);
``cells.parquet``
    one row per lattice cell at the end of a single run: position, population, administrative
    units (grid boundaries for maps), and cell-level outcomes (``GovernanceModel.cell_table``);
``metadata.json``
    schema version, seed, the full resolved scenario, package versions, git commit, command
    line, start and end times.

Model-level and incident-level tables are never mixed. A single run is written into a hidden
temporary directory first and renamed into place at the end (:func:`sim.files.atomic_directory`),
so a crash or a bad input never leaves a half-written results directory behind. Batches write
the same tables run by run (:mod:`sim.batch.store`).

``load(path)`` reads any results directory back (also directories of Parquet parts, which
batches write as runs finish) and returns a :class:`Results` with DataFrames.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata as _md
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sim.files import atomic_directory, atomic_write_json
from sim.paths import default_results_dir, source_root

if TYPE_CHECKING:
    from sim.model import GovernanceModel

SCHEMA_VERSION = 1
PROJECT_ROOT = source_root() or Path.cwd()
DEFAULT_RESULTS_DIR = default_results_dir()
_PACKAGES = ("mesa", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "networkx", "SALib", "dask",
             "distributed", "govsim")


def package_versions() -> dict[str, str]:
    """Versions of Python and of every package whose code shapes the numbers."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> dict[str, Any]:
    """The commit of the code that ran, and whether the work tree had uncommitted changes."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def run_metadata(model: GovernanceModel, **extra: Any) -> dict[str, Any]:
    """Everything needed to re-run a model run and know what produced it."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "run",
        "scenario_name": model.config.name,
        "scenario_digest": model.config.digest(),
        "scenario": model.config.to_dict(),
        "seed": {"entropy": str(model.seed_entropy), "spawn_key": list(model.seed_spawn_key)},
        "versions": package_versions(),
        "git": git_commit(),
        "command": " ".join(sys.argv),
        "platform": platform.platform(),
        **extra,
    }


def summary_row(model: GovernanceModel, *, run_id: str, warmup_days: int, wall_seconds: float,
                status: str = "done", **labels: Any) -> dict[str, Any]:
    """One ``runs.parquet`` row for a finished model."""
    row: dict[str, Any] = {
        "run_id": run_id,
        "scenario": model.config.name,
        **labels,
        "seed": str(model.seed_entropy),
        "spawn_key": json.dumps(list(model.seed_spawn_key)),
        "scenario_digest": model.config.digest(),
        "status": status,
        "wall_seconds": wall_seconds,
    }
    row.update(model.summary(warmup_days))
    return row


def write_run(
    model: GovernanceModel,
    out_dir: str | Path,
    *,
    warmup_days: int,
    wall_seconds: float,
    incidents: bool = True,
    started: str | None = None,
) -> Path:
    """Write one run's tables and metadata into ``out_dir`` atomically.

    Raises:
        FileExistsError: if ``out_dir`` exists and is not empty (callers decide on --force).
    """
    run_id = "run-0000"
    with atomic_directory(out_dir) as tmp:
        row = summary_row(model, run_id=run_id, warmup_days=warmup_days, wall_seconds=wall_seconds)
        pd.DataFrame([row]).to_parquet(tmp / "runs.parquet", index=False)
        ts = model.timeseries()
        ts.insert(0, "run_id", run_id)
        ts.to_parquet(tmp / "timeseries.parquet", index=False)
        if incidents:
            inc = model.incident_table()
            inc.insert(0, "run_id", run_id)
            inc.to_parquet(tmp / "incidents.parquet", index=False)
        cells = model.cell_table()
        cells.insert(0, "run_id", run_id)
        cells.to_parquet(tmp / "cells.parquet", index=False)
        meta = run_metadata(
            model, warmup_days=warmup_days, days=model.steps, started=started or now_iso(),
            finished=now_iso(), wall_seconds=wall_seconds,
            tables=["runs", "timeseries", "cells", *(["incidents"] if incidents else [])],
        )
        atomic_write_json(tmp / "metadata.json", meta)
    return Path(out_dir)


def default_run_dir(name: str, base: Path | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = DEFAULT_RESULTS_DIR if base is None else base
    out = base / f"{name}-{stamp}"
    k = 1
    while out.exists():
        k += 1
        out = base / f"{name}-{stamp}-{k}"
    return out


@dataclass
class Results:
    """Tables of a results directory as DataFrames (``incidents`` is None if not kept)."""

    path: Path
    runs: pd.DataFrame
    timeseries: pd.DataFrame | None
    incidents: pd.DataFrame | None
    metadata: dict[str, Any] = field(default_factory=dict)
    cells: pd.DataFrame | None = None

    def __repr__(self) -> str:
        parts = [f"runs={len(self.runs)}"]
        if self.timeseries is not None:
            parts.append(f"timeseries={len(self.timeseries)}")
        if self.incidents is not None:
            parts.append(f"incidents={len(self.incidents)}")
        if self.cells is not None:
            parts.append(f"cells={len(self.cells)}")
        return f"Results({self.path}, {', '.join(parts)})"


def _read_table(path: Path, name: str) -> pd.DataFrame | None:
    f = path / f"{name}.parquet"
    if f.is_file():
        return pd.read_parquet(f)
    d = path / name
    if d.is_dir():
        parts = sorted(d.glob("*.parquet"))
        if not parts:
            return None
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return None


def load(path: str | Path, *, incidents: bool = True) -> Results:
    """Read a results directory written by ``govsim run``, ``compare`` or ``experiment``.

    Args:
        path: the results directory.
        incidents: read the (possibly large) event log too.
    """
    path = Path(path)
    meta_file = path / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a results directory (no metadata.json)")
    meta = json.loads(meta_file.read_text())
    runs = _read_table(path, "runs")
    if runs is None:
        raise FileNotFoundError(f"{path} has no runs table")
    if "run_id" in runs:
        runs = runs.sort_values("run_id", kind="stable").reset_index(drop=True)
    return Results(
        path=path,
        runs=runs,
        timeseries=_read_table(path, "timeseries"),
        incidents=_read_table(path, "incidents") if incidents else None,
        metadata=meta,
        cells=_read_table(path, "cells"),
    )
