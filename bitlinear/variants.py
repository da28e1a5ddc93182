"""Quantization variants for ablations: the reference quantizers of each non-default scheme.

The default scheme (:class:`QuantScheme` with no arguments) is BitNet b1.58 and
runs the spec's own functions (``quant.py``), bit for bit. The variants
(docs/quantization.md, "Variants") change one thing each:

* ``weight_scale``: one absmean scale per ``tensor`` (default), per output
  ``channel`` (row of ``W``) or per ``group`` of ``group_size`` input columns of a row;
* ``estimator``: ``absmean`` (default) or ``absmedian`` (``torch.median``: the
  lower of the two middle values for an even count);
* ``act_bits``: 8 (default) or 4 — per-token absmax, codes clamped to
  ``[-2^(b-1), 2^(b-1)-1]``;
* ``hadamard``: an orthonormal Walsh–Hadamard transform of the activations
  before they are quantized (BitNet v2's H-BitLinear); the layer computes
  ``q(W) · q(H x)``, so ``W`` is learned in the rotated basis.

Every step runs in float32, with the same eps, reciprocal and round-half-even
rules as the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ternlab.bitlinear.quant import (
    QuantizedActivation,
    TernaryWeight,
    act_quant_unchecked,
    weight_quant_unchecked,
)
from ternlab.bitlinear.spec import COMPUTE_DTYPE, EPS, WEIGHT_QMAX, WEIGHT_QMIN

WEIGHT_SCALES = ("tensor", "channel", "group")
ESTIMATORS = ("absmean", "absmedian")
ACT_BITS = (8, 4)


@dataclass(frozen=True)
class QuantScheme:
    """How a :class:`~ternlab.bitlinear.BitLinear` quantizes; the defaults are BitNet b1.58."""

    weight_scale: str = "tensor"
    group_size: int = 128
    estimator: str = "absmean"
    act_bits: int = 8
    hadamard: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("weight_scale", self.weight_scale, WEIGHT_SCALES),
            ("estimator", self.estimator, ESTIMATORS),
            ("act_bits", self.act_bits, ACT_BITS),
        ):
            if value not in allowed:
                raise ValueError(f"QuantScheme: `{name}` must be one of {allowed}, got {value!r}")
        if self.group_size <= 0:
            raise ValueError(f"QuantScheme: `group_size` must be > 0, got {self.group_size}")

    @property
    def is_default(self) -> bool:
        """True for BitNet b1.58's scheme (what every exporter and runtime computes)."""
        return self == QuantScheme()

    def differences(self) -> dict[str, object]:
        """The fields that differ from the default scheme (``group_size`` only when grouped)."""
        base = QuantScheme()
        out = {
            k: getattr(self, k)
            for k in ("weight_scale", "estimator", "act_bits", "hadamard")
            if getattr(self, k) != getattr(base, k)
        }
        if self.weight_scale == "group":
            out["group_size"] = self.group_size
        return out

    def check_layer(self, in_features: int) -> None:
        """Raise ``ValueError`` if a layer of ``in_features`` inputs cannot use this scheme."""
        if self.weight_scale == "group" and in_features % self.group_size:
            raise ValueError(
                f"QuantScheme: group_size={self.group_size} does not divide in_features="
                f"{in_features}"
            )
        if self.hadamard and in_features & (in_features - 1):
            raise ValueError(
                f"QuantScheme: the Hadamard transform needs a power-of-two in_features, "
                f"got {in_features}"
            )


