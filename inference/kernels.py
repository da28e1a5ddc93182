"""The C++ ternary kernels of the CPU engine (``ternlab.inference._kernels``), typed and documented.

Everything takes and returns numpy arrays; the integer results are bit-exact with
the PyTorch reference in :mod:`ternlab.bitlinear` (spec: docs/quantization.md)
and identical whatever the ISA (``set_isa``) or the thread count. The packed
weight layout is described in docs/engine-kernels.md.

Example::

    packed = pack_ternary_weights(layer.weight_codes.numpy())
    y = ternary_matmul(packed, float(layer.weight_scale), x.numpy(), threads=2)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

try:
    from ternlab.inference import _kernels
except ImportError as exc:  # pragma: no cover - only without a built extension
    raise ImportError(
        "ternlab's C++ kernels (ternlab.inference._kernels) are not built. Reinstall the "
        "package so that setup.py compiles them: `pip install -e .` (needs a C++17 compiler "
        f"and pybind11>=2.12). Original error: {exc}"
    ) from exc

__all__ = [
    "LAYOUTS",
    "QK",
    "QK3",
    "PackedTernary",
    "available_isas",
    "current_isa",
    "known_isas",
    "pack_ternary_weights",
    "preferred_layout",
    "packed_row_bytes",
    "quantize_activations",
    "set_isa",
    "ternary_matmul",
    "ternary_matmul_int",
    "unpack_ternary_weights",
]

#: Codes per 64-byte super-block of the 2-bit layout; rows are padded to a multiple of it.
QK: int = _kernels.QK
#: Codes per 64-byte super-block of the base-3 layout (five codes a byte).
QK3: int = _kernels.QK3
#: The packed layouts: 2-bit fields, or base-3 digits five to a byte (1.6 bits a code).
LAYOUTS: tuple[str, ...] = ("bits2", "base3")


class PackedTernary(NamedTuple):
    """Ternary weights ``[out_features, in_features]`` in one of the engine's packed layouts.

    ``data`` is ``uint8 [out_features, packed_row_bytes(in_features, layout)]``.
    """

    data: np.ndarray
    out_features: int
    in_features: int
    layout: str = "bits2"


def packed_row_bytes(k: int, layout: str = "bits2") -> int:
    """Bytes of one packed row of ``k`` codes: ``ceil(k / 256) * 64`` (bits2) or
    ``ceil(k / 320) * 64`` (base3)."""
    return _kernels.packed_row_bytes(k, layout)


def preferred_layout() -> str:
    """The layout the current ISA multiplies fastest (what ``Engine(layout="auto")`` picks)."""
    return _kernels.preferred_layout()


def available_isas() -> list[str]:
    """Kernel sets this build and CPU can run, from ``"scalar"`` (the reference) to the best."""
    return _kernels.available_isas()


def known_isas() -> list[str]:
    """Every kernel set this build knows.

    ``scalar``, ``avx2``, ``avxvnni`` (avx2 with the 2-bit multi-token product on the
    256-bit ``vpdpbusd``), ``avx512``, ``avx512vbmi`` (avx512 plus the base-3 layout's
    lookup kernels), ``amx`` (avx512vbmi with the multi-token ternary products on the
    AMX-INT8 tile unit), ``neon`` and ``neondot`` (neon with the ARMv8.2 dot product).
    """
    return _kernels.known_isas()


def set_isa(name: str) -> None:
    """Force a kernel set (process-wide), e.g. for tests; ``"auto"`` picks the best.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when this CPU
    (or build) cannot run it. The best available set is the initial choice.
    """
    _kernels.set_isa(name)


def current_isa() -> str:
    """The kernel set in use."""
    return _kernels.current_isa()


def quantize_activations(x: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-token absmax int8 quantization of ``float32 [T, K]``.

    Returns ``(codes int8 [T, K], s_x float32 [T])``, bit-exact with
    :func:`ternlab.bitlinear.act_quant` (whose ``inv_scale`` is ``s_x[:, None]``).
    """
    return _kernels.quantize_activations(x, threads=threads)


def pack_ternary_weights(codes: np.ndarray, layout: str = "bits2") -> PackedTernary:
    """Pack ternary codes ``int8 [N, K]`` (values in {-1, 0, 1}) into an engine layout."""
    data = _kernels.pack_ternary_weights(codes, layout)
    return PackedTernary(data, int(codes.shape[0]), int(codes.shape[1]), layout)


def unpack_ternary_weights(packed: PackedTernary) -> np.ndarray:
    """The inverse of :func:`pack_ternary_weights`: ``int8 [N, K]``."""
    _check_packed(packed)
    return _kernels.unpack_ternary_weights(packed.data, packed.in_features, packed.layout)


def ternary_matmul(
    packed: PackedTernary, scale: float, x: np.ndarray, threads: int = 1
) -> np.ndarray:
    """The frozen :class:`~ternlab.bitlinear.BitLinear` forward: ``float32 [T, N]``.

    ``x`` is ``float32 [T, K]``; ``scale`` the per-tensor weight scale. Computes
    ``float(codes_x @ codes_w.T) * (scale / s_x)`` exactly as the reference does,
    so the result is bit-equal to ``BitLinear.freeze()``'s float32 output.
    """
    _check_packed(packed)
    return _kernels.ternary_matmul(
        packed.data, packed.in_features, scale, x, threads=threads, layout=packed.layout
    )


def ternary_matmul_int(packed: PackedTernary, xcodes: np.ndarray, threads: int = 1) -> np.ndarray:
    """Exact ``int32 [T, N]`` accumulators ``xcodes @ codes_w.T`` for ``int8 xcodes [T, K]``."""
    _check_packed(packed)
    return _kernels.ternary_matmul_int(
        packed.data, packed.in_features, xcodes, threads=threads, layout=packed.layout
    )


def _check_packed(packed: PackedTernary) -> None:
    if not isinstance(packed, PackedTernary):
        raise TypeError(
            f"`packed` must be a PackedTernary (from pack_ternary_weights), got "
            f"{type(packed).__name__}"
        )
    if isinstance(packed.data, np.ndarray) and packed.data.ndim == 2:
        if packed.data.shape[0] != packed.out_features:
            raise ValueError(
                f"`packed` holds {packed.data.shape[0]} rows but says "
                f"out_features={packed.out_features}"
            )
