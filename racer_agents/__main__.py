"""``python -m racer_agents`` runs the ``racer`` command line."""

import sys

from racer_agents.cli import main

sys.exit(main())
