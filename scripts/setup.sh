#!/usr/bin/env bash
# Everything a fresh machine with Python 3.11 needs: uv, the locked environment, the Spleeter 2stems
# weights and their ONNX export. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v uv >/dev/null 2>&1; then
  UV=uv
else
  if [ ! -x .tools/bin/uv ]; then
    echo "installing uv into .tools/ ..." >&2
    PY=$(command -v python3.11 || command -v python3)
    "$PY" -m venv .tools
    .tools/bin/python -m pip install --quiet uv
  fi
  UV=.tools/bin/uv
fi
export UV

"$UV" sync --locked --python 3.11 --quiet --compile-bytecode
if ! .venv/bin/offbeat models check 2stems >/dev/null 2>&1; then
  .venv/bin/offbeat models pull 2stems  # also exports the U-Nets to ONNX (the default separation backend)
fi
.venv/bin/offbeat models export 2stems >/dev/null  # an install from before the ONNX backend; no-op when present
