"""``python -m procexec``: the command line."""

from procexec.cli import main

raise SystemExit(main())
