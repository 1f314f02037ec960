"""``python -m ruleengine``: the same CLI as the ``ruleengine`` command."""

from .cli import main

raise SystemExit(main())
