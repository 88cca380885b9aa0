"""Running a batch: one run in any process (:func:`execute`), the whole experiment on any
``concurrent.futures`` executor (:func:`run_experiment`), and its progress and status.

The caller chooses the executor: serial in this process, a local process pool
(:func:`make_process_pool`), a Dask cluster (through ``Client.get_executor()``, so it is driven
exactly like a pool), or any other ``concurrent.futures.Executor``. The numbers depend only on
(scenario, design point, seed), never on the executor: rows are stored by run id, not in the
order runs finish. Finished runs are written as they come (:class:`~sim.batch.store.ResultStore`),
so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.batch.results import DEFAULT_RESULTS_DIR, now_iso, summary_row
from sim.batch.spec import Experiment, ExperimentError, RunTask, load_experiment, plan_runs
from sim.batch.store import (
    ResultStore,
    RunOutput,
    experiment_metadata,
    read_batch_metadata,
    write_metadata,
)

FLUSH_SECONDS = 2.0
FLUSH_RUNS = 64
# Test hook: write every N finished runs (1 = each run at once), to test kills between writes.
FLUSH_ENV = "GOVSIM_FLUSH_RUNS"
# Test hook: runs whose id matches this regular expression raise (to test failure handling).
FAIL_ENV = "GOVSIM_TEST_FAIL_RUN"


# --------------------------------------------------------------------------- one run
def execute(task: RunTask) -> RunOutput:
    """Run one task (in any process). Exceptions become a failed row with the traceback."""
    from sim.model import GovernanceModel

    t0 = time.perf_counter()
    labels = {"point_id": task.point_id, "replication": task.replication, **task.factor_values}
    model = None
    try:
        pattern = os.environ.get(FAIL_ENV)
        if pattern and re.search(pattern, task.run_id):
            raise RuntimeError(f"injected failure for {task.run_id} ({FAIL_ENV})")
        seed = np.random.SeedSequence(task.entropy, spawn_key=task.spawn_key)
        model = GovernanceModel(task.scenario, rng=seed)
        model.run(task.days)
        wall = time.perf_counter() - t0
        row = summary_row(model, run_id=task.run_id, warmup_days=task.warmup_days,
                          wall_seconds=wall, **labels)
        row["scenario"] = task.label
        row["scenario_name"] = task.scenario.name
        row["error"] = ""
        ts = inc = None
        if task.timeseries_every:
            ts = model.timeseries()
            keep = (ts["day"] % task.timeseries_every == 0) | (ts["day"] == ts["day"].max())
            ts = ts[keep].reset_index(drop=True)
            ts.insert(0, "run_id", task.run_id)
            ts.insert(1, "scenario", task.label)
        if task.incidents:
            inc = model.incident_table()
            inc.insert(0, "run_id", task.run_id)
            inc.insert(1, "scenario", task.label)
        return RunOutput(row, ts, inc)
    # any failure of one run is recorded in its row; the batch goes on
    except Exception:  # noqa: BLE001
        row = {"run_id": task.run_id, "scenario": task.label, "scenario_name": task.scenario.name,
               **labels, "seed": str(task.entropy), "spawn_key": json.dumps(list(task.spawn_key)),
               "scenario_digest": task.scenario.digest(), "status": "failed",
               "wall_seconds": time.perf_counter() - t0, "error": traceback.format_exc()}
        return RunOutput(row)
    finally:
        _release(model)
        del model


_runs_since_gc = 0


def _release(model: Any) -> None:
    """Free a finished model promptly. A model and its agents reference each other, so it is
    freed only by Python's cyclic garbage collector, whose full passes are rare: without this,
    dead models pile up in a worker and raise its memory high-water mark. A full collection
    costs a few milliseconds, so it runs after every large model and every 10th small one."""
    global _runs_since_gc
    _runs_since_gc += 1
    large = model is not None and getattr(model, "residents", None) is not None and model.residents.n >= 100_000
    if large or _runs_since_gc >= 10:
        gc.collect()
        _runs_since_gc = 0


# --------------------------------------------------------------------------- executors
def _worker_init() -> None:
    """Import and set up once per worker process (not once per run)."""
    import sim.model  # noqa: F401


def make_process_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A process pool whose workers import the model once and are recycled after many runs,
    so memory stays flat over thousands of runs."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["sim.model"])
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                  max_tasks_per_child=500)


def as_executor(executor: Any) -> cf.Executor:
    """A ``concurrent.futures.Executor`` for what the caller passed: an executor itself, or a
    Dask ``distributed.Client`` as its executor (``pure=False``: every run is a new task, even
    if an equal task ran before on this client)."""
    if not isinstance(executor, cf.Executor) and hasattr(executor, "get_executor"):
        return executor.get_executor(pure=False)
    return executor


@contextlib.contextmanager
def _executor(executor: Any, scheduler: str | None, workers: int | None,
              n_todo: int) -> Iterator[cf.Executor | None]:
    """The executor of a batch (None: serial in this process). Pools and clusters started
    here are stopped on the way out; a caller's executor is left running."""
    if executor is not None:
        yield as_executor(executor)
        return
    n = workers or os.cpu_count() or 1
    if scheduler:
        from distributed import Client, LocalCluster

        cluster = None
        if scheduler == "local":
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster if cluster is not None else scheduler)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif n > 1 and n_todo > 1:
        pool = make_process_pool(n)
        try:
            yield pool
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    else:
        yield None


def _results(executor: cf.Executor | None, todo: list[RunTask]) -> Iterator[RunOutput]:
    """Yield RunOutputs as runs finish (serially when ``executor`` is None)."""
    if executor is None:
        for t in todo:
            yield execute(t)
        return
    pending = {executor.submit(execute, t) for t in todo}
    try:
        for fut in cf.as_completed(pending):
            pending.discard(fut)  # drop our reference: results are not held until the end
            yield fut.result()
    except BaseException:
        for f in pending:
            f.cancel()
        raise


