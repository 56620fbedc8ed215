"""``python -m mlbackup``: the same as the ``mlbackup`` command."""

from .cli import main

raise SystemExit(main())
