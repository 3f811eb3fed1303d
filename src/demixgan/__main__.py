"""``python -m demixgan`` runs the command line interface."""

from demixgan.cli.main import main

raise SystemExit(main())
