"""The results folder of a batch: Parquet parts written as runs finish, compaction, metadata.

Runs are written as they finish (one Parquet part per table and batch of runs, renamed into
place atomically by :mod:`sim.files`; the ``runs`` part is written last and marks its runs
done), so a batch killed at any point resumes without losing or duplicating a run. At the end
the parts are compacted into ``runs.parquet``, ``timeseries.parquet`` and
``incidents.parquet``, sorted by run id, with exactly one copy of every run in every table
(:func:`sim.batch.results.one_copy_per_run`), whatever the parts hold. Only one process
writes a results folder at a time (:func:`sim.batch.results.results_lock`, taken by the
runner). ``metadata.json`` describes the batch
(:func:`experiment_metadata`) and records its ``"kind"``: ``experiment`` or ``comparison``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.batch.results import (
    SCHEMA_VERSION,
    TABLE_KEYS,
    git_commit,
    now_iso,
    one_copy_per_run,
    package_versions,
    read_parts,
    run_owners,
)
from sim.batch.spec import Experiment, ExperimentError, code_digest
from sim.files import (
    InputError,
    atomic_write_json,
    atomic_write_parquet,
    is_temporary,
    read_metadata,
    results_kind,
)

TABLES = ("runs", "timeseries", "incidents")


@dataclass
class RunOutput:
    """One finished run: its ``runs`` row and, if kept, its timeseries and incident rows."""

    row: dict[str, Any]
    timeseries: pd.DataFrame | None = None
    incidents: pd.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ResultStore:
    """A results directory being filled run by run (parts), then compacted."""

    def __init__(self, path: Path):
        self.path = path

    def part_dir(self, table: str) -> Path:
        return self.path / table

    def write(self, outs: list[RunOutput]) -> None:
        """Write finished runs as one part per table (a batch of runs, named by time so later
        batches sort after earlier ones). The runs part is written last: its presence marks
        the batch's runs as recorded, so a kill at any moment leaves either all of a batch or
        an orphan timeseries/incidents part that resume removes."""
        if not outs:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}.parquet"
        ts = [o.timeseries for o in outs if o.timeseries is not None]
        inc = [o.incidents for o in outs if o.incidents is not None]
        if ts:
            atomic_write_parquet(self.part_dir("timeseries") / name, pd.concat(ts, ignore_index=True))
        if inc:
            atomic_write_parquet(self.part_dir("incidents") / name, pd.concat(inc, ignore_index=True))
        atomic_write_parquet(self.part_dir("runs") / name, pd.DataFrame([o.row for o in outs]))

    def runs(self) -> pd.DataFrame:
        """Every recorded run (compacted file and parts; the newest row of a run wins)."""
        frames = []
        f = self.path / "runs.parquet"
        if f.is_file():
            frames.append(pd.read_parquet(f))
        frames += [pd.read_parquet(p) for p in self._parts("runs")]
        if not frames:
            return pd.DataFrame(columns=["run_id", "status", "scenario"])
        df = pd.concat(frames, ignore_index=True)
        return df.drop_duplicates("run_id", keep="last").sort_values("run_id").reset_index(drop=True)

    def done_ids(self) -> set[str]:
        df = self.runs()
        return set(df.loc[df["status"] == "done", "run_id"])

    def _parts(self, table: str) -> list[Path]:
        pdir = self.part_dir(table)
        return sorted(pdir.glob("*.parquet")) if pdir.is_dir() else []

    def compact(self) -> None:
        """Merge parts into one file per table (sorted by run id), atomically, then remove
        the parts.

        Every table keeps exactly one copy of each run: the copy in the part that recorded
        the run's newest ``runs`` row, even if parts hold it twice (a crash between writes,
        a worker lost after its result was written). Parts are newer than a previously
        compacted file: a run they record replaces all its rows there, in every table.
        """
        runs_parts = read_parts(self.path, "runs")
        owners = run_owners(runs_parts)
        for table in TABLES:
            pdir = self.part_dir(table)
            parts = runs_parts if table == "runs" else read_parts(self.path, table)
            dest = self.path / f"{table}.parquet"
            if not owners:  # nothing new recorded; parts without a runs part are orphans
                if pdir.is_dir():
                    shutil.rmtree(pdir)
                continue
            new = one_copy_per_run(parts, table, owners)
            if dest.is_file():
                old = pd.read_parquet(dest)
                old = old[~old["run_id"].astype(str).isin(list(owners))]
                new = pd.concat([old, new], ignore_index=True) if len(new) else old
            if len(new) and "run_id" in new.columns:
                key = list(TABLE_KEYS[table])
                if all(c in new.columns for c in key):  # also heals an older file's duplicates
                    new = new.drop_duplicates(key, keep="last")
                sort_cols = ["run_id"] + [c for c in ("day", "incident_id") if c in new.columns]
                new = new.sort_values(sort_cols, kind="stable").reset_index(drop=True)
            if len(new.columns):
                atomic_write_parquet(dest, new)
            if pdir.is_dir():
                shutil.rmtree(pdir)

    def drop_orphan_parts(self) -> None:
        """Remove timeseries/incident parts whose batch never recorded its runs part (killed
        mid-write), and temporary files left by an interrupted write."""
        recorded = {p.stem for p in self._parts("runs")}
        for table in TABLES:
            pdir = self.part_dir(table)
            if not pdir.is_dir():
                continue
            for p in pdir.iterdir():
                if is_temporary(p) or (p.suffix == ".parquet" and p.stem not in recorded):
                    p.unlink()


# --------------------------------------------------------------------------- metadata
def experiment_metadata(exp: Experiment) -> dict[str, Any]:
    """``metadata.json`` of a new batch: what was run (spec, design, resolved scenarios and
    their digests, seeds), with which code (digest, versions, git commit), and its status."""
    spec = exp.spec
    root = np.random.SeedSequence(spec.seed)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": exp.kind,
        "name": spec.name,
        "spec_file": exp.source,
        "spec": exp.raw,
        "spec_hash": exp.spec_hash,
        "code_digest": code_digest(),
        "design": exp.design_meta,
        "factors": [f.name for f in exp.factors],
        "levers": {f.name: f.values for f in exp.factors if f.is_lever},
        "scenarios": {label: sc.to_dict() for label, sc in exp.base.items()},
        "scenario_digests": {label: sc.digest() for label, sc in exp.base.items()},
        "replications": spec.replications,
        "seed": {"root": spec.seed,
                 "replication_spawn_keys": [list(c.spawn_key) for c in root.spawn(spec.replications)]},
        "days": spec.days,
        "warmup_days": spec.warmup_days,
        "outputs": spec.outputs.model_dump(),
        "outcomes": spec.outcomes,
        "runs_planned": exp.n_runs,
        "runs_planned_by_scenario": {label: len(exp.points) * spec.replications for label in exp.base},
        "versions": package_versions(),
        "git": git_commit(),
        "started": now_iso(),
        "finished": None,
        "status": "running",
    }


def read_batch_metadata(path: Path) -> dict[str, Any]:
    """``metadata.json`` of a batch's results folder (experiment, comparison, or analysed
    experiment).

    Raises:
        ExperimentError: no readable ``metadata.json``, or the folder holds a single run.
    """
    try:
        meta = read_metadata(path)
        kind = results_kind(path, meta)
    except InputError as exc:
        raise ExperimentError(str(exc)) from None  # it names the folder and what is wrong
    if kind == "run":
        raise ExperimentError(f"{path} holds a single run (govsim run), not a batch of runs")
    return meta


def write_metadata(path: Path, meta: dict[str, Any]) -> None:
    atomic_write_json(path / "metadata.json", meta)
