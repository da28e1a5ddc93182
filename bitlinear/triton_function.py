"""The autograd Function behind ``BitLinear(kernel="triton")``.

Same semantics as the reference ``F.linear(ste_act(x), ste_weight(W))``: the
forward multiplies the int8 activation codes by the ternary codes (exact int32
sums) and rescales once per token; the backward applies the straight-through
estimator, ``grad_x = grad_y @ W_q`` and ``grad_W = grad_y^T @ x_q``. Only int8
codes and float32 scales are saved for backward (about half the bytes of the
bf16 fake-quantized copies the reference keeps), and no fake-quantized tensor
is ever written to memory.
"""

from __future__ import annotations

import torch

from ternlab.bitlinear import triton_kernels as tk
from ternlab.bitlinear.kernels import TRITON_DTYPES
from ternlab.bitlinear.quant import weight_inv_scale
from ternlab.bitlinear.spec import COMPUTE_DTYPE


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or None (torch >= 2.4 API, 2.3 fallback)."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if enabled else None
    except TypeError:  # torch 2.3: no device_type argument
        if device_type == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        if device_type == "cpu" and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        return None


def _gemm_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype ``F.linear`` would compute and return in: the autocast dtype, else the inputs'."""
    cast = _autocast_dtype(x.device.type)
    if cast is not None:
        return cast
    if x.dtype != weight.dtype:
        raise RuntimeError(
            f"BitLinear (triton): input `x` is {x.dtype} but `weight` is {weight.dtype}; "
            "cast one to the other or run under torch.autocast, as for nn.Linear"
        )
    return x.dtype


def _check(x: torch.Tensor, weight: torch.Tensor, gemm_dtype: torch.dtype) -> None:
    allowed = ", ".join(str(d).removeprefix("torch.") for d in TRITON_DTYPES)
    for name, dtype in (("x", x.dtype), ("weight", weight.dtype), ("autocast dtype", gemm_dtype)):
        if dtype not in TRITON_DTYPES:
            raise TypeError(
                f"BitLinear (triton): `{name}` is {dtype}; the Triton kernels take {allowed}. "
                "Use kernel='torch' (or 'auto') for other dtypes"
            )
    if x.device != weight.device:
        raise RuntimeError(
            f"BitLinear (triton): `x` is on {x.device} but `weight` on {weight.device}"
        )
    if not x.is_cuda and not tk.INTERPRET:
        raise RuntimeError(
            f"BitLinear: kernel='triton' needs CUDA tensors, got `x` on {x.device}. "
            "Use kernel='auto' (PyTorch off CUDA), or set TRITON_INTERPRET=1 before "
            "ternlab.bitlinear.triton_kernels is first imported to run the kernels on CPU "
            "(slow; for tests)"
        )
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"BitLinear (triton): `x` {tuple(x.shape)} does not match "
            f"`weight` {tuple(weight.shape)}"
        )


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary codes (Triton kernel) and float32 scale of ``weight``, once per forward.

    The multiplier ``s_w`` comes from the reference code itself (one reduction),
    so the scale is bit-identical to :func:`ternlab.bitlinear.quant.weight_quant`.
    """
    s_w = weight_inv_scale(weight.to(COMPUTE_DTYPE))
    return tk.weight_quant(weight, s_w), 1.0 / s_w


class TritonBitLinearFunction(torch.autograd.Function):
    """``F.linear(fake_quant_act(x), fake_quant_weight(W))`` with identity (STE) gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, fuse_act_quant: bool) -> torch.Tensor:  # noqa: D102
        gemm_dtype = _gemm_dtype(x, weight)
        _check(x, weight, gemm_dtype)
        need_gx, need_gw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        k, n = weight.shape[1], weight.shape[0]
        x2 = x.reshape(-1, k)
        w_codes, w_scale = quantize_weight(weight)
        if fuse_act_quant:
            _, s_x = tk.act_quant(x2, store_codes=False)
            y, x_codes = tk.quant_matmul(x2, s_x, w_codes, w_scale, gemm_dtype, store_codes=need_gw)
        else:
            x_codes, s_x = tk.act_quant(x2)
            y, _ = tk.quant_matmul(x_codes, s_x, w_codes, w_scale, gemm_dtype)
        # Save only what each gradient needs: int8 codes and float32 scales.
        ctx.save_for_backward(
            x_codes if need_gw else None,
            s_x if need_gw else None,
            w_codes if need_gx else None,
            w_scale if need_gx else None,
        )
        ctx.x_shape, ctx.x_dtype, ctx.w_dtype, ctx.gemm_dtype = (
            x.shape,
            x.dtype,
            weight.dtype,
            gemm_dtype,
        )
        return y.reshape(*x.shape[:-1], n)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # noqa: D102
        x_codes, s_x, w_codes, w_scale = ctx.saved_tensors
        g = grad_y.reshape(-1, grad_y.shape[-1]).to(ctx.gemm_dtype)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = tk.grad_input(g, w_codes, w_scale, ctx.x_dtype).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_w = tk.grad_weight(g, x_codes, s_x, ctx.w_dtype)
        return grad_x, grad_w, None


def bitlinear_triton(
    x: torch.Tensor, weight: torch.Tensor, *, fuse_act_quant: bool = True
) -> torch.Tensor:
    """BitLinear's quantized product ``x_q @ W_q^T`` on the Triton kernels, with STE gradients.

    Args:
        x: activations ``[..., K]`` (float32, bfloat16 or float16), on CUDA, or on CPU
            when the kernels run under ``TRITON_INTERPRET=1``.
        weight: latent weight ``[N, K]``, same dtype as ``x`` unless autocast is on.
        fuse_act_quant: quantize activation tiles inside the GEMM (default); False runs
            a separate quantization kernel that writes the int8 codes first.

    Returns ``[..., N]`` in ``x.dtype`` (the autocast dtype under autocast), as ``F.linear``.
    """
    return TritonBitLinearFunction.apply(x, weight, fuse_act_quant)
