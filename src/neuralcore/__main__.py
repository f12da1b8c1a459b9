"""``python -m neuralcore`` runs the command line."""

from neuralcore.cli import main

raise SystemExit(main())
