#!/usr/bin/env bash
# Create .venv and install ternlab with its dev extras.
#
# torch is installed first, pinned to the CPU wheel 2.13.0: pyproject.toml only
# keeps a range, and an unpinned torch makes pip fetch a multi-GB CUDA build.
# Override with TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0" or a CUDA index URL).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "[setup] installing $TORCH_SPEC"
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
echo "[setup] installing ternlab (editable) with dev extras"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/ternlab version
echo "[setup] done: activate with 'source .venv/bin/activate'"
