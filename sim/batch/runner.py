"""Running a batch: one run in any process (:func:`execute`), the whole experiment on any
``concurrent.futures`` executor (:func:`run_experiment`), and its progress and status.

The caller chooses the executor: serial in this process, a local process pool
(:func:`make_process_pool`), a Dask cluster (through ``Client.get_executor()``, so it is driven
exactly like a pool), or any other ``concurrent.futures.Executor``. The numbers depend only on
(scenario, design point, seed), never on the executor: rows are stored by run id, not in the
order runs finish. Finished runs are written as they come (:class:`~sim.batch.store.ResultStore`),
so an interrupted batch resumes where it stopped.

Faults (docs/reliability.md; tests/test_faults.py):

* one writer: the results folder is locked for the whole batch
  (:func:`sim.batch.results.results_lock`); a second batch or run into it is refused at once;
* a lost worker (killed, out of memory) does not end the batch: a pool started here is replaced
  by a fresh one and every unfinished run is submitted again; a run whose own worker is lost
  :data:`MAX_WORKER_LOSSES` times is recorded as failed with the cause; ``metadata.json`` lists
  every loss (``worker_losses``);
* workers die with the batch, even when it is killed with ``kill -9``
  (:mod:`sim.batch.pool`);
* an exception ends the batch with ``status`` ``stopped`` or ``interrupted`` in
  ``metadata.json`` (never ``running``) and a :class:`BatchError` that says how to resume.
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
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.batch.pool import (  # noqa: F401  (make_process_pool, as_executor: public here too)
    FixedExecutor,
    LocalPool,
    as_executor,
    kill_if_asked,
    make_process_pool,
    open_executor,
    set_in_flight,
)
from sim.batch.results import (
    DEFAULT_RESULTS_DIR,
    ResultsLockedError,
    now_iso,
    results_lock,
    summary_row,
)
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
#: A run whose own worker process is lost this many times is recorded as failed instead of
#: submitted again: a run that kills its worker every time (e.g. it needs more memory than
#: the machine has) must not stop the batch or loop for ever.
MAX_WORKER_LOSSES = 3


class BatchError(RuntimeError):
    """A batch stopped by an unexpected error. The message names the cause, the results
    directory and the command that resumes the batch."""


# --------------------------------------------------------------------------- one run
def execute(task: RunTask) -> RunOutput:
    """Run one task (in any process). Exceptions become a failed row with the traceback."""
    from sim.model import GovernanceModel

    t0 = time.perf_counter()
    labels = {"point_id": task.point_id, "replication": task.replication, **task.factor_values}
    model = None
    set_in_flight(task.run_id)
    try:
        kill_if_asked(task.run_id)
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
        return RunOutput(_failed_row(task, traceback.format_exc(), time.perf_counter() - t0))
    finally:
        set_in_flight("")
        _release(model)
        del model


def _failed_row(task: RunTask, error: str, wall_seconds: float) -> dict[str, Any]:
    """The ``runs`` row of a run that did not finish: its labels, seed and the cause."""
    return {"run_id": task.run_id, "scenario": task.label, "scenario_name": task.scenario.name,
            "point_id": task.point_id, "replication": task.replication, **task.factor_values,
            "seed": str(task.entropy), "spawn_key": json.dumps(list(task.spawn_key)),
            "scenario_digest": task.scenario.digest(), "status": "failed",
            "wall_seconds": wall_seconds, "error": error}


_runs_since_gc = 0


def _release(model: Any) -> None:
    """Free a finished model promptly. A model and its agents reference each other, so it is
    freed only by Python's cyclic garbage collector, whose full passes are rare: without this,
    dead models pile up in a worker and raise its memory high-water mark. A full collection
    costs a few milliseconds, so it runs after every large model and every 10th small one."""
    global _runs_since_gc
    _runs_since_gc += 1
    residents = getattr(model, "residents", None)
    large = residents is not None and residents.n >= 100_000
    if large or _runs_since_gc >= 10:
        gc.collect()
        _runs_since_gc = 0


# --------------------------------------------------------------------------- executors
def _results(where: FixedExecutor | LocalPool, todo: list[RunTask],
             losses: list[dict[str, Any]],
             note: Callable[[str], None] = lambda text: None) -> Iterator[RunOutput]:
    """Yield RunOutputs as runs finish (serially when ``where.executor`` is None).

    When a worker of a pool started here is lost, every unfinished run is submitted again to a
    fresh pool. The run the lost worker was running counts one loss; at
    :data:`MAX_WORKER_LOSSES` it is recorded as failed, with the cause, instead. Each loss is
    appended to ``losses`` (for ``metadata.json``) and told to ``note``.

    Raises:
        concurrent.futures.BrokenExecutor: an executor not started here broke, or pools broke
            more than MAX_WORKER_LOSSES times in a row with no run finished and none to blame
            (their workers cannot start).
    """
    if where.executor is None:
        for t in todo:
            yield execute(t)
        return
    queue = list(todo)
    losses_of: Counter[str] = Counter()
    barren = 0  # pools in a row that broke before finishing any run
    while queue:
        futures: dict[cf.Future, RunTask] = {}
        lost: list[RunTask] = []
        broken: BaseException | None = None
        finished = False
        try:
            for i, t in enumerate(queue):
                try:
                    futures[where.executor.submit(execute, t)] = t
                except cf.BrokenExecutor as exc:  # broke while we were still submitting
                    lost, broken = queue[i:], exc
                    break
            for fut in cf.as_completed(list(futures)):
                task = futures.pop(fut)  # drop our reference: results are not held until the end
                try:
                    out = fut.result()
                except cf.BrokenExecutor as exc:  # BrokenProcessPool: a worker died
                    lost.append(task)
                    broken = exc
                    continue
                except Exception as exc:
                    if type(exc).__name__ != "KilledWorker":
                        raise
                    # Dask rescheduled the run after each lost worker, then gave it up
                    out = RunOutput(_failed_row(task, f"Dask gave the run up: {exc}", 0.0))
                finished = True
                yield out
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        queue = []
        if not lost:
            break
        assert broken is not None
        if not where.renewable:
            raise broken
        culprits, running = where.renew()
        for t in sorted(lost, key=lambda t: t.run_id in culprits):  # suspects last
            if t.run_id in culprits:
                losses_of[t.run_id] += 1
                if losses_of[t.run_id] >= MAX_WORKER_LOSSES:
                    finished = True  # given up: progress too
                    yield RunOutput(_failed_row(
                        t, f"the worker process running this run was lost {losses_of[t.run_id]}"
                           f" times (last: {culprits[t.run_id]}); the batch went on without it."
                           " Fix the cause (e.g. memory: fewer --workers) and add --resume", 0.0))
                    continue
            queue.append(t)
        losses.append({"at": now_iso(), "cause": str(broken), "lost_workers": culprits,
                       "runs_restarted": sorted(running), "runs_resubmitted": len(queue)})
        # a pool that breaks again and again with nothing finished and no run to blame cannot
        # start its workers (e.g. the model fails to import): stop instead of looping
        barren = 0 if finished or culprits else barren + 1
        if barren > MAX_WORKER_LOSSES:
            raise cf.BrokenExecutor(
                f"the process pool broke {barren} times in a row before any run finished, so its"
                f" workers cannot start: {broken}") from broken
        what = "; ".join(f"{c} while running {r}" for r, c in culprits.items())
        what = what or "a worker was lost"
        note(f"{what}: {len(queue)} unfinished run(s) resubmitted to a fresh pool")


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

    The directory is locked for the whole batch (:func:`sim.batch.results.results_lock`).

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
            changed since the batch started, or another process is writing ``out``.
        BatchError: the batch stopped on an unexpected error (finished runs are kept; the
            message says how to resume); ``metadata.json`` then says ``"status": "stopped"``.
    """
    exp = spec if isinstance(spec, Experiment) else load_experiment(spec)
    path = Path(out) if out else DEFAULT_RESULTS_DIR / exp.spec.name
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(results_lock(path))
        except ResultsLockedError as exc:
            raise ExperimentError(str(exc)) from None
        return _run_locked(exp, path, executor, resume=resume, force=force, workers=workers,
                           scheduler=scheduler, progress=progress)


