"""1bitLLM's own forward (``bitnet_b1_58-*``: ``utils_quant.py`` + ``modeling_bitnet.py``), ported.

``utils_quant.py`` is transcribed line for line (:func:`weight_quant`,
:func:`activation_quant`, :class:`BitLinear`). ``modeling_bitnet.py`` is a Llama copy with
``BitLinear`` projections, an RMSNorm ``inner_attn_ln`` before ``o_proj`` and an RMSNorm
``ffn_layernorm`` before ``down_proj``, SiLU, rotate-half RoPE: the graph of transformers'
``BitNetForCausalLM`` (which was derived from it), so :func:`onebitllm_model` takes that graph,
swaps its projections for the transcribed ``BitLinear`` and loads 1bitLLM's tensor names.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn


def weight_quant(weight, num_bits=1):
    dtype = weight.dtype
    weight = weight.float()
    s = 1 / weight.abs().mean().clamp(min=1e-5)
    result = (weight * s).round().clamp(-1, 1) / s
    return result.type(dtype)


def activation_quant(x, num_bits=8):
    dtype = x.dtype
    x = x.float()
    Qn = -(2 ** (num_bits - 1))
    Qp = 2 ** (num_bits - 1) - 1
    s = Qp / x.abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
    result = (x * s).round().clamp(Qn, Qp) / s
    return result.type(dtype)


class BitLinear(nn.Linear):
    def __init__(self, *kargs, weight_bits=1, input_bits=8, **kwargs):
        super().__init__(*kargs, **kwargs)
        self.weight_bits = weight_bits
        self.input_bits = input_bits

    def forward(self, input):
        quant_input = input + (activation_quant(input, self.input_bits) - input).detach()
        quant_weight = (
            self.weight + (weight_quant(self.weight, self.weight_bits) - self.weight).detach()
        )
        out = nn.functional.linear(quant_input, quant_weight)
        if self.bias is not None:
            out += self.bias.view(1, -1).expand_as(out)
        return out


def onebitllm_model(folder: Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The 1bitLLM model of ``folder`` (its ``config.json`` and float16 weights)."""
    from transformers import BitNetConfig, BitNetForCausalLM

    cfg = json.loads((folder / "config.json").read_text())
    bits = {"weight_bits": cfg["weight_bits"], "input_bits": cfg["input_bits"]}
    plain = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", *bits)}
    model = BitNetForCausalLM(BitNetConfig(**plain))
    for name, mod in list(model.named_modules()):
        if type(mod) is nn.Linear and name != "lm_head":
            new = BitLinear(mod.in_features, mod.out_features, bias=False, **bits)
            model.set_submodule(name, new)
    state = {
        k.replace("inner_attn_ln", "attn_sub_norm").replace("ffn_layernorm", "ffn_sub_norm"): v
        for k, v in load_file(folder / "model.safetensors").items()
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    return model.to(dtype).eval()


def onebitllm_logits(folder: Path, ids: list[int]) -> torch.Tensor:
    """1bitLLM's forward of ``ids``, float32 compute on the float16 weights."""
    with torch.no_grad():
        return onebitllm_model(folder)(torch.tensor([ids])).logits[0]
