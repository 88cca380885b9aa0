"""Small real results directories for the plot, report and notebook tests (not a test module).

Each builder writes one directory with the project's own entry points (``sim.cli.main`` for
``govsim run`` and ``govsim compare``, ``build_experiment`` + ``run_experiment`` for
experiments, ``sim.analysis.sensitivity.analyze`` for Sobol') on a tiny city, serially, so the four
together take a few seconds.
"""

from __future__ import annotations

from pathlib import Path

# A tiny city: 144-256 cells, a few thousand people, a handful of grids.
RUN_SET = {"city.width": 16, "city.height": 16, "city.population": 8000, "admin.communities": 4,
           "grids.count": 14, "police.officers": 8, "volunteers.community": 1600, "volunteers.riders": 20}
TINY = {"city.width": 12, "city.height": 12, "city.population": 4000, "admin.communities": 4,
        "grids.count": 8, "police.officers": 4, "volunteers.community": 800, "volunteers.riders": 10}


def _sets(d: dict) -> list[str]:
    out: list[str] = []
    for k, v in d.items():
        out += ["--set", f"{k}={v}"]
    return out


def make_run(out: Path, scenario: str = "default", days: int = 40) -> Path:
    """``govsim run`` (single run with cells and incidents), 40 days, one survey wave."""
    from sim.cli import main

    rc = main(["run", scenario, "--days", str(days), "--warmup", "10", "--seed", "3", "--quiet",
               "--out", str(out), *_sets(RUN_SET)])
    assert rc == 0, f"govsim run exited {rc}"
    return out


def make_compare(out: Path, reps: int = 3) -> Path:
    """``govsim compare district_pre_reform default``: 2 scenarios x ``reps`` paired reps."""
    from sim.cli import main

    rc = main(["compare", "district_pre_reform", "default", "--reps", str(reps), "--days", "40",
               "--warmup", "10", "--workers", "1", "--out", str(out), *_sets(RUN_SET)])
    assert rc == 0, f"govsim compare exited {rc}"
    return out


def make_levers(out: Path, reps: int = 3) -> Path:
    """Every on/off combination of two reform levers (fusion, paperwork) x ``reps``."""
    from sim.batch import build_experiment, run_experiment

    exp = build_experiment({
        "name": "levers",
        "scenarios": [{"label": "district", "scenario": "district_pre_reform.yaml", "set": TINY}],
        "factors": {
            "fusion": [{"fusion.enabled": False}, {"fusion.enabled": True}],
            "paperwork": [{"paperwork.forms": 118, "paperwork.inspection_items": 100},
                          {"paperwork.forms": 49, "paperwork.inspection_items": 26}],
        },
        "replications": reps, "seed": 5, "days": 35, "warmup_days": 5,  # one complete month
        "outputs": {"timeseries": True, "timeseries_every": 1},
    })
    return run_experiment(exp, out=out, workers=1)


def make_sobol(out: Path) -> Path:
    """A Sobol' design (3 factors, N = 8: 40 runs of 30 days), analysed into ``analysis/``."""
    from sim.analysis.sensitivity import analyze
    from sim.batch import build_experiment, run_experiment

    exp = build_experiment({
        "name": "sobol",
        "scenarios": [{"label": "tiny", "scenario": "default.yaml", "set": TINY}],
        "factors": {"police.officers": {"low": 2, "high": 12},
                    "paperwork.forms": {"low": 30, "high": 130},
                    "channels.snap_report.resident_adoption": {"low": 0.0, "high": 0.3}},
        "design": {"kind": "sobol", "base_samples": 8},
        "replications": 1, "seed": 7, "days": 30, "warmup_days": 0,  # one complete month
        "outputs": {"timeseries": False},
        "outcomes": ["closure_rate", "true_resolution_rate", "time_to_discovery_median_h",
                     "worker_utilisation"],
    })
    path = run_experiment(exp, out=out, workers=1)
    analyze(path)
    return path
