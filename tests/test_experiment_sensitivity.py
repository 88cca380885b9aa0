"""Sensitivity analysis end to end through the model: an experiment file, the runner, and
``govsim experiment analyze``. A factor known to have no effect gets indices near zero; the
dominant factor of a toy configuration gets the largest.

Toy configuration: the outcome is ``incidents_occurred`` on a tiny city. The hazard base rate
moves expected volume by 60 per 1000 people per year, the infrastructure rate by 10; the
number of drone cells has no effect at all because drones are switched off. Common random
numbers make the no-effect factor's elementary effects and Sobol' differences exactly zero.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim.analysis.sensitivity import analyze
from sim.batch import run_experiment

TINY = ("{city.width: 10, city.height: 10, city.population: 3000, admin.townships: 1,"
        " admin.communities: 2, grids.count: 5, police.officers: 3, volunteers.community: 600,"
        " volunteers.volunteer_police: 4, volunteers.riders: 6}")
FACTORS = """factors:
  incidents.hazard.base_rate: {low: 30, high: 90}
  incidents.infrastructure.base_rate: {low: 295, high: 305}
  channels.drone.cells_per_day: {low: 0, high: 50}
"""


def spec(kind: str) -> str:
    design = ("{kind: sobol, base_samples: 16, second_order: false}" if kind == "sobol"
              else "{kind: morris, trajectories: 8, levels: 4}")
    return (f"name: toy_{kind}\nscenarios:\n  - {{label: toy, scenario: default.yaml, set: {TINY}}}\n"
            f"{FACTORS}design: {design}\nreplications: 1\nseed: 5\ndays: 60\nwarmup_days: 0\n"
            "outputs: {timeseries: false}\noutcomes: [incidents_occurred]\n")


@pytest.mark.slow
def test_sobol_through_the_model(tmp_path):
    path = tmp_path / "sobol.yaml"
    path.write_text(spec("sobol"))
    out = run_experiment(path, out=tmp_path / "res", workers=2)
    df = analyze(out)["sobol"].set_index("factor")
    assert df["ST"].idxmax() == "incidents.hazard.base_rate"
    assert df["S1"].idxmax() == "incidents.hazard.base_rate"
    drone = df.loc["channels.drone.cells_per_day"]
    # exactly zero differences -> exactly zero indices (up to float rounding)
    assert abs(drone["ST"]) < 1e-9 and abs(drone["S1"]) < 1e-9
    # the CLI prints the same analysis
    proc = subprocess.run([sys.executable, "-m", "sim", "experiment", "analyze", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "incidents.hazard.base_rate" in proc.stdout
    assert (out / "analysis" / "sobol.csv").is_file()


@pytest.mark.slow
def test_morris_through_the_model(tmp_path):
    path = tmp_path / "morris.yaml"
    path.write_text(spec("morris"))
    out = run_experiment(path, out=tmp_path / "res", workers=2)
    df = analyze(out)["morris"].set_index("factor")
    assert df["mu_star"].idxmax() == "incidents.hazard.base_rate"
    assert df.loc["channels.drone.cells_per_day", "mu_star"] == pytest.approx(0.0, abs=1e-9)
    assert df.loc["incidents.hazard.base_rate", "mu_star"] > 5 * df.loc["incidents.infrastructure.base_rate", "mu_star"]
