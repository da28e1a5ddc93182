"""The engine's Q8_0 x int8 kernels (``inference/csrc/kernels/q8_0_int8.h``) on GGUF files.

A numpy model of the numerics the header defines (int8 activations per
32-value block, exact integer lanes of 4 values, then float32 fused
multiply-adds into an even-block and an odd-block accumulator and a fixed
reduction tree) must match ``forward`` bit for bit for every ISA, thread count
and token count; a token gives the same logits alone (GEMV) as in a batch
(GEMM). The error against the float64 product of the dequantized weights stays
within the bound derived from the activation rounding. Rows written by gguf-py's
quantizer never hold the code -128; rows written byte by byte here do.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from int8_head_checks import (
    QK,
    assert_exact_alone_and_batched,
    assert_non_finite_token_gives_nan,
    assert_within_bound,
    fma32,
    quantize_acts,
    special_tokens,
)

from ternlab.export.codec import add_float, expected_float
from ternlab.inference import _kernels as K

ISAS = K.available_isas()
U = 2.0**-24  # float32 unit roundoff
BLOCK_BYTES = 34  # fp16 d, then 32 int8 codes
Q8_0 = 8  # the GGML type id


@pytest.fixture(autouse=True)
def _restore_isa():
    before = K.current_isa()
    yield
    K.set_isa(before)


def write_q8_0(tmp_path: Path, w: np.ndarray) -> Path:
    """``w`` written as Q8_0 by gguf-py's encoder."""
    path = tmp_path / "q8_0.gguf"
    writer = gguf.GGUFWriter(path, "bitnet")
    add_float(writer, "w", w, "q8_0")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_raw(tmp_path: Path, raw: np.ndarray) -> Path:
    """Q8_0 blocks given byte by byte ([n_out, nb * 34] uint8)."""
    path = tmp_path / "raw.gguf"
    writer = gguf.GGUFWriter(path, "bitnet")
    writer.add_tensor("w", raw, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def weights(r: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Rows of different magnitudes, a zero row and a zero block when they fit."""
    w = r.standard_normal((n_out, n_in)) * r.uniform(0.01, 1.0, size=(n_out, 1))
    if n_out > 2:
        w[1] = 0
    if n_out > 3:
        w[3, 32:64] = 0
    return w.astype(np.float32)


def full_range_blocks(r: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Raw Q8_0 rows: codes over all of -128..127 (values 4 and 5 of every block -128),
    random fp16 d."""
    nb = n_in // QK
    q = r.integers(-128, 128, (n_out, nb, QK)).astype(np.int8)
    q[..., 4:6] = -128
    d = (r.uniform(0.001, 0.1, (n_out, nb, 1)) * r.choice([-1, 1], (n_out, nb, 1))).astype(
        np.float16
    )
    return np.concatenate([d.view(np.uint8), q.view(np.uint8)], axis=-1).reshape(n_out, -1)


def blocks_of(raw: np.ndarray):
    """(codes q [n_out, nb, 32] int64, d [n_out, nb] float32) of Q8_0 rows."""
    b = raw.reshape(raw.shape[0], -1, BLOCK_BYTES)
    d = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    return b[..., 2:].copy().view(np.int8).astype(np.int64), d


def encode(w: np.ndarray) -> np.ndarray:
    """w as gguf-py's Q8_0 bytes; the test's decoder agrees with the exporter's."""
    raw = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0).reshape(w.shape[0], -1)
    q, d = blocks_of(raw)
    np.testing.assert_array_equal((d[..., None] * q).reshape(w.shape), expected_float(w, "q8_0"))
    return raw


def dequantized(raw: np.ndarray) -> np.ndarray:
    q, d = blocks_of(raw)
    return (d[..., None].astype(np.float64) * q).reshape(raw.shape[0], -1)


def reference(raw: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y [T, n_out] as q8_0_int8.h defines it."""
    q, d = blocks_of(raw)
    codes, s = quantize_acts(x)
    T, (n_out, nb) = x.shape[0], d.shape
    f = d[None] * (np.float32(1) / s)[:, None]  # F_b [T, n_out, nb], float32
    assert f.dtype == np.float32
    lanes = (q[None] * codes[:, None]).reshape(T, n_out, nb, 8, 4).sum(-1)  # values 4l..4l+3
    assert np.abs(lanes).max(initial=0) <= 2**16
    acc = np.zeros((2, T, n_out, 8), np.float32)  # E, O
    for b in range(nb):
        acc[b & 1] = fma32(lanes[:, :, b], f[:, :, b, None], acc[b & 1])
    S = acc[0] + acc[1]
    return ((S[..., 0] + S[..., 4]) + (S[..., 2] + S[..., 6])) + (
        (S[..., 1] + S[..., 5]) + (S[..., 3] + S[..., 7])
    )


def error_bound(raw: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|y - x @ deq(w)^T| in exact arithmetic, per output.

    Activations: code / s is within (0.5 + 128 U) / s of x (as for Q4_0). Float32:
    each lane term P F_b carries two roundings (r = 1 / s, F = d r), then one per
    fma of its accumulator from its own on (at most ceil(nb / 2)), E + O, and
    three additions of the tree: gamma_n with n = ceil(nb / 2) + 6 of the sum of
    |term| <= sum_k |w_k code_k| / s.
    """
    deq = dequantized(raw)
    codes, s = quantize_acts(x)
    nb = s.shape[1]
    aw = np.abs(deq).reshape(raw.shape[0], nb, QK)
    act = np.einsum("ob,tb->to", aw.sum(-1), (0.5 + 128 * U) / s.astype(np.float64))
    terms = np.einsum("obk,tbk->to", aw, np.abs(codes) / s.astype(np.float64)[..., None])
    n = (nb + 1) // 2 + 6
    return act + n * U / (1 - n * U) * terms + 1e-30


# Block counts 1, 3 (odd: a lone last block), 7 and 9 (a short last group), 80 and 216
# (the 2b shape's 2560 and 6912: past the float kernels' column-panel limit).
SHAPES = [(1, 32), (37, 96), (51, 224), (19, 288), (37, 2560), (9, 6912)]


@pytest.mark.parametrize("n_out,n_in", SHAPES)
def test_forward_bit_exact(tmp_path, n_out, n_in):
    r = np.random.default_rng(n_out + n_in)
    raw = encode(weights(r, n_out, n_in))
    lin = K.load_linear(str(write_raw(tmp_path, raw)), "w")
    assert (lin.n_out, lin.n_in, lin.type, lin.panel_k) == (n_out, n_in, Q8_0, 0)
    for t in (1, 2, 7, 9):
        x = (r.standard_normal((t, n_in)) * r.uniform(0.1, 10)).astype(np.float32)
        want = reference(raw, x)
        for isa in ISAS:
            K.set_isa(isa)
            for threads in (1, 2, 3):
                y = lin.forward(x, threads=threads)
                assert y.dtype == np.float32 and y.shape == (t, n_out)
                np.testing.assert_array_equal(y, want, err_msg=f"{isa} T={t} threads={threads}")
            # The GEMV (one token) gives each row of the GEMM (a batch).
            for i in range(t):
                np.testing.assert_array_equal(lin.forward(x[i : i + 1])[0], want[i], err_msg=isa)


@pytest.mark.parametrize("n_in", [96, 2560])
def test_full_code_range_bit_exact(tmp_path, n_in):
    # Two -128 weights meet two -127 activation codes: the AVX2 kernel's pair sum of
    # |q| (128) times the sign-moved codes (127) is 32512, near its int16 limit.
    r = np.random.default_rng(n_in)
    raw = full_range_blocks(r, 23, n_in)
    lin = K.load_linear(str(write_raw(tmp_path, raw)), "w")
    x = r.standard_normal((4, n_in)).astype(np.float32)
    x[0, 4::32] = x[0, 5::32] = -10  # each block's largest: codes -127
    q0 = raw.reshape(23, -1, BLOCK_BYTES)[0, :, 2:].copy().view(np.int8).ravel()
    x[1] = np.where(q0 < 0, -1, 1)  # codes +-127 with row 0's signs: its largest sums
    want = reference(raw, x)
    assert_exact_alone_and_batched(lin, x, want)
    exact = x.astype(np.float64) @ dequantized(raw).T
    assert_within_bound(lin, x, exact, error_bound(raw, x))


@pytest.mark.parametrize("n_in", [64, 224, 2560])
def test_special_tokens(tmp_path, n_in):
    r = np.random.default_rng(n_in)
    raw = encode(weights(r, 19, n_in))
    x = special_tokens(r, n_in, QK)
    want = reference(raw, x)
    assert (want[0] == 0).all()
    assert_exact_alone_and_batched(K.load_linear(str(write_raw(tmp_path, raw)), "w"), x, want)


@pytest.mark.parametrize("n_out,n_in", [(37, 288), (51, 2560)])
def test_error_within_bound(tmp_path, n_out, n_in):
    r = np.random.default_rng(7 * n_out + n_in)
    w = weights(r, n_out, n_in)
    x = np.concatenate([r.standard_normal((6, n_in)), special_tokens(r, n_in, QK)])
    x = x.astype(np.float32)
    exact = x.astype(np.float64) @ expected_float(w, "q8_0").astype(np.float64).T
    lin = K.load_linear(str(write_q8_0(tmp_path, w)), "w")
    assert_within_bound(lin, x, exact, error_bound(encode(w), x))


def test_non_finite_token_gives_nan(tmp_path):
    r = np.random.default_rng(3)
    raw = encode(weights(r, 21, 224))
    x = r.standard_normal((3, 224)).astype(np.float32)
    x[1, 100] = np.inf
    lin = K.load_linear(str(write_raw(tmp_path, raw)), "w")
    assert_non_finite_token_gives_nan(lin, x, reference(raw, x[[0, 2]]))


def test_dequantize_row_reads_the_file_not_the_repacked_rows(tmp_path):
    raw = full_range_blocks(np.random.default_rng(5), 9, 288)
    path = write_raw(tmp_path, raw)
    K.load_linear(str(path), "w")
    want = dequantized(raw).astype(np.float32)
    for row in range(9):
        np.testing.assert_array_equal(K.dequantize_row(str(path), "w", row), want[row])
