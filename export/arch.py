"""Which GGUF architecture a checkpoint becomes, and the refusals when no runtime computes it right.

* ``bitnet`` (llama.cpp ``LLM_ARCH_BITNET``; bitnet.cpp too): SiLU-gated FFN
  (1bitLLM style). llama.cpp's graph reuses ``token_embd`` as the output head,
  so the model must have tied embeddings.
* ``bitnet-b1.58`` (bitnet.cpp, the 2B4T architecture): ReLU² FFN; an untied
  head is written as ``output.weight``. llama.cpp does not know this
  architecture and refuses to load it (it never computes it wrongly).

Both graphs use attention and FFN sub-norms, NEOX RoPE, ``n_head * head_dim ==
hidden_size`` and no biases.

* ``llama`` (llama.cpp ``LLM_ARCH_LLAMA``, ternlab's engine): a Llama checkpoint
  (``model_type: llama``: HF1BitLLM's Llama3-8B-1.58, Falcon-E, a QAT run from a
  Llama), ternary or not. No sub-norms; SiLU; an untied head is ``output.weight``.
  Its RoPE rotates interleaved pairs, so q/k rows are permuted as llama.cpp's
  converter does (:func:`gguf_rows`); ternary codes are permuted after quantizing,
  which keeps codes and scale exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ternlab.export.codec import FLOAT_TYPES, TERNARY_TYPES
from ternlab.export.errors import ExportError
from ternlab.export.source import Checkpoint

ARCH_BY_ACT = {"silu": "bitnet", "relu2": "bitnet-b1.58"}
RUNTIME = {"bitnet": "llama.cpp / bitnet.cpp", "bitnet-b1.58": "bitnet.cpp", "llama": "llama.cpp"}
MODEL_TYPES = ("bitnet", "llama")


@dataclass(frozen=True)
class Plan:
    """The architecture name and the tensor types of one export."""

    arch: str
    qtype: str  # the type of the linear weights
    embed_type: str  # the type of token_embd / output


def plan_export(ckpt: Checkpoint, qtype: str, embed_type: str = "f16") -> Plan:
    """Check that ``ckpt`` can be exported as ``qtype`` and pick its architecture."""
    where = f"{ckpt.path}/config.json"
    model_type = ckpt.config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ExportError(
            f"{where}: model_type={model_type!r} is not supported; ternlab exports BitNet "
            "(model_type 'bitnet') and Llama ('llama') checkpoints"
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
    if embed_type not in ("f16", "q8_0", "q6_k", "q4_0"):
        raise ExportError(f"--embed-type {embed_type}: choose f16, q8_0, q6_k or q4_0")
    arch = "llama" if model_type == "llama" else ARCH_BY_ACT.get(ckpt.hidden_act)
    if arch == "llama" and ckpt.hidden_act != "silu":
        raise ExportError(f"{where}: hidden_act={ckpt.hidden_act!r}; the llama graph needs silu")
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
    for key in ("attention_bias", "mlp_bias"):
        if c.get(key):
            raise ExportError(f"{where}: {key}=true; the {arch} graph has no biases")
    if arch == "llama":
        _check_llama(ckpt, where)


def _check_llama(ckpt: Checkpoint, where: str) -> None:
    c = ckpt.config
    rope = c.get("rope_scaling") or c.get("rope_parameters") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ExportError(
            f"{where}: RoPE scaling {rope.get('rope_type', rope.get('type'))!r}; the engine "
            "runs plain RoPE only (a rope_freqs tensor is not written)"
        )
    subs = [n for n in ckpt.state if "sub_norm" in n]
    if subs:
        raise ExportError(
            f"{where}: model_type 'llama' but the weights have BitNet sub-norms ({subs[0]}); "
            "set model_type 'bitnet' (architectures BitNetForCausalLM)"
        )


def llama_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute``: rotate-half pairs -> interleaved pairs, per head."""
    return (
        rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def gguf_rows(ckpt: Checkpoint, plan: Plan, name: str, a: np.ndarray) -> np.ndarray:
    """``a`` (a tensor's values or codes) in the row order the GGUF stores for ``plan.arch``."""
    if plan.arch != "llama":
        return a
    n_head = ckpt.config["num_attention_heads"]
    if name.endswith("self_attn.q_proj.weight"):
        return llama_permute(a, n_head)
    if name.endswith("self_attn.k_proj.weight"):
        return llama_permute(a, ckpt.config.get("num_key_value_heads") or n_head)
    return a
