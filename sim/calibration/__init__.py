"""Calibration to the reference city: targets and priors (:mod:`.spec`), GP emulators and
implausibility (:mod:`.emulator`), screening, history matching and ABC-SMC (:mod:`.engine`), the
results and comparisons under parameter uncertainty (:mod:`.posterior`). docs/calibration.md."""

from sim.calibration.engine import run_calibration
from sim.calibration.spec import (
    Calibration,
    CalibrationError,
    build_calibration,
    find_calibration,
    load_calibration,
)

__all__ = ["Calibration", "CalibrationError", "build_calibration", "find_calibration",
           "load_calibration", "run_calibration"]
