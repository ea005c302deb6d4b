#!/usr/bin/env bash
# Create .venv and install metarl with its test tools. Idempotent; safe to re-run.
# A torch already installed in .venv is kept (never replaced): to get PyTorch's CPU-only
# build, create .venv and install it first, e.g.
#   python3 -m venv .venv && .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
# Otherwise torch==2.13.0 (the version this project is tested with) comes from your package
# index: on Linux, PyPI serves the CUDA build (several GB; it runs on CPU too).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if installed=$(.venv/bin/python -c "import torch; print(torch.__version__)" 2>/dev/null); then
  if ! .venv/bin/python - <<'PY'
import sys
import torch
major, minor = (int(part) for part in torch.__version__.split(".")[:2])
sys.exit(0 if (major, minor) >= (2, 4) else 1)
PY
  then
    echo "error: .venv has torch $installed; metarl needs torch >= 2.4. Upgrade it yourself" \
      "(setup never replaces an installed torch)." >&2
    exit 1
  fi
  echo "keeping the torch $installed already in .venv"
else
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "metarl installed in .venv (activate with: . .venv/bin/activate)"