def _granules(w32: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """``w32`` viewed so that the last dimension is the set of values sharing one scale."""
    if scheme.weight_scale == "tensor":
        return w32.reshape(1, -1)
    if scheme.weight_scale == "channel":
        return w32.reshape(w32.shape[0], -1)
    out, inp = w32.shape
    return w32.reshape(out, inp // scheme.group_size, scheme.group_size)


def _scale_shape(w: torch.Tensor, scheme: QuantScheme) -> tuple[int, ...]:
    if scheme.weight_scale == "tensor":
        return ()
    if scheme.weight_scale == "channel":
        return (w.shape[0], 1)
    return (w.shape[0], w.shape[1] // scheme.group_size)


def weight_quant_scheme(weight: torch.Tensor, scheme: QuantScheme) -> TernaryWeight:
    """Ternary codes ``[out, in]`` (int8) and float32 scales: ``()``, ``[out, 1]`` or ``[out, G]``.

    ``s = 1 / max(estimator(|W_granule|), EPS)``, ``codes = clamp(round(W * s), -1, 1)``,
    ``scale = 1 / s``; the default scheme is :func:`~ternlab.bitlinear.weight_quant`'s.
    """
    if scheme.weight_scale == "tensor" and scheme.estimator == "absmean":
        return weight_quant_unchecked(weight)
    if weight.dim() != 2:
        raise ValueError(f"weight_quant_scheme: `weight` must be 2-D, got {tuple(weight.shape)}")
    scheme.check_layer(weight.shape[1])
    g = _granules(weight.to(COMPUTE_DTYPE), scheme)
    mag = g.abs()
    est = mag.mean(-1, keepdim=True) if scheme.estimator == "absmean" else mag.median(-1, True)[0]
    s = 1.0 / est.clamp(min=EPS)
    codes = torch.round(g * s).clamp_(WEIGHT_QMIN, WEIGHT_QMAX).to(torch.int8)
    return TernaryWeight(
        codes.reshape(weight.shape), (1.0 / s).reshape(_scale_shape(weight, scheme))
    )


def dequant_weight_scheme(q: TernaryWeight, scheme: QuantScheme) -> torch.Tensor:
    """``codes * scale`` in float32, each code times the scale of its granule."""
    codes = q.codes.to(COMPUTE_DTYPE)
    if scheme.weight_scale != "group":
        return codes * q.scale
    out, inp = codes.shape
    g = codes.reshape(out, inp // scheme.group_size, scheme.group_size) * q.scale.unsqueeze(-1)
    return g.reshape(out, inp)


def act_range(bits: int) -> tuple[int, int]:
    """Clamp range of ``bits``-bit activation codes: ``(-2^(b-1), 2^(b-1) - 1)``."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def act_quant_bits(x: torch.Tensor, bits: int) -> QuantizedActivation:
    """Per-token absmax quantization to ``bits`` bits; 8 bits is the spec's ``act_quant``."""
    if bits == 8:
        return act_quant_unchecked(x)
    qmin, qmax = act_range(bits)
    x32 = x.to(COMPUTE_DTYPE)
    s_x = qmax / x32.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
    codes = torch.round(x32 * s_x).clamp_(qmin, qmax).to(torch.int8)
    return QuantizedActivation(codes, s_x)


def hadamard(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Walsh–Hadamard transform of the last dimension (Sylvester order).

    ``H_1 = [1]``, ``H_2n = [[H_n, H_n], [H_n, -H_n]]``; returns ``x @ H.T / sqrt(n)``
    computed by butterflies in float32 and cast back to ``x.dtype``. ``n`` must be a
    power of two. Differentiable (it is linear and orthonormal, its own inverse).
    """
    n = x.shape[-1]
    if n <= 0 or n & (n - 1):
        raise ValueError(f"hadamard: the last dimension must be a power of two, got {n}")
    y = x.to(COMPUTE_DTYPE).reshape(-1, n)
    h = 1
    while h < n:
        y = y.reshape(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return (y.reshape(x.shape) * (1.0 / math.sqrt(n))).to(x.dtype)


def fake_quant_weight_scheme(weight: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Quantize-dequantize ``weight`` under ``scheme``; result in the weight's dtype."""
    return dequant_weight_scheme(weight_quant_scheme(weight, scheme), scheme).to(weight.dtype)


def fake_quant_act_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize activations to ``bits`` bits; result in the input's dtype."""
    q = act_quant_bits(x, bits)
    return (q.codes.to(COMPUTE_DTYPE) / q.inv_scale).to(x.dtype)


class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor, fn) -> torch.Tensor:  # noqa: D102
        return fn(t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return grad, None


def ste_weight_scheme(weight: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Fake-quantized weight under ``scheme``, identity gradient."""
    return _STE.apply(weight, lambda w: fake_quant_weight_scheme(w, scheme))


def ste_act_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Fake-quantized ``bits``-bit activation, identity gradient."""
    return _STE.apply(x, lambda t: fake_quant_act_bits(t, bits))


def integer_linear_scheme(
    x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor, scheme: QuantScheme
) -> torch.Tensor:
    """Frozen forward of a variant: exact int32 sums per granule, then the float32 rescale.

    ``x`` is taken after the optional input norm (and before the Hadamard transform).
    Per tensor/channel: ``acc[t, o] * (scale[o] / s_x[t])``; per group: the sum over
    groups ``j`` (in order) of ``acc_j[t, o] * (scale[o, j] / s_x[t])``.
    """
    from ternlab.bitlinear.intmm import int8_matmul

    if scheme.hadamard:
        x = hadamard(x)
    q = act_quant_bits(x, scheme.act_bits)
    if scheme.weight_scale != "group":
        acc = int8_matmul(q.codes, codes, b_max_abs=1).to(torch.float32)
        s = scale.reshape(-1) if scale.dim() else scale
        return (acc * (s / q.inv_scale)).to(x.dtype)
    g = scheme.group_size
    y = None
    for j in range(codes.shape[1] // g):
        acc = int8_matmul(
            q.codes[..., j * g : (j + 1) * g], codes[:, j * g : (j + 1) * g], b_max_abs=1
        )
        part = acc.to(torch.float32) * (scale[:, j] / q.inv_scale)
        y = part if y is None else y + part
    return y.to(x.dtype)
