"""The interactive explorer (Mesa SolaraViz): ``govsim explore``.

The top layer beside the CLI: it may use the model core and the analysis layer. Modules, from
the bottom up:

* :mod:`~sim.explorer.state`: the controls' settings and levers, the model behind the page
  (one run, or two in lockstep in compare mode), the per-session state.
* :mod:`~sim.explorer.mapdata`: the map's layers as tables (cells, grids, incidents, staff).
* :mod:`~sim.explorer.series`: daily series, headline outcomes, the difference B - A.
* :mod:`~sim.explorer.charts`: the map and the daily charts as Altair / Vega-Lite specs.
* :mod:`~sim.explorer.components`: the Solara components that lay those out.
* :mod:`~sim.explorer.patches`: the explorer's adjustments to Mesa's and Solara's internals,
  applied only when the server starts or the page renders, and only on Mesa 3.5.x.
* :mod:`~sim.explorer.app`: the page and :func:`~sim.explorer.app.serve`, the web server.
* :mod:`~sim.explorer.assets`: the page's browser files, kept on this machine.

Importing any of them changes nothing in Mesa.
"""
