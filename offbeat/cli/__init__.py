"""The `offbeat` command line, on top of everything else (nothing in the package imports it).

`app` is the entry point; each module registers its commands on it: `analysis` (analyze, rerun, demo, config,
schema), `service` (listen, serve, Redis helpers), `cache` (the artifact store), `library` (the track library),
`models` (Spleeter checkpoints).
"""

from offbeat.cli import analysis, cache, library, models, service
from offbeat.cli.app import app

__all__ = ["analysis", "app", "cache", "library", "models", "service"]

if __name__ == "__main__":
    app()
