#!/usr/bin/env bash
# Create .venv and install ternlab with its dev extras.
#
#   bash scripts/setup.sh              # ternlab[dev]
#   bash scripts/setup.sh --interop    # also llama-cpp-python (compiles llama.cpp once:
#                                      # ~15 min on 2 cores; pip caches the wheel after that)
#
# torch is installed first, pinned to the CPU wheel 2.13.0: pyproject.toml only
# keeps a range, and an unpinned torch makes pip fetch a multi-GB CUDA build.
# Override with TORCH_SPEC (e.g. a CUDA build for a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=dev
case "${1:-}" in
    --interop) EXTRAS=dev,interop ;;
    "") ;;
    *) echo "usage: bash scripts/setup.sh [--interop]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "[setup] installing $TORCH_SPEC"
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
if [[ $EXTRAS == *interop* ]] && ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    echo "[setup] installing llama-cpp-python (first time: compiles llama.cpp, ~15 min on 2 cores)"
fi
echo "[setup] installing ternlab (editable) with extras [$EXTRAS]"
# The multimodal (llava) part of llama-cpp-python is not needed: skip compiling it.
CMAKE_ARGS=${CMAKE_ARGS:--DLLAVA_BUILD=OFF} .venv/bin/python -m pip install --quiet -e ".[$EXTRAS]"
.venv/bin/ternlab version
echo "[setup] done: activate with 'source .venv/bin/activate'"
