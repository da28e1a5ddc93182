"""Which implementation runs BitLinear's training product: the Triton kernels or plain PyTorch.

Importing this module never imports triton; the kernels are loaded on first use,
so ``ternlab.bitlinear`` works (on PyTorch) where triton is missing or broken.
"""

from __future__ import annotations

import functools

import torch

#: Values accepted for ``BitLinear(kernel=...)``.
KERNEL_CHOICES: tuple[str, ...] = ("auto", "triton", "torch")

#: Parameter/activation dtypes the Triton kernels take (float64 stays on PyTorch).
TRITON_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16, torch.float16)


@functools.cache
def triton_available() -> bool:
    """True when ``triton`` imports; False (never an exception) when it is absent or broken."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # a broken install can raise more than ImportError
        return False
    return True


def check_kernel(kernel: object) -> str:
    """Return ``kernel`` if it is one of :data:`KERNEL_CHOICES`, else raise ``ValueError``."""
    if kernel not in KERNEL_CHOICES:
        allowed = ", ".join(repr(k) for k in KERNEL_CHOICES)
        raise ValueError(f"BitLinear: `kernel` must be one of {allowed}, got {kernel!r}")
    return kernel  # type: ignore[return-value]


def resolve_kernel(kernel: str, x: torch.Tensor, weight: torch.Tensor) -> str:
    """``"triton"`` or ``"torch"`` for this call.

    ``"auto"`` picks triton for CUDA tensors of a supported dtype when triton
    imports, PyTorch otherwise. ``"triton"`` raises ``RuntimeError`` when
    triton cannot be imported (device and dtype are checked by the kernels' entry
    point, :func:`ternlab.bitlinear.triton_function.bitlinear_triton`).
    """
    check_kernel(kernel)
    if kernel == "torch":
        return "torch"
    if kernel == "auto":
        usable = (
            x.is_cuda
            and x.dtype in TRITON_DTYPES
            and weight.dtype in TRITON_DTYPES
            and triton_available()
        )
        return "triton" if usable else "torch"
    if not triton_available():
        raise RuntimeError(
            "BitLinear: kernel='triton' but the `triton` package cannot be imported here; "
            "install it (`pip install 'ternlab[triton]'`) or pass kernel='auto' "
            "(PyTorch fallback) or kernel='torch'"
        )
    return "triton"


def triton_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.linear(fake_quant_act(x), fake_quant_weight(weight))`` with STE gradients, on Triton."""
    from ternlab.bitlinear.triton_function import bitlinear_triton  # lazy: imports triton

    return bitlinear_triton(x, weight)
