"""Allow ``python -m chatd``."""

from chatd.cli import main

raise SystemExit(main())
