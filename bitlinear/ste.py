"""Straight-through estimators: quantized values forward, identity gradient backward.

The gradient passes unchanged to the latent weights and to the activations,
as in the BitNet b1.58 references (no clipping mask: the absmax activation
scale never clips, and the weights' ternary clamp is deliberately ignored).
"""

from __future__ import annotations

import torch

from ternlab.bitlinear.quant import fake_quant_act, fake_quant_weight


class _WeightSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return fake_quant_weight(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad


class _ActSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return fake_quant_act(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad


def ste_weight(weight: torch.Tensor) -> torch.Tensor:
    """Fake-quantized ternary weight whose gradient flows straight to ``weight``."""
    return _WeightSTE.apply(weight)


def ste_act(x: torch.Tensor) -> torch.Tensor:
    """Fake-quantized int8 activation whose gradient flows straight to ``x``."""
    return _ActSTE.apply(x)
