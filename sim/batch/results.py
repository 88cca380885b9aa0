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
``monthly.parquet``
    one row per run and 30-day period after the warm-up: cases reported, closed by the
    period's end, closed within their deadline, truly resolved, and the three rates
    (:func:`sim.metrics.monthly`; single runs);
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
batches write as runs finish, keeping one copy of each run: :func:`one_copy_per_run`) and
returns a :class:`Results` with DataFrames.

One writer at a time: :func:`results_lock` holds an exclusive lock on a results directory for a
whole ``govsim run`` or batch, so a second writer into the same directory (even with
``--force``) is refused at once, naming the process that holds it (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata as _md
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sim.files import InputError, atomic_directory, atomic_write_json
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
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
                check=True,
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
        monthly = model.monthly_table(warmup_days)
        monthly.insert(0, "run_id", run_id)
        monthly.to_parquet(tmp / "monthly.parquet", index=False)
        meta = run_metadata(
            model, warmup_days=warmup_days, days=model.steps, started=started or now_iso(),
            finished=now_iso(), wall_seconds=wall_seconds,
            tables=["runs", "timeseries", "monthly", "cells", *(["incidents"] if incidents else [])],
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
    monthly: pd.DataFrame | None = None

    def __repr__(self) -> str:
        parts = [f"runs={len(self.runs)}"]
        if self.timeseries is not None:
            parts.append(f"timeseries={len(self.timeseries)}")
        if self.incidents is not None:
            parts.append(f"incidents={len(self.incidents)}")
        if self.cells is not None:
            parts.append(f"cells={len(self.cells)}")
        return f"Results({self.path}, {', '.join(parts)})"


def _read_table(path: Path, name: str,
                owners: Mapping[str, str] | None = None) -> pd.DataFrame | None:
    f = path / f"{name}.parquet"
    if f.is_file():
        return pd.read_parquet(f)
    parts = read_parts(path, name)
    if not parts:
        return None
    return one_copy_per_run(parts, name, owners)


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
    # a batch still in parts: each run's rows come from the part that recorded its runs row
    owners = None if (path / "runs.parquet").is_file() else run_owners(read_parts(path, "runs"))
    return Results(
        path=path,
        runs=runs,
        timeseries=_read_table(path, "timeseries", owners),
        incidents=_read_table(path, "incidents", owners) if incidents else None,
        metadata=meta,
        cells=_read_table(path, "cells"),
        monthly=_read_table(path, "monthly"),
    )


# --------------------------------------------------------------------------- one copy per run
#: The columns that identify a row of each table (a run's rows repeat none of them).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("run_id",),
    "timeseries": ("run_id", "day"),
    "incidents": ("run_id", "incident_id"),
}


def read_parts(path: Path, table: str) -> list[tuple[str, pd.DataFrame]]:
    """The Parquet parts of ``table`` in a batch's results folder as (part name, rows), oldest
    first (part names start with the time they were written)."""
    d = path / table
    if not d.is_dir():
        return []
    return [(p.stem, pd.read_parquet(p)) for p in sorted(d.glob("*.parquet"))]


def run_owners(runs_parts: list[tuple[str, pd.DataFrame]]) -> dict[str, str]:
    """For every run id in the ``runs`` parts, the newest part that records it."""
    owners: dict[str, str] = {}
    for name, df in runs_parts:  # oldest first: a newer part overwrites
        owners.update(dict.fromkeys(df["run_id"].astype(str), name))
    return owners


def one_copy_per_run(parts: list[tuple[str, pd.DataFrame]], table: str,
                     owners: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Concatenate a table's parts keeping exactly one copy of every run's rows.

    A run can be recorded twice after a crash between writes or two writers racing (before
    the lock existed). Its rows are taken from one part only: the part that recorded its
    ``runs`` row (``owners``, from :func:`run_owners`), so all tables agree on which copy is
    kept, or, without ``owners``, the newest part that holds the run. Rows of a run that no
    ``runs`` part records are dropped (the run counts as not done; a resume runs it again).
    Rows repeated inside the kept part are dropped by the table's key (:data:`TABLE_KEYS`).

    Args:
        parts: (part name, rows) oldest first, as :func:`read_parts` returns them.
        table: ``runs``, ``timeseries``, ``incidents`` or ``cells``.
        owners: run id -> name of the part whose copy is kept.
    """
    frames = [df for _, df in parts]
    if not frames:
        return pd.DataFrame()
    names = [name for name, df in parts for _ in range(len(df))]
    df = pd.concat(frames, ignore_index=True)
    if "run_id" not in df.columns or df.empty:
        return df
    part = pd.Series(names, index=df.index)
    run = df["run_id"].astype(str)
    if owners is None:
        # names sort by age, so the greatest name holding a run is its newest part
        keep = part == part.groupby(run).transform("max")
    else:
        keep = part == run.map(owners)
    df = df[keep.to_numpy()]
    key = list(TABLE_KEYS.get(table, ()))
    if key and all(c in df.columns for c in key):
        df = df.drop_duplicates(key, keep="last")
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------- one writer
class ResultsLockedError(InputError):
    """A results directory is held by another process, or its lock cannot be taken (bad
    input for the command line: exit status 2, nothing written)."""


def lock_path(out: str | Path) -> Path:
    """The lock file of results directory ``out``: a hidden file beside it, not inside it, so
    that ``--force`` (which deletes the directory) and ``govsim run`` (which renames a finished
    temporary directory into place) never remove a lock that is held."""
    out = Path(out).resolve()
    return out.with_name(f".{out.name}.lock")


def _holder_path(lock: Path) -> Path:
    # who holds the lock, for the refusal message; the lock file itself may be truncated by
    # every process that opens it (filelock < 4), so it cannot carry this
    return lock.with_name(lock.name + ".json")


def _describe_holder(lock: Path) -> str:
    """The holder of ``lock`` as its holder file describes it (written right after acquiring,
    so a refusal in the instant between finds none and waits a little)."""
    for _ in range(10):
        try:
            h = json.loads(_holder_path(lock).read_text(encoding="utf-8"))
            return (f"process {h['pid']} on {h['host']} (since {h['since']}: "
                    f"{h['command'][:200]})")
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "another process"


@contextlib.contextmanager
def results_lock(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock on results directory ``out`` (which need not exist yet).

    A lock on the hidden file ``.<name>.lock`` beside ``out`` (``flock`` through the
    ``filelock`` package). It is taken without waiting: a second writer into the same
    directory is refused at once, whatever its options. The kernel releases it when the
    holder exits, even by ``kill -9``, so a lock is never stale. While held, the holder's pid,
    host, command and start time are in ``.<name>.lock.json`` beside it. The empty lock file
    stays after release (removing it could let two processes lock two different files).

    Yields:
        ``out``, resolved.

    Raises:
        ResultsLockedError: another process holds ``out``, or the lock file cannot be created
            (the message names the directory and the holder or the reason).
    """
    from filelock import FileLock, Timeout  # 60 ms to import: only the commands that write

    out = Path(out).resolve()
    lock_file = lock_path(out)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_file), timeout=0)
        lock.acquire()
    except Timeout:
        raise ResultsLockedError(
            f"results directory {out} is being written by {_describe_holder(lock_file)}; wait"
            " for it to finish (--force cannot replace a directory in use) or choose another"
            " --out") from None
    except OSError as exc:
        raise ResultsLockedError(f"cannot lock results directory {out}: cannot create {lock_file}"
                                 f" ({exc.strerror or exc})") from None
    holder = _holder_path(lock_file)
    try:
        atomic_write_json(holder, {"pid": os.getpid(), "host": socket.gethostname(),
                                   "command": " ".join(sys.argv), "since": now_iso()})
        yield out
    finally:
        with contextlib.suppress(OSError):
            holder.unlink()  # while still holding the lock: no other process writes it now
        lock.release()
