"""Experiment batches: specs and designs, the runner and its executors, and the result store.

Depends on the model core (:mod:`sim`), never on :mod:`sim.analysis` or :mod:`sim.explorer`.
Modules, from the bottom up:

* :mod:`sim.batch.results`: a single run's results folder, :func:`load` for any results
  folder, and what metadata records about the code (versions, git commit);
* :mod:`sim.batch.spec`: experiment files, factors, designs, and the plan of runs;
* :mod:`sim.batch.store`: a batch's results folder filled run by run, compacted, resumed;
* :mod:`sim.batch.runner`: one run in any process, the batch on any executor, its status.

Typical use::

    from sim.batch import load, load_experiment, run_experiment

    exp = load_experiment("grid_count_sweep")      # validates everything first
    res = load(run_experiment(exp, workers=2))     # Results: runs, timeseries, metadata
"""

from sim.batch.results import Results, load, write_run
from sim.batch.runner import experiment_status, run_experiment
from sim.batch.spec import Experiment, ExperimentError, build_experiment, load_experiment, plan_runs

__all__ = [
    "Experiment",
    "ExperimentError",
    "Results",
    "build_experiment",
    "experiment_status",
    "load",
    "load_experiment",
    "plan_runs",
    "run_experiment",
    "write_run",
]
