"""``BitLinear``: a drop-in ``nn.Linear`` with ternary weights and int8 activations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ternlab.bitlinear import kernels
from ternlab.bitlinear.intmm import int8_matmul
from ternlab.bitlinear.norm import RMSNorm
from ternlab.bitlinear.quant import act_quant_unchecked, weight_quant
from ternlab.bitlinear.ste import ste_act, ste_weight
from ternlab.bitlinear.variants import (
    QuantScheme,
    hadamard,
    integer_linear_scheme,
    ste_act_bits,
    ste_weight_scheme,
    weight_quant_scheme,
)


class BitLinear(nn.Module):
    """Linear layer with absmean ternary weights and per-token absmax int8 activations.

    Two modes:

    * **training** (the default): a latent weight ``weight`` in the parameter
      dtype, fake-quantized on every call with straight-through gradients (in
      ``train()`` and ``eval()`` alike). ``quant_strength`` (λ in [0, 1]) blends
      ``(1-λ)·linear(x, W) + λ·linear(q(x), q(W))`` for quantization-aware
      fine-tuning from a full-precision model; λ = 1 is pure BitNet.
    * **frozen** (after :meth:`freeze`): int8 ternary codes ``weight_codes`` and
      a float32 ``weight_scale`` held as buffers; the forward pass is the exact
      integer computation of the CPU engine — int8 activation codes times
      ternary codes into int32 accumulators, then one float32 rescale per token.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: add a learned bias after the rescale (off by default, as in BitNet).
        input_norm: apply an RMSNorm to the input first (for models converted from
            full precision that lack BitNet's SubLN norms).
        norm_eps: epsilon of that RMSNorm.
        kernel: training-mode implementation of the quantized product: ``"triton"``
            (fused kernels, :mod:`ternlab.bitlinear.triton_function`), ``"torch"``
            (the plain reference) or ``"auto"`` (triton on CUDA when it imports,
            torch elsewhere). Same results within rounding; see docs/triton.md.
        scheme: a :class:`~ternlab.bitlinear.variants.QuantScheme` for ablations (weight
            scale granularity, absmedian, 4-bit activations, Hadamard); ``None`` is the
            default BitNet b1.58 scheme. Variants always run on the PyTorch reference.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        input_norm: bool = False,
        norm_eps: float = 1e-6,
        kernel: str = "auto",
        scheme: QuantScheme | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"BitLinear: `in_features` and `out_features` must be positive, "
                f"got {in_features} and {out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        self.bias = (
            nn.Parameter(torch.empty(out_features, device=device, dtype=dtype)) if bias else None
        )
        self.norm = (
            RMSNorm(in_features, norm_eps, device=device, dtype=dtype) if input_norm else None
        )
        self.quant_strength = 1.0
        self.frozen = False
        self.kernel = kernels.check_kernel(kernel)
        self.scheme = scheme if scheme is not None else QuantScheme()
        self.scheme.check_layer(in_features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of ``nn.Linear``, so a swapped-in layer behaves the same."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    # -- forward -----------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"BitLinear: input `x` has last dimension {x.shape[-1]}, "
                f"expected in_features={self.in_features} (shape {tuple(x.shape)})"
            )
        if self.norm is not None:
            x = self.norm(x)
        y = self._frozen_forward(x) if self.frozen else self._training_forward(x)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y

    def _training_forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = float(self.quant_strength)
        w = self.weight
        if not self.scheme.is_default:
            return self._variant_forward(x, w, lam)
        if lam <= 0.0:
            return F.linear(x, w)
        # Looked up through the module so a reloaded dispatcher (tests) takes effect.
        if kernels.resolve_kernel(self.kernel, x, w) == "triton":
            quantized = kernels.triton_linear(x, w)
        else:
            quantized = F.linear(ste_act(x), ste_weight(w))
        if lam >= 1.0:
            return quantized
        return (1.0 - lam) * F.linear(x, w) + lam * quantized

    def _variant_forward(self, x: torch.Tensor, w: torch.Tensor, lam: float) -> torch.Tensor:
        # The Hadamard transform is part of the layer (W is learned in the rotated basis),
        # so the full-precision branch of the λ blend sees it too.
        if self.scheme.hadamard:
            x = hadamard(x)
        if lam <= 0.0:
            return F.linear(x, w)
        quantized = F.linear(
            ste_act_bits(x, self.scheme.act_bits), ste_weight_scheme(w, self.scheme)
        )
        if lam >= 1.0:
            return quantized
        return (1.0 - lam) * F.linear(x, w) + lam * quantized

    def _frozen_forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.scheme.is_default:
            return integer_linear_scheme(x, self.weight_codes, self.weight_scale, self.scheme)
        acc, s_x = self.integer_forward(x)
        # One rescale per token: weight scale over activation multiplier, in float32.
        return (acc.to(torch.float32) * (self.weight_scale / s_x)).to(x.dtype)

    def integer_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen layer's integer core: int32 accumulators and the activation multiplier.

        Returns ``(acc, s_x)`` with ``acc = act_codes @ weight_codes.T`` (int32,
        exact) and ``s_x`` the float32 per-token multiplier; the output is
        ``acc * weight_scale / s_x``. ``x`` is taken after the optional input norm.
        """
        if not self.frozen:
            raise RuntimeError(
                "BitLinear.integer_forward needs a frozen layer; call .freeze() first"
            )
        if not self.scheme.is_default:
            raise RuntimeError(
                f"BitLinear.integer_forward is the default scheme's single rescale; this layer "
                f"uses {self.scheme.differences()} (see variants.integer_linear_scheme)"
            )
        q = act_quant_unchecked(x)
        return int8_matmul(q.codes, self.weight_codes, b_max_abs=1), q.inv_scale

    # -- mode changes --------------------------------------------------------
    @torch.no_grad()
    def freeze(self) -> BitLinear:
        """Quantize the latent weight once and keep only the int8 codes and the scale."""
        if self.frozen:
            return self
        w = self.weight.detach()
        q = weight_quant(w) if self.scheme.is_default else weight_quant_scheme(w, self.scheme)
        del self.weight
        self.register_buffer("weight_codes", q.codes)
        self.register_buffer("weight_scale", q.scale)
        self.frozen = True
        return self

    @torch.no_grad()
    def unfreeze(self, dtype: torch.dtype = torch.float32) -> BitLinear:
        """Back to training mode with latent weight ``codes * scale`` in ``dtype``."""
        if not self.frozen:
            return self
        scale = self.weight_scale
        if self.scheme.weight_scale == "group":
            scale = scale.repeat_interleave(self.scheme.group_size, dim=1)
        w = (self.weight_codes.to(torch.float32) * scale).to(dtype)
        del self.weight_codes, self.weight_scale
        self.weight = nn.Parameter(w)
        self.frozen = False
        return self

    def extra_repr(self) -> str:  # noqa: D102
        mode = "frozen" if self.frozen else f"training, quant_strength={self.quant_strength:g}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, input_norm={self.norm is not None}, "
            f"kernel={self.kernel}, {mode}"
            + (f", scheme={self.scheme.differences()}" if not self.scheme.is_default else "")
        )
