"""What a calibration cost, and what plain rejection ABC would have cost for the same ensemble.

Reads a finished calibration directory (``govsim calibrate ...``) and prints:

* model runs and model-run seconds per stage (from the stages' ``runs.parquet``), the wall time
  of each session (``metadata.json``), and the median seconds of one run per scenario;
* the naive reference: rejection ABC from the prior, the textbook likelihood-free method. Its
  acceptance rate at the calibration's final tolerance is estimated with no extra model run:
  GP emulators (as the calibration's last wave fits them) on every screening and history-
  matching run predict each target, with its run-to-run noise, at 20,000 prior draws (the
  inert parameters at their nominal values, as in every stage); the rate is the share whose
  simulated distance is within the final tolerance. Wave 1, a Latin hypercube over the prior,
  gives a direct count too. Runs rejection ABC needs for as many members as the ensemble has =
  members / rate x scenarios per point.

Usage::

    python benchmarks/bench_calibration.py results/calibrate-pingxiang
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.calibration.emulator import Emulator
from sim.calibration.results import load
from sim.calibration.targets import distance, point_means, target_values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a finished calibration directory")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    res = load(args.dir)
    cal = res.calibration()
    meta = res.metadata
    rows = []
    for st in meta["stages"]:
        runs = pd.read_parquet(res.path / st["dir"] / "runs.parquet")
        rows.append({"stage": st["stage"], "points": st["points"], "runs": len(runs),
                     "run_seconds": float(runs["wall_seconds"].sum())})
    stages = pd.DataFrame(rows)
    print(stages.to_string(index=False))
    total_runs = int(stages["runs"].sum())
    sessions = meta.get("wall_seconds_last_session")
    print(f"\nmodel runs: {total_runs}; model-run seconds (sum over workers): "
          f"{stages['run_seconds'].sum():,.0f}; last session's wall time: {sessions:,.0f} s"
          f" (resumed {len(meta.get('resumed', []))} time(s))")

    every = pd.concat([pd.read_parquet(res.path / st["dir"] / "runs.parquet")
                       for st in meta["stages"]], ignore_index=True)
    per = every.groupby("scenario")["wall_seconds"].median()
    print("median seconds per run: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))

    # the naive reference: rejection ABC from the prior at the final tolerance
    fit = cal.fit_targets()
    names = [t.name for t in fit]
    eps = float(res.abc["epsilon"].iloc[-1])
    members = len(res.ensemble)
    units, means = [], []
    for st in meta["stages"]:
        if st["stage"] == "screening" or st["stage"].startswith("wave"):
            design = json.loads((res.path / (st["dir"] + ".design.json")).read_text())
            runs = pd.read_parquet(res.path / st["dir"] / "runs.parquet")
            vals = target_values(runs, fit, days=cal.spec.days, warmup_days=cal.spec.warmup_days)
            m = point_means(vals).reindex(range(len(design["units"])))[names].to_numpy(dtype=float)
            units.append(np.array(design["units"]))
            means.append(m)
            if st["stage"] == "wave1":
                d1 = distance(m, fit)
    X, Y = np.vstack(units), np.vstack(means)
    active = res.identifiability["active"].to_numpy(dtype=bool)
    nominal = X[-1].copy()
    em = Emulator(names, seed=cal.spec.seed).fit(X[:, active], Y)
    rng = np.random.default_rng(0)
    draws = np.tile(nominal, (20_000, 1))
    draws[:, active] = rng.random((20_000, int(active.sum())))
    mu, sd = em.predict(draws[:, active])
    d = distance(mu + sd * rng.standard_normal(mu.shape), fit)
    rate = float(np.mean(d <= eps))
    per_point = len(cal.labels_for(fit)) * cal.spec.replications
    need = members / rate if rate > 0 else float("inf")
    print(f"\nrejection ABC from the prior at the final tolerance {eps:.3g}: wave 1 (a Latin"
          f" hypercube over the prior) accepted {int(np.sum(d1 <= eps))} of {len(d1)} points;"
          f" the emulators put the rate at {rate:.4f} (20,000 prior draws with run noise), so"
          f" {members} members would need ~{need:,.0f} points = {need * per_point:,.0f} model"
          f" runs, against {total_runs} here ({need * per_point / total_runs:.1f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "runs": total_runs, "stages": rows, "epsilon": eps, "prior_accept_rate": rate,
            "rejection_runs": need * per_point, "ratio": need * per_point / total_runs,
            "median_run_seconds": per.to_dict()}, indent=2))
    return 0 if math.isfinite(need) else 1


if __name__ == "__main__":
    raise SystemExit(main())
