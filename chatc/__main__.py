"""``python -m chatc`` runs the same entry point as the ``chatc`` console script."""

from chatc.cli import main

raise SystemExit(main())
