"""`python -m bench.corpus.game`: the command line of the game-music corpus (see the package docstring)."""

from bench.corpus.game.cli import main

raise SystemExit(main())
