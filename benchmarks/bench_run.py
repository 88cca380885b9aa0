"""Run-speed benchmark: seconds per simulated year and people-days per second (issue 2).

Builds the default scenario at several population sizes, scaled "same densities, grids scaled
with population": the lattice area grows with the population (cell size kept, width = height =
round(40 * sqrt(N / 100k))), and grids, communities, townships, officers, volunteers, volunteer
police and riders all grow in proportion to the population (rounded, with minimums so that
counties <= townships <= communities <= grids <= cells).

Each size runs in a fresh subprocess so that peak RSS (``ru_maxrss``) belongs to that size
alone; the child prints one JSON line that the parent collects. Within a child the model is
built and run ``--repeats`` times with the same seed (identical work each time) and the
MEDIAN build and run times are reported: machines are noisy.

The scaling exponent between two sizes is log(t2 / t1) / log(N2 / N1) of the run time per
simulated day: 1 means linear scaling, above 1 super-linear. It is given for wall-clock time
and for the process's CPU time (``time.process_time``), which other load on a shared machine
disturbs less; the 1-minute load average at start and end is printed and stored too.

Usage::

    python benchmarks/bench_run.py                         # 20k, 100k, 500k; 365 days; 3 repeats
    python benchmarks/bench_run.py --days 30 --repeats 1   # quick look
    python benchmarks/bench_run.py --sizes 100000 --json out.json
    python benchmarks/bench_run.py --repeats-large 1       # 1 repeat for sizes >= 500k
    python benchmarks/bench_run.py --profile 100000        # pyinstrument (or cProfile) of one run
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import itertools
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REF_POP = 100_000
# Defaults of sim/scenario.py for the 100k district; scaled linearly with the population.
REF = {
    "grids.count": 176,
    "admin.communities": 20,
    "admin.townships": 4,
    "police.officers": 100,
    "volunteers.community": 21_000,
    "volunteers.volunteer_police": 140,
    "volunteers.riders": 216,
}
REF_SIDE = 40
CHILD_MARK = "BENCH_RESULT "


# --------------------------------------------------------------------------- scaling
def scaled_overrides(n: int) -> dict[str, Any]:
    """Scenario overrides for a city of ``n`` people at the default densities."""
    f = n / REF_POP
    side = max(2, round(REF_SIDE * math.sqrt(f)))
    cells = side * side
    counties = 1  # the default district has one county; it stays the lower bound
    townships = max(counties, round(REF["admin.townships"] * f))
    communities = max(townships, round(REF["admin.communities"] * f))
    grids = min(cells, max(communities, round(REF["grids.count"] * f)))
    return {
        "city.population": int(n),
        "city.width": side,
        "city.height": side,
        "admin.counties": counties,
        "admin.townships": townships,
        "admin.communities": communities,
        "grids.count": grids,
        "police.officers": round(REF["police.officers"] * f),
        "volunteers.community": round(REF["volunteers.community"] * f),
        "volunteers.volunteer_police": round(REF["volunteers.volunteer_police"] * f),
        "volunteers.riders": round(REF["volunteers.riders"] * f),
    }


def _rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


# --------------------------------------------------------------------------- child
def child(n: int, days: int, repeats: int, seed: int) -> dict[str, Any]:
    """Build and run one size ``repeats`` times in this process; return the measurements."""
    from sim import GovernanceModel

    rss_import = _rss_mib()
    ov = scaled_overrides(n)
    builds: list[float] = []
    runs: list[float] = []
    cpus: list[float] = []
    incidents: list[int] = []
    logged: list[int] = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        model = GovernanceModel(scenario=None, rng=seed, **ov)
        t1 = time.perf_counter()
        c1 = time.process_time()
        model.run(days)
        t2 = time.perf_counter()
        cpus.append(time.process_time() - c1)
        builds.append(t1 - t0)
        runs.append(t2 - t1)
        incidents.append(int(model.summary()["incidents_occurred"]))
        logged.append(int(model.incidents.n))
        n_agents = len(model.agents)
        del model
    run_med = statistics.median(runs)
    inc = statistics.median(incidents)
    return {
        "population": n,
        "overrides": ov,
        "cells": ov["city.width"] * ov["city.height"],
        "agents": n_agents,
        "days": days,
        "repeats": repeats,
        "seed": seed,
        "build_s": builds,
        "run_s": runs,
        "build_median_s": statistics.median(builds),
        "run_median_s": run_med,
        "run_cpu_s": cpus,
        "run_cpu_median_s": statistics.median(cpus),
        "s_per_year": run_med * 365 / days,
        "ms_per_day": run_med / days * 1e3,
        "people_days_per_s": n * days / run_med,
        "incidents": inc,
        "incidents_logged": statistics.median(logged),
        "incidents_per_year": inc * 365 / days,
        "us_per_incident": run_med / inc * 1e6 if inc else float("nan"),
        "rss_after_import_mib": rss_import,
        "peak_rss_mib": _rss_mib(),
    }


# --------------------------------------------------------------------------- profile
def profile(n: int, days: int, seed: int, top: int) -> None:
    """Profile one run (build excluded) at size ``n``; print top entries by self and total time."""
    from sim import GovernanceModel

    model = GovernanceModel(scenario=None, rng=seed, **scaled_overrides(n))
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None

    if Profiler is None:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        model.run(days)
        prof.disable()
        print(f"cProfile: {n:,} people, {days} days, {time.perf_counter() - t0:.2f} s (with overhead)")
        st = pstats.Stats(prof)
        for key in ("tottime", "cumulative"):
            st.sort_stats(key).print_stats(top)
        return

    prof = Profiler(interval=0.001)
    prof.start()
    model.run(days)
    session = prof.stop()
    root = session.root_frame()
    total = root.time if root is not None else 0.0
    agg: dict[tuple[str, str, int], list[float]] = {}

    def walk(frame, stack: frozenset, below_step: bool) -> None:
        if frame.is_synthetic:
            return
        where = (frame.file_path_short or "").removeprefix("../")
        key = (frame.function, where, frame.line_no or 0)
        row = agg.setdefault(key, [0.0, 0.0, 0.0])
        row[0] += frame.total_self_time
        if key not in stack:  # recursion: count a function's total time once per call chain
            row[1] += frame.time
            if below_step:
                row[2] += frame.time
        is_step = frame.function == "step" and where.endswith("sim/model.py")
        for ch in frame.children:
            walk(ch, stack | {key}, below_step or is_step)

    if root is not None:
        walk(root, frozenset(), False)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    console.print(f"pyinstrument: {n:,} people, {days} days, {session.duration:.2f} s wall, "
                  f"{session.cpu_time:.2f} s CPU ({session.sample_count} samples)")
    # column 2: total time counted only inside GovernanceModel.step, so the wrappers above it
    # (run, Mesa's scheduler) do not crowd the cumulative table
    for label, col in (("self", 0), ("total (cumulative) time inside GovernanceModel.step", 2)):
        t = Table(title=f"Top {top} by {label}" + (" time" if col == 0 else ""))
        for c in ("#", "function", "where", "self s", "self %", "total s", "total %"):
            t.add_column(c, justify="left" if c in ("function", "where") else "right")
        rows = sorted(agg.items(), key=lambda kv: kv[1][col], reverse=True)
        rows = [r for r in rows if r[1][col] > 0]
        for i, ((fn, where, line), (s, c, _)) in enumerate(rows[:top], 1):
            t.add_row(str(i), fn, f"{where}:{line}", f"{s:.2f}", f"{100 * s / total:.1f}",
                      f"{c:.2f}", f"{100 * c / total:.1f}")
        console.print(t)
    print(prof.output_text(unicode=False, color=False, show_all=False, short_mode=False))


# --------------------------------------------------------------------------- parent
def _exponent(a: dict, b: dict, key: str = "run_median_s") -> float:
    """log(t2 / t1) / log(N2 / N1) of the time per simulated day."""
    ta, tb = a[key] / a["days"], b[key] / b["days"]
    return math.log(tb / ta) / math.log(b["population"] / a["population"])


def machine_info() -> dict[str, Any]:
    import numpy

    try:
        import mesa

        mesa_v = mesa.__version__
    except Exception:  # noqa: BLE001
        mesa_v = "?"
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "mesa": mesa_v,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="20000,100000,500000",
                   help="comma-separated populations (default: %(default)s)")
    p.add_argument("--days", type=int, default=365, help="simulated days per run (default 365)")
    p.add_argument("--repeats", type=int, default=3, help="runs per size; median reported")
    p.add_argument("--repeats-large", type=int, default=None,
                   help="repeats for sizes >= --large (default: same as --repeats)")
    p.add_argument("--large", type=int, default=500_000,
                   help="population at which --repeats-large applies (default %(default)s)")
    p.add_argument("--seed", type=int, default=20240101, help="root seed (default %(default)s)")
    p.add_argument("--json", dest="json_out", default=None, help="write all results to this file")
    p.add_argument("--profile", type=int, default=None, metavar="N",
                   help="instead of benchmarking, profile one --days run at population N")
    p.add_argument("--top", type=int, default=12, help="rows of the profile tables")
    p.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._child is not None:
        res = child(args._child, args.days, args.repeats, args.seed)
        print(CHILD_MARK + json.dumps(res), flush=True)
        return 0
    if args.profile is not None:
        profile(args.profile, args.days, args.seed, args.top)
        print("\nReproduce: " + shlex.join([Path(sys.executable).name, *sys.argv]))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    load0 = round(os.getloadavg()[0], 2)
    sizes = [int(s) for s in args.sizes.replace("_", "").split(",") if s.strip()]
    here = str(Path(__file__).resolve())
    results: list[dict[str, Any]] = []
    for n in sizes:
        reps = args.repeats
        if args.repeats_large is not None and n >= args.large:
            reps = args.repeats_large
        cmd = [sys.executable, here, "--_child", str(n), "--days", str(args.days),
               "--repeats", str(reps), "--seed", str(args.seed)]
        console.print(f"[dim]{n:,} people: {reps} x ({args.days} days) in a fresh process ...[/]")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_MARK)), None)
        if proc.returncode != 0 or line is None:
            console.print(f"[red]size {n} failed (exit {proc.returncode})[/]")
            sys.stderr.write(proc.stderr[-4000:])
            return 1
        res = json.loads(line[len(CHILD_MARK):])
        res["wall_s"] = wall
        results.append(res)

    info = machine_info()
    info["loadavg_1min_start"] = load0
    table = Table(title=f"Run speed, default scenario scaled with population "
                        f"({args.days} days, median of repeats)")
    cols = ["people", "lattice", "grids", "agents", "reps", "build s", "run s", "run CPU s",
            "s / sim. yr", "ms / day", "people-days/s", "incidents/yr", "µs/incident", "RSS MiB"]
    for c in cols:
        table.add_column(c, justify="right")
    for r in results:
        ov = r["overrides"]
        table.add_row(
            f"{r['population']:,}", f"{ov['city.width']}x{ov['city.height']}",
            f"{ov['grids.count']:,}", f"{r['agents']:,}", str(r["repeats"]),
            f"{r['build_median_s']:.2f}", f"{r['run_median_s']:.2f}",
            f"{r['run_cpu_median_s']:.2f}", f"{r['s_per_year']:.2f}",
            f"{r['ms_per_day']:.2f}", f"{r['people_days_per_s']:.3g}",
            f"{r['incidents_per_year']:,.0f}", f"{r['us_per_incident']:.1f}",
            f"{r['peak_rss_mib']:.0f}",
        )
    console.print(table)

    scaling = []
    if len(results) > 1:
        st = Table(title="Scaling of run time per simulated day (1 = linear)")
        for c in ("from", "to", "population ratio", "time ratio", "exponent", "exponent (CPU)",
                  "incident ratio", "build-time ratio"):
            st.add_column(c, justify="right")
        for a, b in itertools.pairwise(results):
            e = _exponent(a, b)
            row = {
                "from": a["population"], "to": b["population"],
                "population_ratio": b["population"] / a["population"],
                "time_ratio": b["ms_per_day"] / a["ms_per_day"], "exponent": e,
                "exponent_cpu": _exponent(a, b, "run_cpu_median_s"),
                "incident_ratio": b["incidents"] / a["incidents"] if a["incidents"] else None,
                "build_ratio": b["build_median_s"] / a["build_median_s"],
            }
            scaling.append(row)
            st.add_row(f"{a['population']:,}", f"{b['population']:,}",
                       f"{row['population_ratio']:.2f}x", f"{row['time_ratio']:.2f}x", f"{e:.2f}",
                       f"{row['exponent_cpu']:.2f}",
                       f"{row['incident_ratio']:.2f}x", f"{row['build_ratio']:.2f}x")
        if len(results) > 2:
            a, b = results[0], results[-1]
            e = _exponent(a, b)
            ec = _exponent(a, b, "run_cpu_median_s")
            scaling.append({"from": a["population"], "to": b["population"], "exponent": e,
                            "exponent_cpu": ec})
            st.add_row(f"{a['population']:,}", f"{b['population']:,}",
                       f"{b['population'] / a['population']:.2f}x",
                       f"{b['ms_per_day'] / a['ms_per_day']:.2f}x", f"{e:.2f}", f"{ec:.2f}",
                       f"{b['incidents'] / a['incidents']:.2f}x",
                       f"{b['build_median_s'] / a['build_median_s']:.2f}x")
        console.print(st)

    console.print(f"Machine: {info['nproc']} CPUs, Python {info['python']}, numpy {info['numpy']}, "
                  f"Mesa {info['mesa']}, {info['platform']}; {info['date']}; "
                  f"1-min load average {load0} at start, {info['loadavg_1min']} at end")
    repro = shlex.join(["python", "benchmarks/bench_run.py", *(argv if argv is not None
                                                                else sys.argv[1:])])
    console.print(f"Reproduce: {repro}", soft_wrap=True, markup=False, highlight=False)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"machine": info, "args": vars(args), "command": repro, "results": results,
             "scaling": scaling}, indent=2))
        console.print(f"Wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
