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
    # Built on its own so that the flags below reach llama.cpp only. On x86-64 its AMX
    # code is left out: GCC 12 drops the stores that fill its tile configuration, so on
    # a CPU with AMX every Q4_0/Q8_0 product died of SIGILL (an empty config, then
    # tilezero). GCC keeps explicit -mno-* flags over -march=native. The multimodal
    # (llava) part is not needed either.
    no_amx=""
    if [ "$(uname -m)" = x86_64 ]; then no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"; fi
    spec=$(.venv/bin/python -c 'import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]
print(next(r for r in extras["interop"] if r.startswith("llama-cpp-python")))')
    CFLAGS="${CFLAGS:-} $no_amx" CXXFLAGS="${CXXFLAGS:-} $no_amx" \
        CMAKE_ARGS=${CMAKE_ARGS:--DLLAVA_BUILD=OFF} .venv/bin/python -m pip install --quiet "$spec"
fi
echo "[setup] installing ternlab (editable) with extras [$EXTRAS]"
.venv/bin/python -m pip install --quiet -e ".[$EXTRAS]"
.venv/bin/ternlab version
echo "[setup] done: activate with 'source .venv/bin/activate'"
