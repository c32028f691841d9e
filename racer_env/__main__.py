"""``python -m racer_env`` runs the ``racer`` command line."""

import sys

from racer_env.cli import main

sys.exit(main())
