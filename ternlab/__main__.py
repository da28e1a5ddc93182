"""``python -m ternlab`` is the ``ternlab`` command."""

from ternlab.cli import main

raise SystemExit(main())
