"""`python -m bench.corpus.recorded`: the command line of the recorded corpus (see the package docstring)."""

from bench.corpus.recorded.cli import main

raise SystemExit(main())
