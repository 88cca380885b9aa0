"""The interactive explorer (Mesa SolaraViz): ``govsim explore``.

The top layer beside the CLI: it may use the model core and the analysis layer.
"""
