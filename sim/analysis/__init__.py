"""Analysis of results: comparisons, sensitivity indices, tables, plots and the HTML report.

Reads result directories written by :mod:`sim.batch` (and may import it and the model core);
never imports the explorer. Labels, units, number formats and default outcome lists come from
the outcome registry :mod:`sim.outcomes`; a directory's kind from :func:`sim.files.results_kind`.

=====================================  =====================================================
statistics                             :mod:`~sim.analysis.intervals` (t and Welch intervals,
                                       scipy), :mod:`~sim.analysis.compare` (summaries, paired
                                       comparison, Shapley attribution)
sensitivity analysis                   :mod:`~sim.analysis.sensitivity` (``analyze`` an
                                       experiment directory, terminal tables),
                                       :mod:`~sim.analysis.indices` (Sobol', Morris via SALib),
                                       :mod:`~sim.analysis.effects` (factorial effects, SRC)
figures                                :mod:`~sim.analysis.plots` (all figures, ``govsim plot``),
                                       :mod:`~sim.analysis.outcome_plots`,
                                       :mod:`~sim.analysis.maps`,
                                       :mod:`~sim.analysis.factor_plots`,
                                       :mod:`~sim.analysis.plot_base` (style, saving)
tables and report                      :mod:`~sim.analysis.tables` (terminal),
                                       :mod:`~sim.analysis.report` (``govsim report``, Jinja2
                                       templates in ``templates/``),
                                       :mod:`~sim.analysis.report_tables`
model documentation                    :mod:`~sim.analysis.docgen`
=====================================  =====================================================
"""
