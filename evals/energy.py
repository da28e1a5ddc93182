"""Energy per token: measured from RAPL where readable, else the BitNet papers' estimate.

The estimate is the arithmetic-energy model of the BitNet papers: count the
additions and multiplications one token costs and multiply by a per-operation
energy. The per-operation energies are Table 2 of Wang et al. 2023, "BitNet:
Scaling 1-bit Transformers for Large Language Models" (arXiv:2310.11453), which
the BitNet b1.58 paper (Ma et al. 2024, "The Era of 1-bit LLMs: All Large
Language Models are in 1.58 Bits", arXiv:2402.17764, Sec. "Energy") reuses; both
follow Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, whose 45 nm figures the 45 nm column is, and scale it to 7 nm.

=========  ==========  =========  ==========  =========
pJ / op    ADD 45 nm   ADD 7 nm   MUL 45 nm   MUL 7 nm
=========  ==========  =========  ==========  =========
FP32       0.9         0.38       3.7         1.31
FP16       0.4         0.16       1.1         0.34
INT8       0.03        0.007      0.2         0.07
=========  ==========  =========  ==========  =========

Consistency check against the b1.58 paper's headline: an FP16 multiply-accumulate
costs 0.34 + 0.16 = 0.50 pJ at 7 nm and a ternary weight one INT8 add, 0.007 pJ:
0.50 / 0.007 = 71.4, the paper's "71.4 times arithmetic energy saving for matrix
multiplication on 7nm chips".

Counting (per token), as the papers do for matrix multiplications:

* every weight of a linear layer: FP16 model one FP16 MUL + one FP16 ADD; ternary
  model (W1.58A8) one INT8 ADD (the weight is -1, 0 or +1), plus one FP16 MUL per
  output to apply the weight and activation scales;
* the LM head (full precision in both models): one FP16 MUL + ADD per weight;
* attention scores and the weighted sum over ``context`` cached positions:
  ``2 * context * hidden`` FP16 MACs per layer, in both models.

Left out, in both models alike: norms, softmax, RoPE, activation quantization and
all memory traffic. On a CPU, memory traffic and the core's static power dominate,
which is why a RAPL measurement, where one is possible, is reported instead and
the estimate is labelled as one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

#: pJ per operation (see the module docstring for the source).
ENERGY_PJ: dict[str, dict[str, float]] = {
    "45nm": {
        "fp32_add": 0.9,
        "fp32_mul": 3.7,
        "fp16_add": 0.4,
        "fp16_mul": 1.1,
        "int8_add": 0.03,
        "int8_mul": 0.2,
    },
    "7nm": {
        "fp32_add": 0.38,
        "fp32_mul": 1.31,
        "fp16_add": 0.16,
        "fp16_mul": 0.34,
        "int8_add": 0.007,
        "int8_mul": 0.07,
    },
}
SOURCE = (
    "arithmetic-energy estimate (BitNet, Wang et al. 2023, Table 2; BitNet b1.58, Ma et al. "
    "2024; after Horowitz, ISSCC 2014): op counts x pJ/op, linear layers + LM head + attention "
    "dot products only, no memory traffic"
)


@dataclass(frozen=True)
class ModelShape:
    """The sizes the operation count needs."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    gated_ffn: bool = True  # BitNet's FFN has gate, up and down projections

    @property
    def linear_weights(self) -> int:
        """Weights of every quantizable linear layer (attention + FFN) of all layers."""
        d, f = self.hidden, self.intermediate
        d_kv = d // self.heads * self.kv_heads
        attn = 2 * d * d + 2 * d * d_kv  # q, o; k, v
        ffn = (3 if self.gated_ffn else 2) * d * f
        return self.layers * (attn + ffn)

    @property
    def linear_outputs(self) -> int:
        """Output elements of those layers per token (one scale multiply each, ternary)."""
        d, f = self.hidden, self.intermediate
        d_kv = d // self.heads * self.kv_heads
        return self.layers * (2 * d + 2 * d_kv + (2 if self.gated_ffn else 1) * f + d)


