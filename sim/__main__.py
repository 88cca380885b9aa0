"""``python -m sim`` is the same as the ``govsim`` command."""

from .cli import main

raise SystemExit(main())
