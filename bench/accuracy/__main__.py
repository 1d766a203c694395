"""`python -m bench.accuracy`: the bench's command line (see the package docstring)."""

import sys

from bench.accuracy.cli import main

sys.exit(main())
