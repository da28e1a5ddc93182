"""lm-eval's own command line with ternlab's ``ternlab`` model registered.

``python -m ternlab.evals.lm_eval_cli ARGS`` is exactly ``lm_eval ARGS`` (every option,
every task, ``--model hf`` too), except that ``--model ternlab`` is known. lm-eval
0.4.13 discovers models only through its registry, filled when ``lm_eval.models`` and
modules that call ``register_model`` are imported; it reads no plug-in entry points,
so a wrapper that imports :mod:`ternlab.evals.lm_eval_model` first is the supported way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run lm-eval's CLI on ``argv`` (default: ``sys.argv[1:]``) with ``ternlab`` registered."""
    from lm_eval.__main__ import cli_evaluate

    import ternlab.evals.lm_eval_model  # noqa: F401  registers --model ternlab

    if argv is not None:
        sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as e:  # argparse and lm-eval exit this way
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
