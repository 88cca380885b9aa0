"""Batch-throughput benchmark: runs per minute, serial vs process pool vs Dask (issue 3).

Writes a temporary experiment on the default scenario shrunk to a small city (16 x 16 cells,
8,000 people, 14 grids, 4 communities, 8 officers, 1,600 community volunteers, 20 riders),
four design points (``police.officers`` 6/8/10/12) x ``--runs / 4`` replications of
``--days`` days, with the weekly timeseries kept so that writing Parquet parts is exercised.
The same experiment is then run, each ``--repeats`` times (modes interleaved, so that a noisy
neighbour hits all of them alike), through ``sim.experiments.run_experiment``:

* ``serial``: ``workers=1``, in this process;
* ``pool``: a 2-worker ``make_process_pool(2)`` (forkserver) passed as ``executor``;
* ``dask``: a ``distributed.Client`` of a LocalCluster of 2 single-threaded worker processes.

Pool and cluster are started once and warmed up with one full batch each before timing (that
is how a long batch sees them: start-up is paid once). ``--cold`` also times what the CLI does
for a single batch, ``run_experiment(workers=2)`` and ``run_experiment(scheduler="local")``,
which start (and stop) their own pool or cluster inside the timed call.

Reported: MEDIAN wall time and runs per minute per mode, speed-ups pool/serial and
dask/serial (target >= 1.8 on 2 cores), and the per-run OVERHEAD of the serial runner: the
sum of ``execute(task)`` over all runs timed alone (the model work) against the serial batch
wall time, overhead share = (batch wall per run - execute per run) / batch wall per run
(target <= 10 %), with a breakdown of where that overhead goes (loading and validating the
spec, metadata incl. git, planning, writing parts, compaction) and what crosses process
boundaries (pickled task and result sizes and times).

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


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """Wall time and CPU time of this process for one call."""
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - t0, time.process_time() - c0


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
    from sim.experiments import (
        ResultStore,
        execute,
        experiment_metadata,
        load_experiment,
        plan_runs,
    )

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
    t0 = time.perf_counter()
    for o in outputs:
        store.write(o)
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
    parts["pickle tasks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out_bytes = sum(len(pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL)) for o in outputs)
    parts["pickle results"] = time.perf_counter() - t0
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

    console = Console(highlight=False)
    command = "python benchmarks/bench_batch.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    info = machine_info()
    info["loadavg_start"] = loadavg()

    logging.getLogger("distributed").setLevel(logging.ERROR)
    # a second scheduler (the --cold one) finds port 8787 taken by ours and says so: harmless
    warnings.filterwarnings("ignore", message=r"(?s)Port \d+ is already in use")
    from distributed import Client, LocalCluster

    from sim.experiments import make_process_pool, run_experiment

    tmp = Path(tempfile.mkdtemp(prefix="bench_batch-"))
    spec_path, n_runs = write_spec(tmp, args.runs, args.days)
    console.print(f"[bold]bench_batch[/bold]: {n_runs} runs of {args.days} days (small city, "
                  f"weekly timeseries), {args.repeats} repeat(s) per mode, {WORKERS} workers; "
                  f"nproc {info['nproc']}, load average {info['loadavg_start']}")
    counter = iter(range(1_000_000))

    serial_cpu: list[float] = []

    def batch(executor=None, **kw) -> float:
        out = tmp / f"out-{next(counter)}"
        t, cpu = timed(run_experiment, spec_path, executor, out=out, **kw)
        if executor is None and kw.get("workers") == 1:
            serial_cpu.append(cpu)
        meta = json.loads((out / "metadata.json").read_text())
        if meta.get("runs_done") != n_runs:
            raise RuntimeError(f"batch in {out} finished {meta.get('runs_done')} of {n_runs} runs")
        shutil.rmtree(out)
        return t

    times: dict[str, list[float]] = {"serial": [], "pool": [], "dask": []}
    if args.cold:
        times |= {"pool_cold": [], "dask_cold": []}
    parts_all: list[dict[str, float]] = []
    pool = cluster = client = None
    try:
        # warm-up: imports in this process, forkserver start, worker imports, file caches
        t_warm = time.perf_counter()
        batch(workers=1)
        pool = make_process_pool(WORKERS)
        batch(pool)
        cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        batch(client)
        console.print(f"warm-up (one batch per mode, pool and cluster start) "
                      f"{time.perf_counter() - t_warm:.1f} s")

        for i in range(args.repeats):
            times["serial"].append(batch(workers=1))
            times["pool"].append(batch(pool))
            times["dask"].append(batch(client))
            if args.cold:
                times["pool_cold"].append(batch(workers=WORKERS))
                times["dask_cold"].append(batch(scheduler="local", workers=WORKERS))
            parts_all.append(measure_overhead_parts(spec_path, tmp / f"parts-{i}"))
            console.print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(
                f"{k} {v[-1]:.2f} s" for k, v in times.items()) + f" (load {loadavg()})")
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
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
    # the same in CPU seconds of this process: less sensitive to noisy neighbours
    cpu_batch = statistics.median(serial_cpu[1:] or serial_cpu)  # [0] is the warm-up
    cpu_exec = parts["_execute_cpu"]
    overhead_share_cpu = (cpu_batch - cpu_exec) / cpu_batch

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
    o.add_row("overhead in CPU time of this process",
              f"{1000 * (cpu_batch - cpu_exec) / n_runs:.1f}", f"{overhead_share_cpu:.1%}")
    console.print(o)
    console.print(f"pickled per run: task {parts['_task_bytes'] / 1024:.1f} KiB, "
                  f"result {parts['_result_bytes'] / 1024:.1f} KiB")
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
            "overhead_share": overhead_share, "overhead_share_cpu": overhead_share_cpu,
            "serial_batch_cpu_s": serial_cpu, "overhead_parts_s": parts,
            "processes_left": left,
        }, indent=2) + "\n")
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
