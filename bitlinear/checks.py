"""Argument checks shared by the public quantization API: errors name the argument."""

from __future__ import annotations

import torch

from ternlab.bitlinear.spec import FLOAT_DTYPES


def check_float_tensor(name: str, t: object, *, min_dim: int = 1, finite: bool = True) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``t`` is a usable float tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in FLOAT_DTYPES)
        raise TypeError(
            f"`{name}` has dtype {t.dtype}; expected a floating dtype ({allowed}). "
            f"Convert it first, e.g. `{name}.float()`."
        )
    if t.dim() < min_dim:
        raise ValueError(
            f"`{name}` must have at least {min_dim} dimension(s), got shape {tuple(t.shape)}"
        )
    if t.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(t.shape)}); nothing to quantize")
    if finite and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"`{name}` contains {n_bad} non-finite value(s) (NaN or Inf); "
            "quantization scales would be meaningless. Find where they come from "
            "(a diverged run, an uninitialised tensor) before quantizing."
        )


def check_codes(
    name: str, codes: object, *, lo: int, hi: int, dtype: torch.dtype = torch.int8
) -> None:
    """Raise unless ``codes`` is a ``dtype`` tensor whose values lie in [lo, hi]."""
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype != dtype:
        raise TypeError(f"`{name}` has dtype {codes.dtype}; expected {dtype}")
    if codes.numel() and (int(codes.min()) < lo or int(codes.max()) > hi):
        raise ValueError(
            f"`{name}` holds values outside [{lo}, {hi}] "
            f"(min {int(codes.min())}, max {int(codes.max())})"
        )
