#!/usr/bin/env bash
# Create .venv and install metarl with its test tools. Idempotent; safe to re-run.
# With --metaworld: the same in .venv-metaworld, plus the Meta-World extra (it pins
# MuJoCo 3.3.0, older than the default install's, so it gets its own environment).
# A torch already installed in .venv is kept (never replaced): to get PyTorch's CPU-only
# build, create .venv and install it first, e.g.
#   python3 -m venv .venv && .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
# Otherwise torch==2.13.0 (the version this project is tested with) comes from your package
# index: on Linux, PyPI serves the CUDA build (several GB; it runs on CPU too).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
EXTRAS=dev
case "${1:-}" in
  "") ;;
  --metaworld) VENV=.venv-metaworld; EXTRAS=dev,metaworld ;;
  *) echo "usage: bash scripts/setup.sh [--metaworld]" >&2; exit 2 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if installed=$("$VENV/bin/python" -c "import torch; print(torch.__version__)" 2>/dev/null); then
  if ! "$VENV/bin/python" - <<'PY'
import sys
import torch
major, minor = (int(part) for part in torch.__version__.split(".")[:2])
sys.exit(0 if (major, minor) >= (2, 4) else 1)
PY
  then
    echo "error: $VENV has torch $installed; metarl needs torch >= 2.4. Upgrade it yourself" \
      "(setup never replaces an installed torch)." >&2
    exit 1
  fi
  echo "keeping the torch $installed already in $VENV"
else
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
echo "metarl installed in $VENV (activate with: . $VENV/bin/activate)"