def _run_locked(exp: Experiment, path: Path, executor: Any, *, resume: bool, force: bool,
                workers: int | None, scheduler: str | None, progress: bool) -> Path:
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
    losses: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    try:
        with open_executor(executor, scheduler, workers, len(todo)) as where:
            try:
                for result in _results(where, todo, losses, note=bar.note):
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
    except BaseException as exc:
        # never leave "running" behind: say how the session ended, and how to go on
        _record_stop(path, exc, losses)
        if isinstance(exc, Exception):
            raise BatchError(_stop_message(exp, path, exc)) from exc
        raise
    runs = store.runs()
    meta = read_batch_metadata(path)
    meta["finished"] = now_iso()
    meta["wall_seconds_last_session"] = time.perf_counter() - t_start
    meta["runs_done"] = int((runs["status"] == "done").sum())
    meta["runs_failed"] = int((runs["status"] == "failed").sum())
    meta["worker_losses"] = [*meta.get("worker_losses", []), *losses]
    meta["worker_losses_last_session"] = len(losses)
    meta["runs_restarted_last_session"] = len({r for x in losses for r in x["runs_restarted"]})
    meta["status"] = "complete" if meta["runs_failed"] == 0 else "complete_with_failures"
    meta.pop("error", None)
    write_metadata(path, meta)
    return path


