"""`python -m bench.corpus.synthetic`: the command line of the generator (see the package docstring)."""

from bench.corpus.synthetic.cli import main

main()
