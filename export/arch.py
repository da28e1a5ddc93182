"""Which GGUF architecture a checkpoint becomes, and the refusals when no runtime computes it right.

* ``bitnet`` (llama.cpp ``LLM_ARCH_BITNET``; bitnet.cpp too): SiLU-gated FFN
  (1bitLLM style). llama.cpp's graph reuses ``token_embd`` as the output head,
  so the model must have tied embeddings.
* ``bitnet-b1.58`` (bitnet.cpp, the 2B4T architecture): ReLU² FFN; an untied
  head is written as ``output.weight``. llama.cpp does not know this
  architecture and refuses to load it (it never computes it wrongly).

Both graphs use attention and FFN sub-norms, NEOX RoPE, ``n_head * head_dim ==
hidden_size`` and no biases.
"""

from __future__ import annotations

from dataclasses import dataclass

from ternlab.export.codec import FLOAT_TYPES, TERNARY_TYPES
from ternlab.export.errors import ExportError
from ternlab.export.source import Checkpoint

ARCH_BY_ACT = {"silu": "bitnet", "relu2": "bitnet-b1.58"}
RUNTIME = {"bitnet": "llama.cpp / bitnet.cpp", "bitnet-b1.58": "bitnet.cpp"}


@dataclass(frozen=True)
class Plan:
    """The architecture name and the tensor types of one export."""

    arch: str
    qtype: str  # the type of the linear weights
    embed_type: str  # the type of token_embd / output


def plan_export(ckpt: Checkpoint, qtype: str, embed_type: str = "f16") -> Plan:
    """Check that ``ckpt`` can be exported as ``qtype`` and pick its architecture."""
    where = f"{ckpt.path}/config.json"
    if ckpt.config.get("model_type") != "bitnet":
        raise ExportError(
            f"{where}: model_type={ckpt.config.get('model_type')!r} is not supported; ternlab "
            "exports BitNet models (model_type 'bitnet') trained by ternlab"
        )
    _refuse_quant_variant(ckpt, where)
    if qtype in TERNARY_TYPES and not ckpt.ternary:
        raise ExportError(
            f"{where}: a full-precision (quant=none) checkpoint has no ternary weights; "
            "export it with --type f16 or --type q8_0"
        )
    if qtype in FLOAT_TYPES and ckpt.ternary:
        raise ExportError(
            f"{where}: a ternary checkpoint exports as --type tq2_0, tq1_0 or i2_s; "
            f"--type {qtype} is for the full-precision baseline"
        )
    if qtype not in TERNARY_TYPES and qtype not in ("f16", "q8_0"):
        raise ExportError(f"--type {qtype}: choose one of i2_s, tq1_0, tq2_0, f16, q8_0")
    if embed_type not in ("f16", "q8_0", "q6_k"):
        raise ExportError(f"--embed-type {embed_type}: choose f16, q8_0 or q6_k")
    arch = ARCH_BY_ACT.get(ckpt.hidden_act)
    if arch is None:
        raise ExportError(
            f"{where}: hidden_act={ckpt.hidden_act!r}: no GGUF runtime computes this FFN "
            "activation; llama.cpp's 'bitnet' needs silu, bitnet.cpp's 'bitnet-b1.58' relu2"
        )
    _check_shape(ckpt, where, arch)
    return Plan(arch, qtype, embed_type)


#: BitNet b1.58's value of each ablation key a checkpoint may record (train/quant_scheme.py).
_QUANT_DEFAULTS = {
    "quant.weight_scale": "tensor",
    "quant.weight_estimator": "absmean",
    "quant.act_bits": 8,
    "quant.hadamard_modules": [],
}


def _refuse_quant_variant(ckpt: Checkpoint, where: str) -> None:
    # Every runtime computes per-tensor absmean weights and 8-bit per-token activations;
    # a variant exported anyway would run with other numbers than it was trained with.
    variant = ckpt.config.get("ternlab_quant") or {}
    if not variant:
        return
    keys = ", ".join(f"{k}={v!r}" for k, v in variant.items())
    fix = ", ".join(f"{k}={_QUANT_DEFAULTS[k]!r}" for k in variant if k in _QUANT_DEFAULTS)
    raise ExportError(
        f"{where}: trained with the quantization variant {keys} (config.json ternlab_quant); "
        "no GGUF runtime (ternlab's engine, llama.cpp, bitnet.cpp) computes it. Train with "
        f"the default scheme ({fix}, i.e. quant=ternary) to export, or evaluate this "
        "checkpoint in PyTorch"
    )


def _check_shape(ckpt: Checkpoint, where: str, arch: str) -> None:
    c = ckpt.config
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    if head_dim * c["num_attention_heads"] != c["hidden_size"]:
        raise ExportError(
            f"{where}: num_attention_heads * head_dim != hidden_size; the bitnet graphs "
            "need square q/o projections"
        )
    if arch == "bitnet" and not ckpt.tied:
        raise ExportError(
            f"{where}: tie_word_embeddings=false, but llama.cpp's 'bitnet' graph (SiLU) uses "
            "token_embd as the output head and would drop lm_head; train with "
            "model.tie_word_embeddings=true"
        )
    if c.get("attention_bias"):
        raise ExportError(f"{where}: attention_bias=true; the bitnet graphs have no biases")
