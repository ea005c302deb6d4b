#!/usr/bin/env bash
# Create .venv and install metarl with its test tools. Idempotent; safe to re-run.
# torch is pinned to the CPU build (no GPU is needed; the CUDA wheels are several GB).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "metarl installed in .venv (activate with: . .venv/bin/activate)"
