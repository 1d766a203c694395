#!/usr/bin/env bash
# Set-up, then analyze a demo mix generated on the fly (embedded defaults: local artifact store,
# Prefect's local API, no Redis). Extra arguments go to `offbeat demo` (e.g. --minutes 10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/offbeat demo "$@"