# --------------------------------------------------------------------------- the batch
def run_experiment(
    spec: str | Path | Experiment,
    executor: Any = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> Path:
    """Run (or resume) an experiment and return its results directory.

    Args:
        spec: an experiment file (path or name under ``experiments/``) or a loaded Experiment.
        executor: any ``concurrent.futures.Executor`` or a Dask ``distributed.Client``; if None,
            ``scheduler``/``workers`` decide: a Dask cluster at ``scheduler`` (``"local"`` starts a
            LocalCluster), serial when ``workers == 1``, else a local process pool of
            ``workers`` (default: all cores).
        out: results directory (default ``results/<name>``).
        resume: continue an interrupted batch in ``out`` (runs already done are skipped).
        force: delete an existing ``out`` and start over.
        workers: worker processes of a pool or LocalCluster started here.
        scheduler: address of a Dask scheduler, or ``"local"``.
        progress: show a progress bar.

    Raises:
        ExperimentError: bad spec, or ``out`` exists without ``resume``/``force``, or the spec
            changed since the batch started.
    """
    exp = spec if isinstance(spec, Experiment) else load_experiment(spec)
    path = Path(out) if out else DEFAULT_RESULTS_DIR / exp.spec.name
    _open_results(path, exp, resume=resume, force=force)
    store = ResultStore(path)
    tasks = plan_runs(exp)
    store.drop_orphan_parts()
    done = store.done_ids()
    todo = [t for t in tasks if t.run_id not in done]

    t_start = time.perf_counter()
    bar = _Progress(len(tasks), len(done), exp.spec.name, enabled=progress)
    # Finished runs are written in batches (every FLUSH_SECONDS or FLUSH_RUNS runs): one file
    # per table per batch keeps the parent's work per run small, so workers are not starved;
    # a kill loses at most the last batch, which resume simply runs again.
    flush_runs = int(os.environ.get(FLUSH_ENV, FLUSH_RUNS))
    buffer: list[RunOutput] = []
    last_flush = time.monotonic()
    with _executor(executor, scheduler, workers, len(todo)) as ex:
        try:
            for result in _results(ex, todo):
                buffer.append(result)
                bar.update(failed=result.row["status"] != "done")
                if len(buffer) >= flush_runs or time.monotonic() - last_flush >= FLUSH_SECONDS:
                    store.write(buffer)
                    buffer = []
                    last_flush = time.monotonic()
        finally:
            store.write(buffer)  # what finished before an interruption is kept
            bar.close()
    store.compact()
    runs = store.runs()
    meta = read_batch_metadata(path)
    meta["finished"] = now_iso()
    meta["wall_seconds_last_session"] = time.perf_counter() - t_start
    meta["runs_done"] = int((runs["status"] == "done").sum())
    meta["runs_failed"] = int((runs["status"] == "failed").sum())
    meta["status"] = "complete" if meta["runs_failed"] == 0 else "complete_with_failures"
    write_metadata(path, meta)
    return path


def _open_results(path: Path, exp: Experiment, *, resume: bool, force: bool) -> None:
    """Create the results folder and its metadata, or reopen it to resume.

    Raises:
        ExperimentError: ``path`` holds something and neither ``resume`` nor ``force`` was
            given, or it holds another batch or a batch of another version of the spec,
            scenarios or model code.
    """
    meta = None
    if path.exists() and any(path.iterdir()):
        if force:
            shutil.rmtree(path)
        elif not resume:
            raise ExperimentError(
                f"results directory {path} already exists; add --resume to continue it or --force to start over")
        else:
            meta = read_batch_metadata(path)
            if meta.get("spec_hash") != exp.spec_hash:
                raise ExperimentError(
                    f"the experiment file, its scenarios or the model's code (sim/*.py) changed since {path} was"
                    " started, so resuming would mix results of two versions; use --force to start over")
            meta["resumed"] = [*meta.get("resumed", []), now_iso()]
            meta["status"] = "running"
    path.mkdir(parents=True, exist_ok=True)
    write_metadata(path, meta if meta is not None else experiment_metadata(exp))


class _Progress:
    def __init__(self, total: int, already: int, name: str, enabled: bool):
        self.enabled = enabled
        self.failed = 0
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("runs, [red]{task.fields[failed]} failed[/red]"),
                          TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
        self.p.start()
        self.task = self.p.add_task(name, total=total, completed=already, failed=0)

    def update(self, failed: bool) -> None:
        if failed:
            self.failed += 1
        if self.enabled:
            self.p.update(self.task, advance=1, failed=self.failed)

    def close(self) -> None:
        if self.enabled:
            self.p.stop()


# --------------------------------------------------------------------------- status
def experiment_status(path: str | Path) -> pd.DataFrame:
    """Counts of runs by scenario and status (done, failed, pending), and a row ``all``.

    Raises:
        ExperimentError: ``path`` is not the results folder of a batch.
    """
    path = Path(path)
    meta = read_batch_metadata(path)
    runs = ResultStore(path).runs()
    rows = []
    for label, planned in meta["runs_planned_by_scenario"].items():
        sub = runs[runs["scenario"] == label] if len(runs) else runs
        done = int((sub["status"] == "done").sum())
        failed = int((sub["status"] == "failed").sum())
        rows.append({"scenario": label, "planned": planned, "done": done, "failed": failed,
                     "pending": planned - done - failed})
    df = pd.DataFrame(rows)
    total = df[["planned", "done", "failed", "pending"]].sum()
    df.loc[len(df)] = {"scenario": "all", **total.to_dict()}
    return df
