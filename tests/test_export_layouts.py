"""The byte layouts, against literal Python transcriptions of the runtimes' C reference loops.

TQ1_0 / TQ2_0: llama.cpp ``ggml/src/ggml-quants.c`` ``quantize_row_tq{1,2}_0_ref``;
I2_S: bitnet.cpp ``quantize_i2_s`` (x86, ``QK_I2_S = 128``).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from gguf import GGMLQuantizationType, quants

from ternlab.export.codec import decode_ternary, fp16_scale
from ternlab.export.i2s import i2s_nbytes, pack_i2s, unpack_i2s

SCALE = 0.0371


def _codes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1, 2, size=n).astype(np.int8)


def _tq2_0_ref(codes: np.ndarray, d: float) -> bytes:
    out = b""
    for b in range(len(codes) // 256):
        x = codes[256 * b : 256 * (b + 1)]
        qs = bytearray(64)
        for j in range(0, 64, 32):
            xo = (j // 32) * 128
            for m in range(32):
                q = 0
                for n in range(4):
                    q += ((int(x[xo + m + n * 32]) + 1) & 3) << (2 * n)
                qs[j + m] = q
        out += bytes(qs) + np.float16(d).tobytes()
    return out


def _tq1_0_ref(codes: np.ndarray, d: float) -> bytes:
    def trits(vals: list[int], pad: int = 0) -> int:
        q = 0
        for v in vals:
            q = q * 3 + v + 1
        q *= 3**pad
        return (q * 256 + 242) // 243

    out = b""
    for b in range(len(codes) // 256):
        x = [int(v) for v in codes[256 * b : 256 * (b + 1)]]
        qs = [trits([x[m + n * 32] for n in range(5)]) for m in range(32)]
        qs += [trits([x[160 + m + n * 16] for n in range(5)]) for m in range(16)]
        qh = [trits([x[240 + j + m * 4] for m in range(4)], pad=1) for j in range(4)]
        out += bytes(qs) + bytes(qh) + np.float16(d).tobytes()
    return out


def _i2s_ref(codes: np.ndarray, scale: float) -> bytes:
    n = len(codes)
    q8 = [int(v) + 1 for v in codes]  # the C code's sign test gives the same 0/1/2
    dst = bytearray(n // 4)
    for i in range(n // 128):
        for j in range(128):
            group_idx, group_pos = j // 32, j % 32
            dst[i * 32 + group_pos] |= q8[i * 128 + j] << (6 - 2 * group_idx)
    return bytes(dst) + struct.pack("<f", scale) + bytes(28)


@pytest.mark.parametrize(
    ("qtype", "ref", "block_bytes"),
    [(GGMLQuantizationType.TQ2_0, _tq2_0_ref, 66), (GGMLQuantizationType.TQ1_0, _tq1_0_ref, 54)],
)
def test_tq_bytes_match_ggml_reference(qtype, ref, block_bytes):
    codes = _codes(1024)
    d = fp16_scale(SCALE)
    ours = quants.quantize(codes.astype(np.float32) * d, qtype)  # what codec.add_ternary writes
    assert ours.nbytes == 4 * block_bytes
    assert ours.tobytes() == ref(codes, SCALE)
    back = quants.dequantize(ours, qtype).reshape(-1)
    assert np.array_equal(back, codes.astype(np.float32) * d)


def test_i2s_bytes_match_bitnet_cpp_reference():
    codes = _codes(512, seed=1)
    data = pack_i2s(codes, SCALE)
    assert data.nbytes == i2s_nbytes(512) == 512 // 4 + 32
    assert data.tobytes() == _i2s_ref(codes, SCALE)
    back, scale = unpack_i2s(data, 512)
    assert np.array_equal(back, codes) and scale == np.float32(SCALE)


def test_decode_ternary_ignores_all_zero_blocks():
    """An all-zero TQ block has d = 0; the tensor's scale comes from the others."""

    class T:  # the fields decode_ternary reads from a ReaderTensor
        name = "t"
        tensor_type = GGMLQuantizationType.TQ2_0
        shape = np.array([512, 1])

    codes = _codes(512)
    codes[:256] = 0
    T.data = quants.quantize(codes.astype(np.float32)[None] * fp16_scale(SCALE), T.tensor_type)
    got, scale = decode_ternary(T)
    assert np.array_equal(got.reshape(-1), codes) and scale == fp16_scale(SCALE)
