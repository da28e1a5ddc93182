"""The ``ternlab`` command line: one entry point, one sub-command per job.

Sub-commands register themselves in ``COMMANDS``; later parts of the
project (train, export, import, run, chat, bench, serve, eval) add theirs.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence

from ternlab import __version__
from ternlab.evals.cli import add_demo_command, add_eval_command
from ternlab.export.cli import add_export_commands
from ternlab.inference.cli import add_inference_commands
from ternlab.train.cli import add_train_command
from ternlab.train.sweep_cli import add_sweep_command


def _cmd_version(args: argparse.Namespace) -> int:
    from ternlab.bitlinear.spec import SPEC_VERSION

    print(f"ternlab {__version__}")
    print(f"quantization spec {SPEC_VERSION}")
    if args.verbose:
        import torch

        print(f"python {platform.python_version()} ({sys.executable})")
        print(f"torch {torch.__version__}")
    return 0


def _add_version(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="print the ternlab and quantization-spec versions")
    p.add_argument("-v", "--verbose", action="store_true", help="also print python and torch")
    p.set_defaults(func=_cmd_version)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_version,
    add_train_command,
    add_sweep_command,
    add_export_commands,
    add_inference_commands,
    add_eval_command,
    add_demo_command,
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="ternlab",
        description=(
            "Train 1.58-bit (ternary) language models, export them to GGUF, "
            "run them on a CPU and compare them with their FP16 twins."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ternlab {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ternlab`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)
