"""Experiment batches: specs and designs, the runner and its executors, and the result store.

Depends on the model core (:mod:`sim`), never on :mod:`sim.analysis` or :mod:`sim.explorer`.
"""
