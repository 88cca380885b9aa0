"""Batch-throughput benchmark: runs per minute, serial vs process pool vs Dask (issue 3).

Writes a temporary experiment on the default scenario shrunk to a small city (16 x 16 cells,
8,000 people, 14 grids, 4 communities, 8 officers, 1,600 community volunteers, 20 riders),
four design points (``police.officers`` 6/8/10/12) x ``--runs / 4`` replications of
``--days`` days, with the weekly timeseries kept so that writing Parquet parts is exercised.
The same experiment is then run, each ``--repeats`` times (modes interleaved, so that a noisy
neighbour hits all of them alike), through ``sim.batch.runner.run_experiment``:

* ``serial``: ``workers=1``, in this process;
* ``pool``: a 2-worker ``make_process_pool(2)`` (forkserver) passed as ``executor``;
* ``dask``: a ``distributed.Client`` of a LocalCluster of 2 single-threaded worker processes.

Pool and cluster are started and warmed up with one full batch before their timed batches
(that is how a long batch sees them: start-up is paid once). The pool lives through the whole
benchmark (idle, it costs nothing); the Dask cluster is started and warmed up afresh, untimed,
for each of its timed batches and closed after it, because an idle cluster keeps using CPU
(heartbeats) that would slow the other modes down. ``--cold`` also times what the CLI does
for a single batch, ``run_experiment(workers=2)`` and ``run_experiment(scheduler="local")``,
which start (and stop) their own pool or cluster inside the timed call.

Reported: MEDIAN wall time and runs per minute per mode, speed-ups pool/serial and
dask/serial (target >= 1.8 on 2 cores), and the per-run OVERHEAD of the serial runner: the
sum of ``execute(task)`` over all runs timed alone (the model work) against the serial batch
wall time, overhead share = (batch wall per run - execute per run) / batch wall per run
(target <= 10 %), with a breakdown of where that overhead goes (loading and validating the
spec, metadata incl. git, planning, writing parts, compaction; their sum gives a second,
steadier estimate of the share) and what crosses process boundaries (pickled task and result
sizes and times). Last, CPU seconds per run of this process (the parent: writing parts,
compaction, bookkeeping) and of its descendants (the workers) in each mode, and the speed-up
they predict on an idle machine, serial CPU / (max((parent + workers - compaction) / 2,
parent - compaction) + compaction): on a shared machine the wall-clock speed-up says more
about the neighbours than about the runner, the CPU split does not.

Usage::

    python benchmarks/bench_batch.py                      # 24 runs of 60 days, 3 repeats
    python benchmarks/bench_batch.py --runs 8 --days 30 --repeats 1   # quick look
    python benchmarks/bench_batch.py --cold --json out.json

Everything is written under a temporary directory that is removed at the end; the pool, the
Dask cluster, the forkserver and the resource tracker are stopped, and the script checks that
no child process is left.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import logging
import os
import pickle
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from importlib import metadata as _md
from pathlib import Path
from typing import Any

# the small city (overrides of scenarios/default.yaml)
SMALL_CITY = {
    "city.width": 16,
    "city.height": 16,
    "city.population": 8000,
    "grids.count": 14,
    "admin.communities": 4,
    "police.officers": 8,
    "volunteers.community": 1600,
    "volunteers.riders": 20,
}
OFFICER_LEVELS = [6, 8, 10, 12]
# what the serial runner does besides execute(); "read runs" is the status table at the end
OVERHEAD_PIECES = ("load + validate spec", "metadata (versions, git)", "plan runs", "write parts",
                   "compact", "read runs (status)")
WORKERS = 2


# --------------------------------------------------------------------------- helpers
def write_spec(folder: Path, runs: int, days: int) -> tuple[Path, int]:
    """Write the benchmark experiment; return its path and the number of runs planned."""
    import yaml

    points = OFFICER_LEVELS if runs >= len(OFFICER_LEVELS) else OFFICER_LEVELS[:1]
    reps = max(1, round(runs / len(points)))
    spec = {
        "name": "bench_batch",
        "description": "bench_batch.py: small city, officers 6/8/10/12, weekly timeseries.",
        "scenarios": [{"label": "small", "scenario": "default.yaml", "set": SMALL_CITY}],
        "factors": {"police.officers": points},
        "design": {"kind": "full_factorial"},
        "replications": reps,
        "seed": 20240101,
        "days": days,
        "warmup_days": min(10, days - 1),
        "outputs": {"timeseries": True, "timeseries_every": 7, "incidents": False},
    }
    path = folder / "bench_batch.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, len(points) * reps


def version(name: str) -> str:
    try:
        return _md.version(name)
    except _md.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count()
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "nproc": affinity,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        **{pkg: version(pkg) for pkg in ("numpy", "pandas", "pyarrow", "dask", "distributed",
                                         "mesa", "govsim")},
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        return None


def descendants_cpu() -> float:
    """User + system CPU seconds of every living descendant process (pool or Dask workers,
    nannies, the forkserver); 0 without psutil."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return 0.0
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def timed(fn, *args, **kwargs) -> tuple[float, float, float]:
    """Wall time, CPU time of this process and CPU time of its descendants for one call."""
    gc.collect()
    d0 = descendants_cpu()
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, descendants_cpu() - d0


