"""A tiny calibration problem with known true parameters, for the calibration tests, plots,
report and notebook: a 20,000-person district (about 0.5 s a run), three parameters of which
one is inert (the drone channel is off, so its detection probability moves nothing), and two
targets made by running the model at the true values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TINY_SET = {"city.width": 20, "city.height": 20, "city.population": 20_000, "grids.count": 36,
            "admin.communities": 8, "volunteers.community": 4000,
            "volunteers.volunteer_police": 28, "volunteers.riders": 43, "police.officers": 20}
TRUTH = {"survey_threshold": 0.9, "dispute_success": 0.75, "drone_detect": 0.5}
PARAMETERS = {
    "survey_threshold": {"keys": ["safety.survey_safe_threshold"], "low": 0.7, "high": 0.98},
    "dispute_success": {"keys": ["incidents.dispute.success_prob"], "low": 0.6, "high": 0.95},
    "drone_detect": {"keys": ["channels.drone.detect_prob"], "low": 0.1, "high": 0.9},
}
DAYS, WARMUP = 120, 30
#: Seed of the "observations" (not the calibration's seed: the data are another realisation).
TRUTH_SEED = 99
TRUTH_REPS = 4
#: Observation errors: about the run-to-run sd of each target at the truth (0.009 and 0.034
#: over 4 replications), so the data carry one realisation's noise, as a city's figures do.
SD = {"survey_share_safe": 0.01, "mediation_success_rate": 0.03}


def observed(truth: dict[str, float] = TRUTH) -> dict[str, float]:
    """The targets' values: the model at ``truth``, mean over TRUTH_REPS replications."""
    from sim.model import GovernanceModel
    from sim.scenario import load_scenario

    keys = {n: PARAMETERS[n]["keys"][0] for n in truth}
    sc = load_scenario("default", {**TINY_SET, **{keys[n]: v for n, v in truth.items()}})
    vals: dict[str, list[float]] = {k: [] for k in SD}
    for r in range(TRUTH_REPS):
        m = GovernanceModel(sc, rng=np.random.SeedSequence(TRUTH_SEED, spawn_key=(r,)))
        m.run(DAYS)
        s = m.summary(WARMUP)
        for k, values in vals.items():
            values.append(float(s[k]))
    return {k: float(np.mean(v)) for k, v in vals.items()}


def tiny_raw(obs: dict[str, float], *, particles: int = 16, generations: int = 2,
             points: int = 12) -> dict[str, Any]:
    """The calibration file (as a dict) of the tiny problem."""
    return {
        "name": "tiny", "seed": 7, "days": DAYS, "warmup_days": WARMUP, "replications": 1,
        "scenarios": {"district": {"scenario": "default", "set": dict(TINY_SET)}},
        "parameters": {k: dict(v) for k, v in PARAMETERS.items()},
        "targets": [
            {"name": "survey", "scenario": "district", "outcome": "survey_share_safe",
             "value": obs["survey_share_safe"], "sd": SD["survey_share_safe"],
             "source": "synthetic: the model at the true parameters"},
            {"name": "mediation", "scenario": "district", "outcome": "mediation_success_rate",
             "value": obs["mediation_success_rate"], "sd": SD["mediation_success_rate"],
             "source": "synthetic: the model at the true parameters"},
        ],
        "method": {"screening": {"trajectories": 3},
                   "history_matching": {"waves": 2, "points": points, "candidates": 5000},
                   "abc": {"generations": generations, "particles": particles},
                   "predict": {"max_members": 20}},
    }


def run_tiny(out: Path, workers: int = 1, **kw: Any) -> Path:
    """Run the tiny calibration into ``out`` (about 60 model runs)."""
    from sim.calibration import build_calibration, run_calibration

    cal = build_calibration(tiny_raw(observed(), **kw), "tiny", base_dir=Path.cwd())
    return run_calibration(cal, out=out, workers=workers)
