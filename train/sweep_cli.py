"""The ``ternlab sweep`` sub-command: reports across the jobs of ``ternlab train -m ...``."""

from __future__ import annotations

import argparse


def _report(args: argparse.Namespace) -> int:
    from ternlab.train.sweep import collect, markdown, write_report

    try:
        files = write_report(args.dir, args.output)
    except FileNotFoundError as e:
        print(f"error: {e}")
        return 1
    print(markdown(collect(args.dir)), end="")
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def add_sweep_command(sub: argparse._SubParsersAction) -> None:
    """Register ``ternlab sweep report DIR``."""
    p = sub.add_parser(
        "sweep", help="tables and plots across the jobs of a `ternlab train -m` sweep"
    )
    ss = p.add_subparsers(title="sweep commands", metavar="COMMAND", required=True)
    r = ss.add_parser(
        "report",
        help="one table (markdown + JSON) and plot of every job: bits/byte, exact match, tokens/s",
    )
    r.add_argument("dir", help="the sweep folder (hydra.sweep.dir, default runs/sweeps/<date>)")
    r.add_argument("-o", "--output", help="where to write sweep_report.* (default: DIR)")
    r.set_defaults(func=_report)