def child_processes() -> list[str]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        import multiprocessing as mp

        return [f"{p.pid} {p.name}" for p in mp.active_children()]
    out = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            out.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
    return out


def stop_mp_helpers() -> None:
    """Stop the forkserver and the resource tracker that multiprocessing leaves running until
    the interpreter exits (stdlib test hooks; harmless if they are not running)."""
    from multiprocessing import forkserver, resource_tracker

    with contextlib.suppress(Exception):
        forkserver._forkserver._stop()
    with contextlib.suppress(Exception):
        resource_tracker._resource_tracker._stop()


# --------------------------------------------------------------------------- measurements
def measure_overhead_parts(spec_path: Path, work: Path) -> dict[str, float]:
    """Time the serial runner's pieces one by one (model work = execute alone)."""
    from sim.batch.runner import FLUSH_RUNS, FLUSH_SECONDS, execute
    from sim.batch.spec import load_experiment, plan_runs
    from sim.batch.store import ResultStore, experiment_metadata

    parts: dict[str, float] = {}
    t0 = time.perf_counter()
    exp = load_experiment(spec_path)
    parts["load + validate spec"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    experiment_metadata(exp)
    parts["metadata (versions, git)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tasks = plan_runs(exp)
    parts["plan runs"] = time.perf_counter() - t0
    gc.collect()
    outputs = []
    t0, c0 = time.perf_counter(), time.process_time()
    for t in tasks:
        outputs.append(execute(t))
        gc.collect(0)  # as run_experiment does after each run
    parts["execute (model work)"] = time.perf_counter() - t0
    parts["_execute_cpu"] = time.process_time() - c0
    bad = [o.row["run_id"] for o in outputs if o.row.get("status") != "done"]
    if bad:
        raise RuntimeError(f"runs failed in the benchmark: {bad}: {outputs[0].row.get('error')}")
    store = ResultStore(work)
    # the runner writes finished runs in batches: every FLUSH_SECONDS or FLUSH_RUNS runs
    per_run = parts["execute (model work)"] / len(tasks)
    chunk = max(1, min(FLUSH_RUNS, int(FLUSH_SECONDS / per_run)))
    t0 = time.perf_counter()
    for i in range(0, len(outputs), chunk):
        store.write(outputs[i:i + chunk])
    parts["write parts"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.compact()
    parts["compact"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.runs()
    parts["read runs (status)"] = time.perf_counter() - t0
    # what crosses process boundaries in the pool/Dask modes
    t0 = time.perf_counter()
    task_bytes = sum(len(pickle.dumps(t, protocol=pickle.HIGHEST_PROTOCOL)) for t in tasks)
    parts["_pickle_tasks_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out_bytes = sum(len(pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL)) for o in outputs)
    parts["_pickle_results_s"] = time.perf_counter() - t0
    parts["_task_bytes"] = task_bytes / len(tasks)
    parts["_result_bytes"] = out_bytes / len(tasks)
    parts["_n"] = len(tasks)
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=24, help="runs in the experiment (default 24)")
    ap.add_argument("--days", type=int, default=60, help="days per run (default 60)")
    ap.add_argument("--repeats", type=int, default=3, help="timed batches per mode (default 3)")
    ap.add_argument("--cold", action="store_true",
                    help="also time run_experiment(workers=2) and (scheduler='local') with "
                         "start-up of the pool or cluster inside the timed call")
    ap.add_argument("--json", metavar="FILE", help="write all measurements as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.days < 2 or args.repeats < 1:
        ap.error("need --runs >= 1, --days >= 2, --repeats >= 1")

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(100, Console().width))
    command = "python benchmarks/bench_batch.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    info = machine_info()
    info["loadavg_start"] = loadavg()

    logging.getLogger("distributed").setLevel(logging.ERROR)
    # a second scheduler (the --cold one) finds port 8787 taken by ours and says so: harmless
    warnings.filterwarnings("ignore", message=r"(?s)Port \d+ is already in use")
    from distributed import Client, LocalCluster

    from sim.batch.runner import make_process_pool, run_experiment

    tmp = Path(tempfile.mkdtemp(prefix="bench_batch-"))
    spec_path, n_runs = write_spec(tmp, args.runs, args.days)
    console.print(f"[bold]bench_batch[/bold]: {n_runs} runs of {args.days} days (small city, "
                  f"weekly timeseries), {args.repeats} repeat(s) per mode, {WORKERS} workers; "
                  f"nproc {info['nproc']}, load average {info['loadavg_start']}")
    counter = iter(range(1_000_000))

    times: dict[str, list[float]] = {"serial": [], "pool": [], "dask": []}
    if args.cold:
        times |= {"pool_cold": [], "dask_cold": []}
    cpu_parent: dict[str, list[float]] = {k: [] for k in times}
    cpu_workers: dict[str, list[float]] = {k: [] for k in times}

    def batch(mode: str | None, executor=None, **kw) -> None:
        out = tmp / f"out-{next(counter)}"
        wall, cpu, cpu_desc = timed(run_experiment, spec_path, executor, out=out, **kw)
        meta = json.loads((out / "metadata.json").read_text())
        if meta.get("runs_done") != n_runs:
            raise RuntimeError(f"batch in {out} finished {meta.get('runs_done')} of {n_runs} runs")
        shutil.rmtree(out)
        if mode is not None:  # None: warm-up
            times[mode].append(wall)
            cpu_parent[mode].append(cpu)
            cpu_workers[mode].append(cpu_desc)

    parts_all: list[dict[str, float]] = []
    pool = cluster = client = None

    def start_dask() -> None:
        nonlocal cluster, client
        cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL)
        client = Client(cluster)
        batch(None, client)  # warm-up: workers import the model

    def stop_dask() -> None:
        nonlocal cluster, client
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        client = cluster = None

    try:
        # warm-up: imports in this process, forkserver start, worker imports, file caches
        t_warm = time.perf_counter()
        batch(None, workers=1)
        pool = make_process_pool(WORKERS)
        batch(None, pool)
        console.print(f"warm-up (a batch in this process, pool start and a batch) "
                      f"{time.perf_counter() - t_warm:.1f} s")

        for i in range(args.repeats):
            batch("serial", workers=1)
            batch("pool", pool)  # idle between its batches, the pool costs no CPU
            # an idle Dask cluster does (heartbeats, event loops: several % of a core), so it
            # lives only for its own batch: started and warmed up untimed, then timed
            start_dask()
            batch("dask", client)
            stop_dask()
            if args.cold:
                batch("pool_cold", workers=WORKERS)
                batch("dask_cold", scheduler="local", workers=WORKERS)
            parts_all.append(measure_overhead_parts(spec_path, tmp / f"parts-{i}"))
            console.print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(
                f"{k} {v[-1]:.2f} s" for k, v in times.items()) + f" (load {loadavg()})")
    finally:
        stop_dask()
        if pool is not None:
            pool.shutdown(wait=True)
        stop_mp_helpers()
        if args.keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    info["loadavg_end"] = loadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    rpm = {k: n_runs / v * 60 for k, v in med.items()}
    speedup = {k: med["serial"] / v for k, v in med.items()}
    parts = {k: statistics.median(p[k] for p in parts_all) for k in parts_all[0]}
    exec_per_run = parts["execute (model work)"] / n_runs
    batch_per_run = med["serial"] / n_runs
    overhead_share = (batch_per_run - exec_per_run) / batch_per_run
    # the same from the runner's pieces, each timed alone right after execute: less exposed to
    # a noisy neighbour than the difference of two separately timed batches
    pieces = sum(v for k, v in parts.items() if k in OVERHEAD_PIECES)
    overhead_share_pieces = pieces / (parts["execute (model work)"] + pieces)

    labels = {
        "serial": "serial (workers=1)",
        "pool": f"process pool, {WORKERS} workers (warm)",
        "dask": f"Dask LocalCluster, {WORKERS} x 1 thread (warm)",
        "pool_cold": f"process pool, cold: run_experiment(workers={WORKERS})",
        "dask_cold": "Dask, cold: run_experiment(scheduler='local')",
    }
    t = Table(title=f"Batch throughput: {n_runs} runs x {args.days} days, "
                    f"median of {args.repeats}", header_style="bold")
    for c in ("mode", "wall s (median)", "min-max s", "runs/min", "speed-up vs serial"):
        t.add_column(c, justify="left" if c == "mode" else "right")
    for k in times:
        t.add_row(labels[k], f"{med[k]:.2f}", f"{min(times[k]):.2f}-{max(times[k]):.2f}",
                  f"{rpm[k]:.0f}", "1.00" if k == "serial" else f"{speedup[k]:.2f}")
    console.print(t)

    o = Table(title=f"Serial overhead per run (median of {args.repeats}; target <= 10%)",
              header_style="bold")
    o.add_column("piece")
    o.add_column("ms per run", justify="right")
    o.add_column("share of batch wall", justify="right")
    for k, v in parts.items():
        if k.startswith("_"):
            continue
        o.add_row(k, f"{1000 * v / n_runs:.1f}", f"{v / med['serial']:.1%}")
    o.add_section()
    o.add_row("serial batch wall (run_experiment)", f"{1000 * batch_per_run:.1f}", "100.0%")
    o.add_row("[bold]overhead = batch - execute[/bold]",
              f"[bold]{1000 * (batch_per_run - exec_per_run):.1f}[/bold]",
              f"[bold]{overhead_share:.1%}[/bold]")
    o.add_row("overhead from the pieces above (timed back to back)",
              f"{1000 * pieces / n_runs:.1f}", f"{overhead_share_pieces:.1%}")
    console.print(o)
    # CPU accounting (less disturbed by other load than wall time): parent and workers
    c = Table(title="CPU seconds per run (median); predicted speed-up on an idle machine",
              header_style="bold")
    for col in ("mode", "parent", "workers", "total", "CPU-bound speed-up"):
        c.add_column(col, justify="left" if col == "mode" else "right")
    cpu_med = {}
    for k in ("serial", "pool", "dask"):
        par = statistics.median(cpu_parent[k]) / n_runs
        wrk = statistics.median(cpu_workers[k]) / n_runs
        cpu_med[k] = {"parent": par, "workers": wrk, "total": par + wrk}
    # serial: the model runs in this process; "workers" is then only the idle pool's
    # background CPU (about nothing), left out of the serial reference
    serial_total = cpu_med["serial"]["parent"]
    for k, v in cpu_med.items():
        # all processes share WORKERS cores: wall >= total CPU / WORKERS, the parent alone is
        # one thread, and the compaction after the last run overlaps nothing
        comp = parts["compact"] / n_runs
        pred = 1.0 if k == "serial" else serial_total / (
            max((v["total"] - comp) / WORKERS, v["parent"] - comp) + comp)
        v["predicted_speedup"] = pred
        c.add_row(labels[k], f"{1000 * v['parent']:.0f} ms", f"{1000 * v['workers']:.0f} ms",
                  f"{1000 * v['total']:.0f} ms", f"{pred:.2f}")
    console.print(c)
    console.print(f"crossing processes per run (pool, Dask): task {parts['_task_bytes'] / 1024:.1f} KiB "
                  f"pickled in {1000 * parts['_pickle_tasks_s'] / n_runs:.2f} ms, result "
                  f"{parts['_result_bytes'] / 1024:.1f} KiB in "
                  f"{1000 * parts['_pickle_results_s'] / n_runs:.2f} ms")
    console.print(f"speed-up pool/serial {speedup['pool']:.2f}, dask/serial {speedup['dask']:.2f} "
                  f"(target >= 1.8); overhead share {overhead_share:.1%} (target <= 10%)")
    console.print(
        f"machine: nproc {info['nproc']} ({info['processor']}), Python {info['python']}, numpy "
        f"{info['numpy']}, pandas {info['pandas']}, pyarrow {info['pyarrow']}, dask "
        f"{info['dask']}, distributed {info['distributed']}; {info['date']}; load average "
        f"{info['loadavg_start']} -> {info['loadavg_end']}")
    console.print(f"reproduce: [bold]{command}[/bold]")

    left = child_processes()
    if left:
        console.print(f"[red]processes left behind:[/red] {left}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": command, "machine": info, "runs": n_runs, "days": args.days,
            "repeats": args.repeats, "workers": WORKERS, "times_s": times, "median_s": med,
            "runs_per_minute": rpm, "speedup_vs_serial": speedup,
            "execute_s_per_run": exec_per_run, "serial_batch_s_per_run": batch_per_run,
            "overhead_share": overhead_share, "overhead_share_pieces": overhead_share_pieces,
            "cpu_parent_s": cpu_parent, "cpu_workers_s": cpu_workers,
            "cpu_per_run_median_s": cpu_med, "overhead_parts_s": parts,
            "processes_left": left,
        }, indent=2) + "\n")
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
