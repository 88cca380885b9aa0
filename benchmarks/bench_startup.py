"""Start-up time of the fast commands (issue 12): ``govsim --help``, ``validate``, ``scenarios``
and ``experiment status`` import neither Mesa nor the model.

Each command runs ``--repeats`` times as a fresh subprocess (``python -m sim ...``, the same as
the ``govsim`` script) with its output discarded; the MEDIAN wall time is reported, next to a
bare interpreter (``python -c pass``) measured in the same session, so that a slow or busy
machine shows as a slow reference rather than as slow commands. Commands are interleaved
(round-robin), so load that comes and goes hits them all alike. Two references more: what
importing the model costs (``python -c "import sim.model"``: what every command paid before
issue 12), and ``govsim run`` of a 1-day tiny city (a command that needs the model).

``experiment status`` reads a tiny batch made in a temporary directory first (not timed).

Usage::

    python benchmarks/bench_startup.py                    # 7 repeats
    python benchmarks/bench_startup.py --repeats 15 --json /tmp/bench_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ("{city.width: 12, city.height: 12, city.population: 4000, admin.townships: 2,"
        " admin.communities: 3, grids.count: 8, police.officers: 4, volunteers.community: 800,"
        " volunteers.volunteer_police: 6, volunteers.riders: 10}")
TINY_SET = ["--set", "city.width=12", "--set", "city.height=12", "--set", "city.population=4000",
            "--set", "admin.townships=2", "--set", "admin.communities=3", "--set", "grids.count=8",
            "--set", "police.officers=4", "--set", "volunteers.community=800",
            "--set", "volunteers.volunteer_police=6", "--set", "volunteers.riders=10"]
#: Target of issue 12 for ``govsim --help`` on a quiet machine.
HELP_TARGET_S = 0.5


def make_batch(tmp: Path) -> Path:
    """A finished one-run batch for ``experiment status`` (run once, not timed)."""
    spec = tmp / "tiny.yaml"
    spec.write_text(
        f"name: tiny\nscenarios:\n  - {{label: a, scenario: default.yaml, set: {TINY}}}\n"
        "replications: 1\nseed: 1\ndays: 6\nwarmup_days: 1\n")
    out = tmp / "batch"
    subprocess.run([sys.executable, "-m", "sim", "experiment", "run", str(spec), "--out", str(out),
                    "--workers", "1", "--quiet"], cwd=ROOT, check=True, capture_output=True)
    return out


def commands(batch: Path, tmp: Path) -> dict[str, list[str]]:
    py, sim = [sys.executable], [sys.executable, "-m", "sim"]
    return {
        "python -c pass (reference)": [*py, "-c", "pass"],
        "govsim --help": [*sim, "--help"],
        "govsim validate scenarios/default.yaml": [*sim, "validate", str(ROOT / "scenarios/default.yaml")],
        "govsim scenarios": [*sim, "scenarios"],
        "govsim experiment status DIR": [*sim, "experiment", "status", str(batch)],
        "python -c 'import sim.model' (reference)": [*py, "-c", "import sim.model"],
        "govsim run (tiny city, 1 day) (reference)": [
            *sim, "run", "default", "--days", "1", "--warmup", "0", "--quiet", "--no-incidents",
            "--out", str(tmp / "run-{i}"), *TINY_SET],
    }


def time_once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr.decode()[-2000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()

    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        batch = make_batch(tmp)
        cmds = commands(batch, tmp)
        for argv in cmds.values():  # warm the file cache (and .pyc files) once, not timed
            time_once([a.replace("{i}", "warm") for a in argv])
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for i in range(args.repeats):
            for name, argv in cmds.items():
                times[name].append(time_once([a.replace("{i}", str(i)) for a in argv]))
    load1 = os.getloadavg()[0]

    ref = statistics.median(times["python -c pass (reference)"])
    rows = []
    print(f"{args.repeats} repeats, median wall seconds; load average {load0:.1f} -> {load1:.1f};"
          f" {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"{'command':48s} {'median s':>9s} {'min s':>7s} {'max s':>7s} {'minus bare python':>18s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"command": name, "median_s": med, "min_s": min(ts), "max_s": max(ts),
                     "over_python_s": med - ref, "times_s": ts})
        print(f"{name:48s} {med:9.3f} {min(ts):7.3f} {max(ts):7.3f} {med - ref:18.3f}")
    help_s = statistics.median(times["govsim --help"])
    verdict = "met" if help_s < HELP_TARGET_S else "NOT met (a busy machine inflates this)"
    print(f"target: govsim --help under {HELP_TARGET_S} s: {verdict} ({help_s:.3f} s)")
    if args.json:
        args.json.write_text(json.dumps({"repeats": args.repeats, "load_average": [load0, load1],
                                         "python": platform.python_version(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
