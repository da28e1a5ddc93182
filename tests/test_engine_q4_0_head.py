"""The engine's Q4_0 x int8 kernels (``inference/csrc/kernels/q4_0_int8.h``) on GGUF files.

A numpy model of the numerics the header defines (int8 activations per
32-value block, exact integer lanes per pair of blocks, then float32 fused
multiply-adds into an even and an odd accumulator and a fixed reduction tree)
must match ``forward`` bit for bit for every ISA, thread count and token
count; a token gives the same logits alone (GEMV) as in a batch (GEMM). The
error against the float64 product of the dequantized weights stays within the
bound derived from the activation rounding.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from int8_head_checks import (
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
QK = 32  # values per Q4_0 block
BLOCK_BYTES = 18  # fp16 d, then 16 bytes of nibbles
Q4_0 = 2  # the GGML type id


@pytest.fixture(autouse=True)
def _restore_isa():
    before = K.current_isa()
    yield
    K.set_isa(before)


def write_q4_0(tmp_path: Path, w: np.ndarray) -> Path:
    """``w`` written as Q4_0 by gguf-py's encoder."""
    path = tmp_path / "q4_0.gguf"
    writer = gguf.GGUFWriter(path, "bitnet")
    add_float(writer, "w", w, "q4_0")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def q4_0_linear(tmp_path: Path, w: np.ndarray):
    """``w`` written as Q4_0 and loaded by the engine."""
    return K.load_linear(str(write_q4_0(tmp_path, w)), "w")


