"""GGUF tensor-data size and bits per weight of each export type for a model preset (default 2b).

Nothing is materialised: the checkpoint's tensors are ``meta`` tensors of the
preset's shapes, run through the exporter's own choices (``export_names``,
``tensor_type``) and byte counts (``codec.encoded_nbytes``, plus GGUF's 32-byte
alignment). Metadata (mostly the tokenizer: a few MB for a 128k vocabulary) is
not included. Usage: ``python benchmarks/export_sizes.py [--preset 2b]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from ternlab.export import codec
from ternlab.export.arch import Plan
from ternlab.export.gguf_export import export_names, tensor_type
from ternlab.export.source import Checkpoint

ALIGN = 32
PRESETS = Path(__file__).resolve().parents[1] / "conf" / "model"


def preset_shapes(m: dict) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a BitNet model built from a ``conf/model`` preset."""
    h, ff, heads = m["hidden_size"], m["intermediate_size"], m["num_attention_heads"]
    kv = m["num_key_value_heads"] * (h // heads)
    shapes = {"model.embed_tokens.weight": (m["vocab_size"], h), "model.norm.weight": (h,)}
    if not m["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (m["vocab_size"], h)
    for i in range(m["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, h),
            p + "self_attn.attn_sub_norm.weight": (h,),
            p + "mlp.gate_proj.weight": (ff, h),
            p + "mlp.up_proj.weight": (ff, h),
            p + "mlp.down_proj.weight": (h, ff),
            p + "mlp.ffn_sub_norm.weight": (ff,),
        }
    return shapes


def sizes(m: dict, qtype: str, embed_type: str = "f16") -> tuple[int, int, int, int]:
    """(total bytes, linear-weight bytes, linear weights, all weights) of one export."""
    config = {**m, "tie_word_embeddings": m["tie_word_embeddings"]}
    if qtype in codec.TERNARY_TYPES:
        config["quantization_config"] = {"quant_method": "bitnet"}
    state = {n: torch.empty(s, device="meta") for n, s in preset_shapes(m).items()}
    ckpt = Checkpoint(Path("."), config, state)
    plan = Plan("bitnet", qtype, embed_type)
    total = lin_bytes = lin_n = all_n = 0
    for name in export_names(ckpt):
        shape = tuple(state[name].shape)
        nbytes = codec.encoded_nbytes(shape, tensor_type(ckpt, plan, name))
        total += -(-nbytes // ALIGN) * ALIGN
        all_n += state[name].numel()
        if name.endswith("_proj.weight"):
            lin_bytes += nbytes
            lin_n += state[name].numel()
    return total, lin_bytes, lin_n, all_n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="2b")
    args = ap.parse_args()
    m = yaml.safe_load((PRESETS / f"{args.preset}.yaml").read_text())
    print(
        "| type | embeddings | file (tensor data) | MiB | bits/weight, linear | bits/weight, all |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for qtype in ("i2_s", "tq1_0", "tq2_0", "f16", "q8_0"):
        ternary = qtype in codec.TERNARY_TYPES
        for emb in ("f16", "q8_0", "q6_k", "q4_0") if ternary else ("f16", "q8_0"):
            total, lb, ln, an = sizes(m, qtype, emb)
            print(
                f"| {qtype} | {emb} | {total:,} | {total / 2**20:,.1f} | "
                f"{8 * lb / ln:.4f} | {8 * total / an:.3f} |"
            )


if __name__ == "__main__":
    main()
