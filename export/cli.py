"""``ternlab export`` and ``ternlab import``: register with :func:`add_export_commands`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ternlab.export.errors import ExportError

TYPES = ("i2_s", "tq1_0", "tq2_0", "f16", "q8_0")

EXPORT_HELP = """\
Export a ternlab checkpoint to GGUF or to a Hugging Face packed checkpoint.

GGUF types (--type):
  tq2_0  llama.cpp ternary, 2.06 bits/weight (SiLU models -> llama.cpp 'bitnet')
  tq1_0  llama.cpp ternary, 1.69 bits/weight
  i2_s   bitnet.cpp ternary, 2 bits/weight + one float32 scale per tensor
  f16    full-precision baseline (quant=none checkpoints)
  q8_0   full-precision baseline, 8.5 bits/weight
The architecture follows the FFN activation: silu -> 'bitnet' (llama.cpp,
bitnet.cpp), relu2 -> 'bitnet-b1.58' (bitnet.cpp). See docs/export.md.
"""


def _cmd_export(args: argparse.Namespace) -> int:
    progress = not args.quiet and sys.stderr.isatty()
    if args.format == "hf-packed":
        from ternlab.export.hf_packed import export_hf_packed

        path = export_hf_packed(
            args.checkpoint, args.output, progress=progress, linear_class=args.linear_class
        )
        print(f"wrote {path} (hf-packed, linear_class {args.linear_class})")
        return 0
    if args.type is None:
        raise ExportError("--format gguf needs --type (one of " + ", ".join(TYPES) + ")")
    from ternlab.export.gguf_export import export_gguf

    res = export_gguf(
        args.checkpoint,
        args.output,
        args.type,
        embed_type=args.embed_type,
        verify=args.verify,
        progress=progress,
    )
    checked = "verified" if args.verify else "not verified"
    print(f"wrote {res.path} ({res.arch}, {res.qtype}, {res.nbytes:,} bytes, {checked})")
    return 0


def import_source(source: str) -> Path:
    """The GGUF file or hf-packed folder ``source`` names (a path or a Hub id, downloaded)."""
    from ternlab.hub import HubError, resolve

    try:
        src = resolve(source, "ternlab import")
    except HubError as e:
        raise ExportError(str(e)) from e
    if src.is_dir() and not (src / "config.json").is_file():
        ggufs = sorted(src.glob("*.gguf"))
        if len(ggufs) != 1:
            raise ExportError(
                f"{src}: no config.json (hf-packed) and {len(ggufs)} .gguf files; give one "
                "file: " + (", ".join(g.name for g in ggufs) or "none found")
            )
        return ggufs[0]
    return src


def _cmd_import(args: argparse.Namespace) -> int:
    src = import_source(args.source)
    progress = not args.quiet and sys.stderr.isatty()
    if src.is_dir():
        from ternlab.export.ckpt_writer import write_checkpoint
        from ternlab.export.families import read_folder

        imported = read_folder(src)  # hf-packed or a 1bitLLM latent folder
        write_checkpoint(args.output, imported)
    else:
        from ternlab.export.gguf_import import import_gguf

        imported = import_gguf(src, args.output, progress=progress)
    for note in imported.notes:
        print(f"note: {note}")
    for note in imported.scale_changes:
        print(f"note: scale not reachable exactly as a float32 mean, nearest used: {note}")
    print(f"wrote {args.output} (trainable ternlab checkpoint)")
    return 0


def _guard(func):
    """Turn an :class:`ExportError` into a one-line message and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ExportError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return run


def add_export_commands(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` and ``import`` sub-commands to the ``ternlab`` parser."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint to GGUF (llama.cpp, bitnet.cpp) or an HF packed folder",
        description=EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint folder (config.json, model.safetensors, ...)")
    p.add_argument("-o", "--output", required=True, help="output .gguf file or folder")
    p.add_argument("--format", choices=("gguf", "hf-packed"), default="gguf")
    p.add_argument("--type", choices=TYPES, help="GGUF tensor type of the linear weights")
    p.add_argument(
        "--embed-type",
        choices=("f16", "q8_0", "q6_k", "q4_0"),
        default="f16",
        help="type of token_embd/output (default f16; q8_0, q6_k and q4_0 shrink the head "
        "that decode reads for every token; ternlab's engine runs a q4_0 head when "
        "hidden_size is a multiple of 64)",
    )
    p.add_argument(
        "--linear-class",
        choices=("autobitlinear", "bitlinear"),
        default="autobitlinear",
        help="hf-packed: transformers layer class; autobitlinear (as microsoft/bitnet-b1.58-2B-4T, "
        "weight_scale multiplies) or bitlinear (weight_scale divides)",
    )
    p.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read the file back and check codes, scales and metadata (default on)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_guard(_cmd_export))

    p = sub.add_parser(
        "import",
        help="import a GGUF file or an HF packed folder as a trainable checkpoint",
        description="Read a GGUF (i2_s, tq1_0, tq2_0, f16, q8_0) or an hf-packed folder "
        "into a ternlab checkpoint whose weights quantize to the same codes and scales.",
    )
    p.add_argument(
        "source",
        help="a .gguf file, an hf-packed or 1bitLLM folder, or a Hub id (owner/name, downloaded "
        "and cached)",
    )
    p.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_guard(_cmd_import))