def worker_loss_note(path: str | Path) -> str | None:
    """A line for the end of a batch whose last session lost worker processes (None if it lost
    none): the batch completed anyway, and ``metadata.json`` has the details."""
    try:
        meta = read_batch_metadata(Path(path))
    except ExperimentError:
        return None
    lost = meta.get("worker_losses_last_session") or 0
    n = meta.get("runs_restarted_last_session") or 0
    if not lost:
        return None
    return (f"{n} run(s) resubmitted after a worker process was lost ({lost} time(s): killed, or"
            " out of memory; see worker_losses in metadata.json); every run is recorded once")


def _record_stop(path: Path, exc: BaseException, losses: list[dict[str, Any]]) -> None:
    """Write how the session ended into ``metadata.json``; never masks ``exc``."""
    with contextlib.suppress(Exception):
        meta = read_batch_metadata(path)
        meta["status"] = "stopped" if isinstance(exc, Exception) else "interrupted"
        meta["stopped"] = now_iso()
        meta["error"] = f"{type(exc).__name__}: {exc}"
        meta["worker_losses"] = [*meta.get("worker_losses", []), *losses]
        write_metadata(path, meta)


def resume_command(exp: Experiment, path: Path) -> str:
    """The command line that continues the batch in ``path``."""
    if exp.kind == "comparison":
        return f"the same `govsim compare ...` command with --out {path} --resume"
    return f"`govsim experiment run {exp.source} --out {path} --resume`"


def _stop_message(exp: Experiment, path: Path, exc: Exception) -> str:
    try:
        saved = f"the {len(ResultStore(path).done_ids())} finished run(s) are saved in {path}"
    except Exception:  # noqa: BLE001  (the message must not fail: the folder may be unreadable)
        saved = f"finished runs are saved in {path}"
    return (f"the batch stopped: {type(exc).__name__}: {exc}. {saved};"
            f" continue with {resume_command(exp, path)}")


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
                f"results directory {path} already exists; add --resume to continue it or --force"
                " to start over")
        else:
            meta = read_batch_metadata(path)
            if meta.get("spec_hash") != exp.spec_hash:
                raise ExperimentError(
                    "the experiment file, its scenarios or the model's code (sim/*.py) changed"
                    f" since {path} was started, so resuming would mix results of two versions;"
                    " use --force to start over")
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

    def note(self, text: str) -> None:
        """A line above the bar (e.g. a lost worker); nothing when the bar is off."""
        if self.enabled:
            self.p.console.print(f"[yellow]{text}[/yellow]")

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
