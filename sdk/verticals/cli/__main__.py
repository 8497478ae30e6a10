"""`python -m verticals.cli` runs the command line, as `python -m verticals` does."""

import sys

from .app import main

sys.exit(main())
