"""Tensor names: transformers' BitNet names <-> llama.cpp's ``bitnet`` GGUF names.

From llama.cpp's ``src/llama-arch.cpp`` (LLM_ARCH_BITNET) and gguf-py's
``TensorNameMap``; bitnet.cpp's ``bitnet-b1.58`` uses the same names, plus
``output.weight`` for an untied head. q/k are not permuted: the ``bitnet``
graph uses NEOX-style RoPE, the same rotate-half as transformers.
"""

from __future__ import annotations

import re

from ternlab.export.errors import ExportError

GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.attn_sub_norm.weight": "attn_sub_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "mlp.ffn_sub_norm.weight": "ffn_sub_norm.weight",
}
_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")
_GGUF_LAYER = re.compile(r"blk\.(\d+)\.(.+)")
_LAYER_BACK = {v: k for k, v in LAYER.items()}
_GLOBAL_BACK = {v: k for k, v in GLOBAL.items()}


def to_gguf(name: str) -> str:
    """The GGUF name of a transformers tensor name."""
    if name in GLOBAL:
        return GLOBAL[name]
    m = _HF_LAYER.fullmatch(name)
    if m and m.group(2) in LAYER:
        return f"blk.{m.group(1)}.{LAYER[m.group(2)]}"
    raise ExportError(f"tensor {name!r} has no GGUF name: not a BitNet tensor ternlab can export")


def to_hf(name: str) -> str:
    """The transformers name of a GGUF tensor name."""
    if name in _GLOBAL_BACK:
        return _GLOBAL_BACK[name]
    m = _GGUF_LAYER.fullmatch(name)
    if m and m.group(2) in _LAYER_BACK:
        return f"model.layers.{m.group(1)}.{_LAYER_BACK[m.group(2)]}"
    raise ExportError(f"GGUF tensor {name!r} is not a BitNet tensor ternlab can import")
