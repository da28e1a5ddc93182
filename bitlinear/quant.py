"""The reference quantizers: absmean ternary weights and per-token absmax int8 activations.

This file *is* the spec in code (docs/quantization.md, version ``SPEC_VERSION``).
Every step runs in float32 and follows the published BitNet b1.58 references
(1bitLLM ``utils_quant.py``, transformers' ``integrations/bitnet.py``, the
llama.cpp and bitnet.cpp converters):

    weights:      s_w = 1 / max(mean(|W|), eps)
                  codes = clamp(round(W * s_w), -1, 1)           int8
                  scale = 1 / s_w                                float32 scalar
    activations:  s_x = 127 / max(max(|x|, dim=-1), eps)         per token (*)
                  codes = clamp(round(x * s_x), -128, 127)       int8

(*) PyTorch evaluates ``scalar / tensor`` as ``tensor.reciprocal() * scalar``:
two float32 roundings, which the Triton and C++ kernels reproduce.
``round`` is round-half-to-even (``torch.round``). Multiplying by the
reciprocal (not dividing by the mean) is what the references do, and it can
move a value across a .5 boundary, so we do the same.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ternlab.bitlinear.checks import check_float_tensor
from ternlab.bitlinear.spec import (
    ACT_QMAX,
    ACT_QMIN,
    COMPUTE_DTYPE,
    EPS,
    WEIGHT_QMAX,
    WEIGHT_QMIN,
)


class TernaryWeight(NamedTuple):
    """Ternary codes in {-1, 0, +1} (int8) and the float32 per-tensor scale (0-dim)."""

    codes: torch.Tensor
    scale: torch.Tensor


class QuantizedActivation(NamedTuple):
    """Int8 codes and the float32 multiplier ``s_x`` (shape ``[..., 1]``): x ≈ codes / s_x."""

    codes: torch.Tensor
    inv_scale: torch.Tensor


def weight_inv_scale(w32: torch.Tensor) -> torch.Tensor:
    """``s_w = 1 / max(mean(|W|), eps)`` of a float32 tensor (no checks: hot path)."""
    return 1.0 / w32.abs().mean().clamp(min=EPS)


def weight_quant_unchecked(weight: torch.Tensor) -> TernaryWeight:
    """:func:`weight_quant` without argument checks, for the training hot path."""
    w32 = weight.to(COMPUTE_DTYPE)
    s_w = weight_inv_scale(w32)
    codes = torch.round(w32 * s_w).clamp_(WEIGHT_QMIN, WEIGHT_QMAX).to(torch.int8)
    return TernaryWeight(codes, 1.0 / s_w)


def weight_quant(weight: torch.Tensor) -> TernaryWeight:
    """Absmean ternary quantization of a whole tensor (one scale per tensor).

    Returns ``TernaryWeight(codes, scale)`` with ``codes * scale`` equal, bit for
    bit, to the references' fake-quantized weight in float32.

    Raises ``TypeError``/``ValueError`` naming ``weight`` for a non-float, empty
    or non-finite tensor, and when its mean magnitude overflows float32.
    """
    check_float_tensor("weight", weight)
    q = weight_quant_unchecked(weight)
    if not bool(torch.isfinite(q.scale)) or float(q.scale) == 0.0:
        raise ValueError(
            "`weight`: mean(|weight|) is not representable in float32 "
            f"(scale {float(q.scale)}); rescale the tensor before quantizing"
        )
    return q


def act_quant_unchecked(x: torch.Tensor) -> QuantizedActivation:
    """:func:`act_quant` without argument checks, for the training hot path."""
    x32 = x.to(COMPUTE_DTYPE)
    s_x = ACT_QMAX / x32.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
    codes = torch.round(x32 * s_x).clamp_(ACT_QMIN, ACT_QMAX).to(torch.int8)
    return QuantizedActivation(codes, s_x)


def act_quant(x: torch.Tensor) -> QuantizedActivation:
    """Per-token (last dimension) absmax 8-bit quantization.

    Returns ``QuantizedActivation(codes, inv_scale)``: int8 codes and the float32
    multiplier ``s_x = 127 / max|x|`` of shape ``x.shape[:-1] + (1,)``; the
    dequantized activation is ``codes / s_x``. An all-zero token gets all-zero
    codes. Raises naming ``x`` for a non-float, 0-dim, empty or non-finite tensor.
    """
    check_float_tensor("x", x)
    return act_quant_unchecked(x)


def dequant_weight(q: TernaryWeight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``codes * scale`` computed in float32, then cast to ``dtype``."""
    return (q.codes.to(COMPUTE_DTYPE) * q.scale).to(dtype)


def dequant_act(q: QuantizedActivation, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``codes / s_x`` computed in float32, then cast to ``dtype`` (as the references do)."""
    return (q.codes.to(COMPUTE_DTYPE) / q.inv_scale).to(dtype)


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    """Quantize-dequantize the weight; result in the weight's dtype (no gradient rule)."""
    return dequant_weight(weight_quant_unchecked(weight), weight.dtype)


def fake_quant_act(x: torch.Tensor) -> torch.Tensor:
    """Quantize-dequantize activations; result in the input's dtype (no gradient rule)."""
    return dequant_act(act_quant_unchecked(x), x.dtype)
