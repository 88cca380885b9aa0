"""``python -m sim`` is the same as the ``govsim`` command."""

from sim.cli import main

raise SystemExit(main())
