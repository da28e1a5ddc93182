#!/usr/bin/env bash
# The engine's robustness checks, as CI runs them inside the test suite: the C++ under
# AddressSanitizer + UBSan (tests/test_engine_sanitizers.py; build cached in
# .cache/ternlab/sanitize/, driver at .cache/ternlab/sanitize/bin/sanitize_driver) and the
# loader fuzzers (tests/test_engine_fuzz.py).
#
#   bash scripts/sanitize.sh                             # as in CI
#   TERNLAB_FUZZ_SECONDS=600 bash scripts/sanitize.sh -k fuzz   # a longer fuzzing session
#
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q tests/test_engine_sanitizers.py tests/test_engine_fuzz.py "$@"