def weights(r: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Rows of different magnitudes, a zero row and a zero block when they fit."""
    w = r.standard_normal((n_out, n_in)) * r.uniform(0.01, 1.0, size=(n_out, 1))
    if n_out > 2:
        w[1] = 0
    if n_out > 3:
        w[3, 32:64] = 0
    return w.astype(np.float32)


def blocks_of(w: np.ndarray):
    """(levels q - 8 in -8..7 [n_out, nb, 32], d [n_out, nb] float32) of w as Q4_0."""
    b = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0)
    b = b.reshape(w.shape[0], -1, BLOCK_BYTES)
    d = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = b[..., 2:].astype(np.int64)
    q = np.concatenate([qs & 15, qs >> 4], axis=-1) - 8  # value v < 16: low nibble of qs[v]
    # The test's decoder agrees with gguf-py's (through the exporter's expected_float).
    deq = d[..., None] * q.astype(np.float32)
    np.testing.assert_array_equal(deq.reshape(w.shape), expected_float(w, "q4_0"))
    return q, d


def reference(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y [T, n_out] as q4_0_int8.h defines it."""
    q, d = blocks_of(w)
    codes, s = quantize_acts(x)
    n_out, nb = d.shape
    r = np.float32(1) / s  # [T, nb]
    f = d[None] * r[:, None]  # F_b [T, n_out, nb], float32
    assert f.dtype == np.float32
    prod = q[None] * codes[:, None]  # [T, n_out, nb, 32]
    # Lane m of a block: values 4m..4m+3 and 16+4m..16+4m+3.
    lanes = prod.reshape(*prod.shape[:-1], 2, 4, 4).sum(axis=(-3, -1))  # [T, n_out, nb, 4]
    assert np.abs(lanes).max(initial=0) <= 2**13
    acc = np.zeros((2, x.shape[0], n_out, 8), np.float32)  # E, O
    for p in range(nb // 2):
        pl = lanes[:, :, 2 * p : 2 * p + 2].reshape(x.shape[0], n_out, 8)
        pf = np.repeat(f[:, :, 2 * p : 2 * p + 2], 4, axis=-1)
        acc[p & 1] = fma32(pl, pf, acc[p & 1])
    S = acc[0] + acc[1]
    return ((S[..., 0] + S[..., 4]) + (S[..., 2] + S[..., 6])) + (
        (S[..., 1] + S[..., 5]) + (S[..., 3] + S[..., 7])
    )


def error_bound(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|y - x @ deq(w)^T| in exact arithmetic, per output.

    Activations: code = round(fl(x s)) is within 0.5 + 127 U of x s, so code / s
    is within (0.5 + 128 U) / s of x. Float32: each lane term P F_b carries two
    roundings (r = 1 / s, F = d r), then one per fma of its accumulator from
    its own on (at most ceil(np / 2) for np pairs), E + O, and three additions
    of the tree: gamma_n with n = ceil(np / 2) + 6 of the sum of
    |term| <= sum_k |w_k code_k| / s.
    """
    deq = expected_float(w, "q4_0").astype(np.float64)
    codes, s = quantize_acts(x)
    nb = s.shape[1]
    aw = np.abs(deq).reshape(w.shape[0], nb, QK)
    act = np.einsum("ob,tb->to", aw.sum(-1), (0.5 + 128 * U) / s.astype(np.float64))
    terms = np.einsum("obk,tbk->to", aw, np.abs(codes) / s.astype(np.float64)[..., None])
    n = (nb // 2 + 1) // 2 + 6
    return act + n * U / (1 - n * U) * terms + 1e-30


def test_fma_model():
    """fma32 is a correctly rounded fma where float64 then float32 rounding is not.

    6605 * 162565 = 2^30 + 1 and 10261 * 104643 = 2^30 - 1: the exact sums lie
    2^-54 off a float32 midpoint, which float64 rounds onto the midpoint.
    """
    a = np.array([3, 1, 6605, -10261], np.float32)
    b = np.array([1, 2**-24, 162565 * 2.0**-54, -104643 * 2.0**-54], np.float32)
    c = np.array([2, 1, 1, 1 + 2**-23], np.float32)
    want = np.array([5, 1, 1 + 2**-23, 1 + 2**-23], np.float32)
    np.testing.assert_array_equal(fma32(a, b, c), want)
    naive = (a.astype(np.float64) * b + c).astype(np.float32)
    np.testing.assert_array_equal(naive[2:], np.array([1, 1 + 2**-22], np.float32))


@pytest.mark.parametrize(
    "n_out,n_in", [(1, 64), (37, 192), (51, 320), (19, 384), (19, 448), (37, 2560)]
)
def test_forward_bit_exact(tmp_path, n_out, n_in):
    r = np.random.default_rng(n_out + n_in)
    w = weights(r, n_out, n_in)
    lin = q4_0_linear(tmp_path, w)
    assert (lin.n_out, lin.n_in, lin.type) == (n_out, n_in, Q4_0)
    for t in (1, 2, 7, 9):
        x = (r.standard_normal((t, n_in)) * r.uniform(0.1, 10)).astype(np.float32)
        want = reference(w, x)
        for isa in ISAS:
            K.set_isa(isa)
            for threads in (1, 2, 3):
                y = lin.forward(x, threads=threads)
                assert y.dtype == np.float32 and y.shape == (t, n_out)
                np.testing.assert_array_equal(y, want, err_msg=f"{isa} T={t} threads={threads}")
            # The GEMV (one token) gives each row of the GEMM (a batch).
            for i in range(t):
                np.testing.assert_array_equal(lin.forward(x[i : i + 1])[0], want[i], err_msg=isa)


@pytest.mark.parametrize("n_in", [64, 192, 2560])
def test_special_tokens(tmp_path, n_in):
    r = np.random.default_rng(n_in)
    w = weights(r, 19, n_in)
    x = special_tokens(r, n_in, QK)
    want = reference(w, x)
    assert (want[0] == 0).all()
    assert_exact_alone_and_batched(q4_0_linear(tmp_path, w), x, want)


@pytest.mark.parametrize("n_out,n_in", [(37, 320), (51, 2560)])
def test_error_within_bound(tmp_path, n_out, n_in):
    r = np.random.default_rng(7 * n_out + n_in)
    w = weights(r, n_out, n_in)
    x = np.concatenate([r.standard_normal((6, n_in)), special_tokens(r, n_in, QK)])
    x = x.astype(np.float32)
    exact = x.astype(np.float64) @ expected_float(w, "q4_0").astype(np.float64).T
    assert_within_bound(q4_0_linear(tmp_path, w), x, exact, error_bound(w, x))


def test_non_finite_token_gives_nan(tmp_path):
    r = np.random.default_rng(3)
    w = weights(r, 21, 192)
    x = r.standard_normal((3, 192)).astype(np.float32)
    x[1, 100] = np.inf
    assert_non_finite_token_gives_nan(q4_0_linear(tmp_path, w), x, reference(w, x[[0, 2]]))


def test_rows_not_pairs_of_blocks_refused(tmp_path):
    path = write_q4_0(tmp_path, np.ones((4, 96), np.float32))
    with pytest.raises(K.GGUFError, match=r"tensor 'w' \(Q4_0\).*96 values.*multiple of 64"):
        K.load_linear(str(path), "w")


def test_dequantize_row(tmp_path):
    w = weights(np.random.default_rng(5), 9, 192)
    path = write_q4_0(tmp_path, w)
    want = expected_float(w, "q4_0")
    for row in range(9):
        np.testing.assert_array_equal(K.dequantize_row(str(path), "w", row), want[row])
