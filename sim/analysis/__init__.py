"""Analysis of results: comparisons, sensitivity indices, tables, plots and the HTML report.

Reads result directories written by :mod:`sim.batch`; never imports the explorer.
"""
