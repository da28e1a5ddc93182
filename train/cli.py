"""The ``ternlab train`` sub-command: hands its arguments to the Hydra application."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from ternlab.train.app import main  # heavy imports only when training

    return main(args.overrides)


def add_train_command(sub: argparse._SubParsersAction) -> None:
    """Register ``ternlab train``; ``ternlab train --help`` shows Hydra's groups and presets."""
    p = sub.add_parser(
        "train",
        help="train a ternary (or FP16 baseline) model from Hydra configs; --help for options",
        add_help=False,  # --help goes to Hydra, which lists config groups and presets
        # No option prefix: every argument (--help, --cfg job, -m, +key=v) is Hydra's.
        prefix_chars="\0",
    )
    p.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="Hydra overrides, e.g. model=tiny trainer.max_steps=100",
    )
    p.set_defaults(func=_run)
