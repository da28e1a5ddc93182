"""Encode one tensor into its GGUF type, and decode it back (numpy, through ``gguf.quants``).

Ternary types store ``codes`` and a scale:

* ``tq1_0`` / ``tq2_0`` (ggml): blocks of 256 values along a row, each with an
  fp16 ``d``. We quantize ``codes * f16(scale)`` so every block with a non-zero
  code gets ``d = f16(scale)`` and exactly the same codes; all-zero blocks get
  ``d = 0``. The fp16 rounding of the scale is the format's.
* ``i2_s`` (bitnet.cpp): see :mod:`ternlab.export.i2s`; float32 scale, exact.

Full-precision tensors: ``f16``, ``q8_0`` (blocks of 32, fp16 scale), ``q6_k``
(embedding/head only: :mod:`ternlab.export.q6k`), ``q4_0`` (embedding/head only:
blocks of 32 4-bit levels, fp16 scale; gguf-py's encoder, as llama-quantize's), ``f32``.
"""

from __future__ import annotations

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, quants
from gguf.gguf_reader import ReaderTensor

from ternlab.export.errors import ExportError
from ternlab.export.i2s import BLOCK as I2S_BLOCK
from ternlab.export.i2s import I2S_TYPE_ID, add_i2s_tensor, i2s_nbytes, unpack_i2s
from ternlab.export.q6k import quantize_q6_k

Q = GGMLQuantizationType
TERNARY_TYPES = {"tq1_0": Q.TQ1_0, "tq2_0": Q.TQ2_0, "i2_s": I2S_TYPE_ID}
FLOAT_TYPES = {"f16": Q.F16, "q8_0": Q.Q8_0, "q6_k": Q.Q6_K, "q4_0": Q.Q4_0, "f32": Q.F32}


def row_block(qtype: str) -> int:
    """How many values along a row one block of ``qtype`` holds (the row length must divide)."""
    if qtype == "i2_s":
        return I2S_BLOCK
    return GGML_QUANT_SIZES[TERNARY_TYPES.get(qtype) or FLOAT_TYPES[qtype]][0]


def check_row(name: str, shape: tuple[int, ...], qtype: str, hint: str) -> None:
    """Refuse a tensor whose row length is not a multiple of the type's block."""
    block = row_block(qtype)
    if shape[-1] % block:
        raise ExportError(
            f"tensor {name} {tuple(shape)}: rows of {shape[-1]} values, but {qtype} packs "
            f"blocks of {block} along a row; {hint}"
        )


def fp16_scale(scale: float) -> np.float32:
    """The scale as a TQ block stores it: rounded to fp16 (then exact in float32)."""
    return np.float32(np.float16(scale))


def add_ternary(w: GGUFWriter, name: str, codes: np.ndarray, scale: float, qtype: str) -> None:
    """Add ternary ``codes`` [out, in] (int8) with a per-tensor ``scale`` as ``qtype``."""
    if qtype == "i2_s":
        add_i2s_tensor(w, name, codes, float(np.float32(scale)))
        return
    d = fp16_scale(scale)
    if d == 0 or not np.isfinite(d):
        raise ExportError(f"tensor {name}: scale {scale} is not representable in fp16 ({qtype})")
    data = quants.quantize(codes.astype(np.float32) * d, TERNARY_TYPES[qtype])
    w.add_tensor(name, data, raw_dtype=TERNARY_TYPES[qtype])


def add_float(w: GGUFWriter, name: str, array: np.ndarray, qtype: str) -> None:
    """Add a full-precision tensor as ``f32``, ``f16``, ``q8_0``, ``q6_k`` or ``q4_0``."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    if qtype == "f32":
        w.add_tensor(name, a)
    elif qtype == "f16":
        w.add_tensor(name, a.astype(np.float16))
    else:
        w.add_tensor(name, _quantize(a, qtype), raw_dtype=FLOAT_TYPES[qtype])


def _quantize(a: np.ndarray, qtype: str) -> np.ndarray:
    if qtype == "q6_k":
        return quantize_q6_k(a)  # gguf-py has no Q6_K encoder
    return quants.quantize(a, FLOAT_TYPES[qtype])


def expected_float(array: np.ndarray, qtype: str) -> np.ndarray:
    """What dequantizing ``array`` written as ``qtype`` must give, bit for bit."""
    a = np.asarray(array, dtype=np.float32)
    if qtype == "f32":
        return a
    if qtype == "f16":
        return a.astype(np.float16).astype(np.float32)
    t = FLOAT_TYPES[qtype]
    return quants.dequantize(_quantize(a, qtype), t).reshape(a.shape)


def is_ternary_type(t: ReaderTensor) -> bool:
    return int(t.tensor_type) in (int(Q.TQ1_0), int(Q.TQ2_0), I2S_TYPE_ID)


def shape_of(t: ReaderTensor) -> tuple[int, ...]:
    """numpy (row-major) shape of a GGUF tensor: ggml's ``ne`` reversed."""
    return tuple(int(x) for x in reversed(t.shape.tolist()))


def decode_float(t: ReaderTensor) -> np.ndarray:
    """Dequantize a non-ternary GGUF tensor to float32 in its numpy shape."""
    return quants.dequantize(t.data, Q(int(t.tensor_type))).astype(np.float32).reshape(shape_of(t))


def decode_ternary(t: ReaderTensor) -> tuple[np.ndarray, np.float32]:
    """A TQ1_0/TQ2_0/I2_S tensor -> (int8 codes in its numpy shape, float32 per-tensor scale)."""
    shape = shape_of(t)
    if int(t.tensor_type) == I2S_TYPE_ID:
        codes, scale = unpack_i2s(t.data, int(np.prod(shape)))
        return codes.reshape(shape), scale
    qt = Q(int(t.tensor_type))
    block_bytes = GGML_QUANT_SIZES[qt][1]
    blocks = np.asarray(t.data, dtype=np.uint8).reshape(-1, block_bytes)
    d = blocks[:, -2:].copy().view(np.float16).astype(np.float32).reshape(-1)  # d is last
    values = quants.dequantize(t.data, qt).reshape(-1, GGML_QUANT_SIZES[qt][0])
    with np.errstate(divide="ignore", invalid="ignore"):
        codes = np.where(d[:, None] == 0, 0, values / d[:, None])
    scales = np.unique(d[(codes != 0).any(axis=1)])
    if scales.size > 1:
        raise ExportError(
            f"GGUF tensor {t.name}: its {qt.name} blocks have {scales.size} different scales; "
            "ternlab models have one scale per tensor"
        )
    scale = np.float32(scales[0]) if scales.size else np.float32(0)
    return codes.astype(np.int8).reshape(shape), scale


def encoded_nbytes(shape: tuple[int, ...], qtype: str) -> int:
    """Bytes of a tensor of ``shape`` stored as ``qtype`` (before GGUF's alignment padding)."""
    n = int(np.prod(shape))
    if qtype == "i2_s":
        return i2s_nbytes(n)
    block, size = GGML_QUANT_SIZES[TERNARY_TYPES.get(qtype) or FLOAT_TYPES[qtype]]
    return n // block * size