def shape_from_config(config: dict) -> ModelShape:
    """A :class:`ModelShape` from a transformers ``config.json`` dict."""
    heads = int(config["num_attention_heads"])
    return ModelShape(
        hidden=int(config["hidden_size"]),
        intermediate=int(config["intermediate_size"]),
        layers=int(config["num_hidden_layers"]),
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        vocab=int(config["vocab_size"]),
    )


def shape_from_gguf_metadata(meta: dict) -> ModelShape:
    """A :class:`ModelShape` from GGUF metadata (ternlab's config copy, else llama.cpp keys)."""
    if "ternlab.config_json" in meta:
        return shape_from_config(json.loads(meta["ternlab.config_json"]))
    arch = meta["general.architecture"]
    heads = int(meta[f"{arch}.attention.head_count"])
    tokens = meta.get("tokenizer.ggml.tokens")
    return ModelShape(
        hidden=int(meta[f"{arch}.embedding_length"]),
        intermediate=int(meta[f"{arch}.feed_forward_length"]),
        layers=int(meta[f"{arch}.block_count"]),
        heads=heads,
        kv_heads=int(meta.get(f"{arch}.attention.head_count_kv", heads)),
        vocab=int(meta.get(f"{arch}.vocab_size") or len(tokens)),
    )


@dataclass(frozen=True)
class OpCounts:
    """Arithmetic operations of one token."""

    int8_add: int
    fp16_add: int
    fp16_mul: int


def op_counts(shape: ModelShape, ternary: bool, context: int) -> OpCounts:
    """Operations of one token that attends to ``context`` positions (see module docstring)."""
    head = shape.hidden * shape.vocab
    attn = 2 * context * shape.hidden * shape.layers
    if ternary:
        return OpCounts(
            int8_add=shape.linear_weights,
            fp16_add=head + attn,
            fp16_mul=head + attn + shape.linear_outputs,
        )
    macs = shape.linear_weights + head + attn
    return OpCounts(int8_add=0, fp16_add=macs, fp16_mul=macs)


def arithmetic_energy_j(counts: OpCounts, node: str = "7nm") -> float:
    """Joules of ``counts`` at process ``node`` (``7nm`` or ``45nm``)."""
    if node not in ENERGY_PJ:
        raise ValueError(f"--energy-node {node!r}: choose one of {', '.join(ENERGY_PJ)}")
    e = ENERGY_PJ[node]
    pj = counts.int8_add * e["int8_add"] + counts.fp16_add * e["fp16_add"]
    pj += counts.fp16_mul * e["fp16_mul"]
    return pj * 1e-12


def estimate(shape: ModelShape, ternary: bool, context: int) -> dict:
    """The labelled estimate for the report: J/token at 7 nm and 45 nm, and the op counts."""
    counts = op_counts(shape, ternary, context)
    return {
        "method": "estimate",
        "source": SOURCE,
        "context": context,
        "ops_per_token": asdict(counts),
        "j_per_token_7nm": arithmetic_energy_j(counts, "7nm"),
        "j_per_token_45nm": arithmetic_energy_j(counts, "45nm"),
    }


def shape_of(path: str | Path) -> tuple[ModelShape, bool]:
    """The shape of a GGUF file or checkpoint, and whether its linear layers are ternary."""
    from ternlab.evals.backends import checkpoint_dir, is_gguf

    if is_gguf(path):
        from ternlab.export.i2s import TernaryGGUFReader

        fields = TernaryGGUFReader(str(path)).fields
        meta = {
            k: f.contents()
            for k, f in fields.items()
            if k.startswith(("general.", "ternlab."))
            or ".attention." in k
            or k.endswith(("_length", "_count", "vocab_size"))
        }
        ttype = str(meta.get("ternlab.tensor_type", ""))
        return shape_from_gguf_metadata(meta), ttype in ("i2_s", "tq1_0", "tq2_0")
    config = json.loads((checkpoint_dir(path) / "config.json").read_text())
    return shape_from_config(config), "quantization_config" in config
