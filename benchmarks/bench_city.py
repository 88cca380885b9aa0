"""City-scale benchmark (issue 5): the whole reference city, and how cost scales.

Prints, for the full Pingxiang city (``scenarios/pingxiang_reform.yaml``, 1.8 M people, every
person represented, 3172 grids) and for cities of 100k, 300k and 1M people built at the default
district's densities (``bench_run.scaled_overrides``: lattice area, grids, communities,
townships, officers, volunteers and riders all in proportion to the population):

* start-up seconds (building the lattice, population, partition, residents and agents);
* seconds per simulated year (and CPU seconds, less disturbed by other load);
* people-days per second;
* peak RSS, and memory per represented person (peak RSS above the post-import baseline,
  divided by the population);
* the ratio of time per year at 1M people to 100k people (target 4: at most 11).

Targets (issue 5, on the 2-core machine, one process): full city year <= 60 s after imports
and <= 3 GiB peak; start-up <= 15 s; <= 1 KiB per represented person; 1M/100k <= 11.

Each size runs in a fresh subprocess (its own peak RSS); repeats report the MEDIAN.

Usage::

    python benchmarks/bench_city.py                       # all sizes, 365 days, 3 repeats (1 for the full city)
    python benchmarks/bench_city.py --days 60 --repeats 1 # quick look
    python benchmarks/bench_city.py --only full
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import _rss_mib, machine_info, scaled_overrides  # noqa: E402

MARK = "BENCH_CITY "
SIZES = {"100k": 100_000, "300k": 300_000, "1M": 1_000_000}
TARGETS = {"year_s": 60.0, "rss_gib": 3.0, "startup_s": 15.0, "kib_per_person": 1.0, "ratio": 11.0}


def child(size: str, days: int, repeats: int, seed: int) -> dict:
    from sim import GovernanceModel

    base_rss = _rss_mib()
    builds, runs, cpus = [], [], []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        if size == "full":
            model = GovernanceModel("pingxiang_reform", rng=seed)
        else:
            model = GovernanceModel(None, rng=seed, **scaled_overrides(SIZES[size]))
        t1 = time.perf_counter()
        c1 = time.process_time()
        model.run(days)
        runs.append(time.perf_counter() - t1)
        cpus.append(time.process_time() - c1)
        builds.append(t1 - t0)
        population = int(model.city.population.sum())
        incidents = int(model.incidents.n)
        del model
    peak = _rss_mib()
    run = statistics.median(runs)
    return {
        "size": size, "population": population, "days": days, "repeats": repeats,
        "startup_s": statistics.median(builds), "run_s": run, "cpu_s": statistics.median(cpus),
        "year_s": run * 365 / days, "cpu_year_s": statistics.median(cpus) * 365 / days,
        "people_days_per_s": population * days / run, "incidents": incidents,
        "peak_rss_mib": peak, "base_rss_mib": base_rss,
        "kib_per_person": (peak - base_rss) * 1024 / population,
        "runs_s": runs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeats", type=int, default=3, help="repeats for 100k-1M (median)")
    ap.add_argument("--repeats-full", type=int, default=1, help="repeats for the full city")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=["full", *SIZES], action="append")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        reps = args.repeats_full if args.child == "full" else args.repeats
        print(MARK + json.dumps(child(args.child, args.days, reps, args.seed)))
        return 0

    from rich.console import Console
    from rich.table import Table

    sizes = args.only or ["100k", "300k", "1M", "full"]
    results = {}
    for size in sizes:
        cmd = [sys.executable, __file__, "--child", size, "--days", str(args.days),
               "--repeats", str(args.repeats), "--repeats-full", str(args.repeats_full),
               "--seed", str(args.seed)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        line = next(x for x in out.splitlines() if x.startswith(MARK))
        results[size] = json.loads(line[len(MARK):])
        print(f"{size}: done", file=sys.stderr)

    t = Table(title=f"City scale: {args.days} days, medians")
    for col in ("size", "people", "start-up s", "s / year", "CPU s / year", "people-days / s",
                "peak RSS MiB", "KiB / person", "incidents"):
        t.add_column(col, justify="right")
    for size, r in results.items():
        t.add_row(size, f"{r['population']:,}", f"{r['startup_s']:.1f}", f"{r['year_s']:.1f}",
                  f"{r['cpu_year_s']:.1f}", f"{r['people_days_per_s']:,.0f}", f"{r['peak_rss_mib']:.0f}",
                  f"{r['kib_per_person']:.2f}", f"{r['incidents']:,}")
    console = Console(width=140)
    console.print(t)
    if "100k" in results and "1M" in results:
        ratio = results["1M"]["year_s"] / results["100k"]["year_s"]
        cpu_ratio = results["1M"]["cpu_year_s"] / results["100k"]["cpu_year_s"]
        console.print(f"time per year, 1M / 100k: {ratio:.1f} (CPU {cpu_ratio:.1f}); target <= {TARGETS['ratio']:.0f}")
    if "full" in results:
        f = results["full"]
        console.print(
            f"full city: {f['year_s']:.1f} s per year (target <= {TARGETS['year_s']:.0f}), start-up"
            f" {f['startup_s']:.1f} s (<= {TARGETS['startup_s']:.0f}), peak {f['peak_rss_mib'] / 1024:.2f} GiB"
            f" (<= {TARGETS['rss_gib']:.0f}), {f['kib_per_person']:.2f} KiB per person (<= {TARGETS['kib_per_person']:.0f})")
    info = machine_info()
    console.print(f"machine: {info}")
    console.print("reproduce: python " + " ".join(shlex.quote(a) for a in [
        "benchmarks/bench_city.py", *(argv if argv is not None else sys.argv[1:])]))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "machine": info,
                                         "load": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
