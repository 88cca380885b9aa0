"""Reading a calibration's results directory.

``govsim calibrate`` (:func:`sim.calibration.run_calibration`) writes:

=============================  ===========================================================
``metadata.json``              kind ``calibration``: spec, seed, parameters, targets, stages
                               (with their runs), warnings, versions, git commit, status
``calibration.yaml``           the calibration file as given
``screening.parquet``          Morris per (target, parameter): ``mu_star``,
                               ``mu_star_per_error`` (over the range, in target errors),
                               ``active``
``waves.parquet``              per wave: points, cut-off, non-implausible share of the prior,
                               smallest implausibility
``emulators.parquet``          per wave and target: cross-validated R^2, share of held-out
                               errors within 2 sd, RMSE, length scales, noise
``candidates.parquet``         per wave, a sample of prior points (active parameters, on the
                               unit scale) with their implausibility
``abc.parquet``                per ABC generation: proposed, accepted, tolerance, ESS
``ensemble.parquet``           the posterior ensemble: member, weight, distance, one column
                               per parameter (its value)
``predictions.parquet``        per member, replication and target: the model's value
``fit.parquet`` / ``fit.csv``  per target: role, observed, sd, the ensemble's mean and 90%
                               interval, z, within tolerance
``identifiability.parquet``    per parameter: prior, posterior 5/50/95%, width ratio, identified
``scenarios/calibrated/``      each scenario at the best-fitting member (complete YAML)
``stages/NN-<stage>/``         each stage's batch of model runs (an experiment folder)
=============================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.calibration.spec import Calibration, CalibrationError, build_calibration
from sim.calibration.targets import systematic_resample
from sim.files import InputError, read_metadata, results_kind

TABLES = ("screening", "waves", "emulators", "candidates", "abc", "ensemble", "predictions", "fit",
          "identifiability")


@dataclass
class CalibrationResults:
    """A calibration's results: ``metadata`` and one DataFrame per table (empty if absent)."""

    path: Path
    metadata: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in TABLES:
            return tables.get(name, pd.DataFrame())
        raise AttributeError(name)

    @property
    def parameters(self) -> list[str]:
        return [p["name"] for p in self.metadata.get("parameters", [])]

    @property
    def complete(self) -> bool:
        return self.metadata.get("status") == "complete"

    def calibration(self) -> Calibration:
        """The calibration as it was run (its file, re-validated against today's scenarios)."""
        spec_file = Path(self.metadata.get("spec_file", ""))
        return build_calibration(self.metadata["spec"], str(self.path / "calibration.yaml"),
                                 base_dir=spec_file.parent if spec_file.parent.is_dir() else self.path)

    def members(self, max_members: int | None = None, seed: int = 0) -> pd.DataFrame:
        """Ensemble members (parameter columns and ``weight``). With ``max_members`` and a
        larger ensemble, a systematic resample of that size whose weights are the draw counts."""
        ens = self.ensemble
        if max_members is None or len(ens) <= max_members:
            return ens.reset_index(drop=True)
        picks = systematic_resample(ens["weight"].to_numpy(dtype=float), max_members,
                                    np.random.default_rng(seed))
        idx, counts = np.unique(picks, return_counts=True)
        out = ens.iloc[idx].reset_index(drop=True).copy()
        out["weight"] = counts / counts.sum()
        return out


def load(path: str | Path) -> CalibrationResults:
    """Read a calibration results directory.

    Raises:
        CalibrationError: not a calibration directory, or it has no ensemble yet (the
            calibration has not finished: resume it).
    """
    path = Path(path)
    try:
        meta = read_metadata(path)
        kind = results_kind(path, meta)
    except InputError as exc:
        raise CalibrationError(str(exc)) from None
    if kind != "calibration":
        raise CalibrationError(f"{path} holds a {kind} results folder, not a calibration (made by"
                               " `govsim calibrate`)")
    tables = {}
    for name in TABLES:
        f = path / f"{name}.parquet"
        if f.is_file():
            tables[name] = pd.read_parquet(f)
    if "ensemble" not in tables:
        raise CalibrationError(f"{path} has no ensemble yet (status {meta.get('status')!r}): finish"
                               f" it with `govsim calibrate {meta.get('spec_file')} --out {path}"
                               " --resume`")
    return CalibrationResults(path, meta, tables)
