"""Exact integer matrix product of int8 codes, the computation the C++ kernels do.

``int8 x int8 -> int32`` accumulators. PyTorch has no portable int8 GEMM, so
we multiply the codes as floating point: with ``|a| <= 128`` and
``|b| <= b_max_abs`` every partial sum is an integer bounded by
``128 * b_max_abs * K``, so float32 is exact while that bound stays below 2**24
(K <= 131072 for ternary ``b``) and float64 while it stays below 2**53.
float64 never goes through TF32 on GPUs, so the result is exact on every device.
"""

from __future__ import annotations

import torch


def int8_matmul(a: torch.Tensor, b_t: torch.Tensor, *, b_max_abs: int = 128) -> torch.Tensor:
    """Return ``a @ b_t.T`` as int32 for int8 ``a`` [..., K] and int8 ``b_t`` [N, K], exactly.

    ``b_max_abs`` is a bound on ``|b_t|`` the caller guarantees (1 for ternary codes);
    it only selects the cheapest float type in which the sums are exact.
    """
    if a.dtype != torch.int8 or b_t.dtype != torch.int8:
        raise TypeError(f"int8_matmul needs int8 inputs, got a={a.dtype}, b_t={b_t.dtype}")
    k = a.shape[-1]
    if b_t.dim() != 2 or b_t.shape[-1] != k:
        raise ValueError(f"int8_matmul: `b_t` must be [N, K={k}], got shape {tuple(b_t.shape)}")
    bound = 128 * b_max_abs * k
    if bound >= 2**53:
        raise ValueError(f"int8_matmul: K={k} is too large for exact accumulation")
    exact_in_f32 = bound < 2**24 and a.device.type == "cpu"  # TF32 may round on GPUs
    ftype = torch.float32 if exact_in_f32 else torch.float64
    acc = torch.matmul(a.to(ftype), b_t.to(ftype).t())
    return acc.to(torch.int32)
