#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, lint, then pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check offbeat flows tests bench training
exec .venv/bin/python -m pytest "$@"
