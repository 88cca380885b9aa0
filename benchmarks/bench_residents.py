"""Residents' daily update: vectorised model vs a naive per-agent Mesa reference (issue 5, target 3).

Target: the residents' daily update (incident arrivals, exposure, perceived-safety relaxation
and spread, reporting decisions) runs at least 20 times the throughput of a naive
implementation of the same rules that steps one Mesa agent per resident.

For each city size, in ONE process and on the SAME inputs:

* a ``GovernanceModel`` (default scenario scaled to ``N`` people as in ``bench_run.py``) is
  built and run ``--warmup`` days, so that perceived safety, trust, feedback boosts, guardian
  presence and open problems are those of a running city; its state is saved;
* per repeat, the state is restored, a :class:`naive_resident.NaiveResidentModel` is built
  from it (not timed), then ``--days`` days of :func:`vectorised_day` on the GovernanceModel and
  ``--days`` days of ``NaiveResidentModel.step()`` are timed (wall clock and process CPU);
* medians over repeats, resident-days per second for both and their ratio are printed.

:func:`vectorised_day` runs only the residents' pieces of ``GovernanceModel.step``, calling the
model's own functions (see its docstring for what is and is not included). Inputs other parts
of the model produce (deterrence, disorder, guardian visits) are taken from the warmed-up model
and held fixed in both (:class:`naive_resident.DayInputs`).

Usage::

    python benchmarks/bench_residents.py                      # 20k and 200k people, 30 days, 3 repeats
    python benchmarks/bench_residents.py --people 20000 --days 10 --repeats 1
    python benchmarks/bench_residents.py --json results/bench_residents.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_run import scaled_overrides
from naive_resident import DayInputs, NaiveResidentModel, cell_rates, snapshot_inputs


from sim.incidents import CAT, N_CAT, background_arrivals


# --------------------------------------------------------------------------- vectorised day
def vectorised_day(model, day: int, rng: np.random.Generator, inputs: DayInputs | None = None) -> dict:
    """One day of the residents' update on a ``GovernanceModel``, with the model's own code.

    Included, in the order of ``GovernanceModel.step``:

    1. background arrivals of every category: the rates of ``GovernanceModel._arrivals``
       (:func:`naive_resident.cell_rates`, checked against the model by the test) drawn by
       ``sim.incidents.background_arrivals`` (Poisson total per category, split over cells);
    2. victims as in ``GovernanceModel._log_incidents``: ``ResidentPopulation.random_in_cells``
       (``weighted_in_cells`` with ``model.welfare_weight`` for welfare), and
       ``SafetyModel.victimise`` for public-safety victims;
    3. hotline decisions for today's non-latent incidents, the victim part of
       ``channels.discover``: probability ``min(1, victim_report_prob x propensity)``, with
       ``Channels.victim_propensity`` (``ResidentPopulation.propensity_of``); callers' ``reports_made``
       and ``last_event_day`` are updated;
    4. ``ResidentPopulation.end_day`` (boosts fade), ``cell_propensity()``, exposure by
       ``np.bincount`` as in ``step`` and ``SafetyModel.update``.

    Not included (in neither implementation): near-repeat and escalation offspring, logging
    incidents in the ``IncidentLog`` (severity, times kept), other channels, neighbours'
    hotline reports of latent problems (they need the open-problem life cycle), handling,
    harm, surveys and metrics.

    Args:
        model: a built ``GovernanceModel`` (its resident state is advanced in place).
        day: the day index (for boosts and ``last_event_day``).
        rng: the generator every draw of this day comes from.
        inputs: the fixed day inputs (default: a fresh :func:`snapshot_inputs`).

    Returns:
        The day's outcomes: ``arrivals``, ``nonlatent`` and ``calls`` per category (lists),
        ``welfare_elderly`` (welfare incidents whose subject is an elderly resident living alone)
        and ``mean_safety`` after the update.
    """
    if inputs is None:
        inputs = snapshot_inputs(model)
    city = model.city
    cp = model.cat
    res = model.residents
    model.day = day
    # 1. arrivals
    rate = cell_rates(city.population, city.risk, cp, inputs, city.urban)
    cat, cell, _t = background_arrivals(rate, day, rng)
    cat = cat.astype(np.int64)
    # 2. victims
    u = rng.random(len(cat))
    victim = np.full(len(cat), -1, dtype=np.int32)
    hv = cp.has_victim[cat]
    wel = hv & (cat == CAT["welfare"])
    oth = hv & ~wel
    if oth.any():
        victim[oth] = res.random_in_cells(cell[oth], u[oth])
    welfare_elderly = 0
    if wel.any():
        victim[wel] = res.weighted_in_cells(cell[wel], u[wel], model.welfare_weight)
        vw = victim[wel]
        welfare_elderly = int(res.elderly_alone[vw[vw >= 0]].sum())
    model.safety.victimise(victim[cat == CAT["public_safety"]], day)
    # 3. hotline decisions of today's non-latent incidents
    nonlat = ~cp.latent[cat]
    cn, vic, celln = cat[nonlat], victim[nonlat], cell[nonlat]
    vprop = np.where(vic >= 0, model.channels.victim_propensity(vic, model.day), model.cell_propensity[celln])
    p = np.minimum(1.0, cp.victim_report_prob[cn] * vprop)
    call = rng.random(len(cn)) < p
    callers = vic[call & (vic >= 0)]
    if len(callers):
        np.add.at(res.reports_made, callers, 1)
        res.last_event_day[callers] = day
    # 4. boosts fade, cell propensity, perceived safety
    res.end_day()
    model.cell_propensity = res.cell_propensity()
    exposure = np.bincount(celln, weights=cp.safety_impact[cn], minlength=city.n_cells)
    model.safety.update(exposure, inputs.disorder_cell, inputs.guardians)
    return {
        "day": day,
        "arrivals": np.bincount(cat, minlength=N_CAT).tolist(),
        "nonlatent": np.bincount(cn, minlength=N_CAT).tolist(),
        "calls": np.bincount(cn[call], minlength=N_CAT).tolist(),
        "welfare_elderly": welfare_elderly,
        "mean_safety": model.safety.mean(),
    }


# --------------------------------------------------------------------------- state
_RES_ARRAYS = ("safety", "victimisations", "reports_made", "last_event_day", "cell_boost")


def save_state(model) -> dict[str, Any]:
    """Copy the resident state :func:`vectorised_day` changes."""
    res = model.residents
    st = {name: getattr(res, name).copy() for name in _RES_ARRAYS}
    st["cell_propensity"] = model.cell_propensity.copy()
    st["safety_cell_sum"] = model.safety.cell_sum.copy()
    st["day"] = model.day
    return st


def restore_state(model, st: dict[str, Any]) -> None:
    """Put back a state saved by :func:`save_state` (in place: the arrays keep their identity)."""
    res = model.residents
    for name in _RES_ARRAYS:
        getattr(res, name)[...] = st[name]
    model.cell_propensity = st["cell_propensity"].copy()
    model.safety.cell_sum = st["safety_cell_sum"].copy()
    model.day = st["day"]


def warmed_model(people: int, warmup: int, seed: int, **extra):
    """The default scenario scaled to ``people`` (as ``bench_run.py``), run ``warmup`` days."""
    from sim import GovernanceModel

    model = GovernanceModel(scenario=None, rng=seed, **{**scaled_overrides(people), **extra})
    model.run(warmup)
    return model


# --------------------------------------------------------------------------- benchmark
def bench_size(people: int, days: int, repeats: int, warmup: int, seed: int) -> dict[str, Any]:
    gov = warmed_model(people, warmup, seed)
    inputs = snapshot_inputs(gov)
    st = save_state(gov)
    day0 = gov.day + 1
    rows = []
    for rep in range(repeats):
        restore_state(gov, st)
        t0 = time.perf_counter()
        naive = NaiveResidentModel(gov, inputs, rng=seed * 1000 + rep)
        build_naive = time.perf_counter() - t0

        rng = np.random.default_rng([seed, rep])
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        vec_out = [vectorised_day(gov, day0 + i, rng, inputs) for i in range(days)]
        vec_s, vec_cpu = time.perf_counter() - t0, time.process_time() - c0

        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(days):
            naive.step()
        naive_s, naive_cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({
            "vec_s": vec_s, "vec_cpu_s": vec_cpu, "naive_s": naive_s, "naive_cpu_s": naive_cpu,
            "naive_build_s": build_naive,
            "vec_incidents": int(sum(sum(d["arrivals"]) for d in vec_out)),
            "naive_incidents": int(sum(sum(d["arrivals"]) for d in naive.daily)),
            "vec_mean_safety_end": vec_out[-1]["mean_safety"],
            "naive_mean_safety_end": naive.daily[-1]["mean_safety"],
        })
        del naive
    n_res = gov.residents.n
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    rd = n_res * days
    return {
        "people": people, "residents": n_res, "cells": gov.city.n_cells, "days": days,
        "repeats": repeats, "warmup": warmup, "seed": seed, "repeat_rows": rows,
        "median": med,
        "vec_resident_days_per_s": rd / med["vec_s"],
        "naive_resident_days_per_s": rd / med["naive_s"],
        "ratio_wall": med["naive_s"] / med["vec_s"],
        "ratio_cpu": med["naive_cpu_s"] / med["vec_cpu_s"],
        "ratio_min_over_repeats": min(r["naive_s"] / r["vec_s"] for r in rows),
    }


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, nargs="+", default=[20_000, 200_000],
                    help="city sizes (people; default 20000 200000)")
    ap.add_argument("--days", type=int, default=30, help="days timed per repeat (default 30)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per size (default 3)")
    ap.add_argument("--warmup", type=int, default=30, help="full-model days before timing (default 30)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    given = sys.argv[1:] if argv is None else argv
    cmd = "python " + " ".join(shlex.quote(a) for a in [f"benchmarks/{Path(__file__).name}", *given])
    load0 = os.getloadavg()
    machine = {
        "nproc": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
        "mesa": _version("mesa"), "platform": platform.platform(),
    }
    print(f"# {cmd}")
    print(f"# nproc {machine['nproc']}, Python {machine['python']}, numpy {machine['numpy']}, "
          f"Mesa {machine['mesa']}, load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    results = []
    for n in args.people:
        r = bench_size(n, args.days, args.repeats, args.warmup, args.seed)
        results.append(r)
        m = r["median"]
        naive_each = ", ".join(f"{x['naive_s']:.2f}" for x in r["repeat_rows"])
        vec_each = ", ".join(f"{x['vec_s'] * 1e3:.1f}" for x in r["repeat_rows"])
        print(f"# {n:,} people: {r['residents']:,} residents, {r['cells']:,} cells; per repeat "
              f"naive {naive_each} s, vectorised {vec_each} ms; incidents naive "
              f"{m['naive_incidents']:.0f} vs vectorised {m['vec_incidents']:.0f}; mean safety at end "
              f"{m['naive_mean_safety_end']:.4f} vs {m['vec_mean_safety_end']:.4f}", flush=True)
    load1 = os.getloadavg()
    print()
    hdr = ("| people | days x repeats | naive median s | vectorised median s | naive resident-days/s "
           "| vectorised resident-days/s | ratio (wall) | ratio (CPU) | min ratio over repeats |")
    print(hdr)
    print("|" + "---:|" * 9)
    for r in results:
        m = r["median"]
        print(f"| {r['people']:,} | {r['days']} x {r['repeats']} | {m['naive_s']:.2f} | {m['vec_s']:.4f} "
              f"| {r['naive_resident_days_per_s']:,.0f} | {r['vec_resident_days_per_s']:,.0f} "
              f"| {r['ratio_wall']:.0f} | {r['ratio_cpu']:.0f} | {r['ratio_min_over_repeats']:.0f} |")
    ok = all(r["ratio_wall"] >= 20 for r in results)
    print(f"\ntarget: ratio >= 20 at every size: {'met' if ok else 'NOT met'}; load average at end "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"reproduce: {cmd}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": cmd, "machine": machine, "load_start": load0,
                                         "load_end": load1, "results": results}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
