"""The engine's Q6_K x int8 kernels (``inference/csrc/kernels/q6k_int8.h``) on GGUF files.

A numpy model of the numerics the header defines (int8 activations per
256-value block, exact integer block sums, then float32 steps in order) must
match ``forward`` bit for bit for every ISA, thread count and token count; a
token gives the same logits alone (GEMV) as in a batch (GEMM). The error
against the float64 product of the dequantized weights stays within the bound
derived from the activation rounding.
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
    special_tokens,
)

from ternlab.export.codec import add_float, expected_float
from ternlab.export.q6k import BLOCK_BYTES, QK_K, quantize_q6_k
from ternlab.inference import _kernels as K

ISAS = K.available_isas()
U = 2.0**-24  # float32 unit roundoff
EPS = np.float32(1e-5)  # the activation quantizer's EPS (quant_act.h)


@pytest.fixture(autouse=True)
def _restore_isa():
    before = K.current_isa()
    yield
    K.set_isa(before)


def q6k_linear(tmp_path: Path, w: np.ndarray):
    """``w`` written as Q6_K and loaded by the engine."""
    path = tmp_path / "q6k.gguf"
    writer = gguf.GGUFWriter(path, "bitnet")
    add_float(writer, "w", w, "q6_k")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return K.load_linear(str(path), "w")


def weights(r: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Rows of different magnitudes, a zero row and a zero block when they fit."""
    w = r.standard_normal((n_out, n_in)) * r.uniform(0.01, 1.0, size=(n_out, 1))
    if n_out > 2:
        w[1] = 0
    if n_out > 3 and n_in >= 512:
        w[3, 256:512] = 0
    return w.astype(np.float32)


def blocks_of(w: np.ndarray):
    """(levels 0..63 [n_out, nb, 256], int8 scales [n_out, nb, 16], d [n_out, nb] float32)."""
    b = quantize_q6_k(w).reshape(w.shape[0], -1, BLOCK_BYTES)
    ql, qh = b[..., :128].astype(np.int64), b[..., 128:192].astype(np.int64)
    q = np.empty(b.shape[:-1] + (QK_K,), np.int64)
    for half in range(2):  # the layout of q6k.h / ggml's dequantize_row_q6_K
        lo = ql[..., 64 * half : 64 * half + 32]
        hi = ql[..., 64 * half + 32 : 64 * half + 64]
        h = qh[..., 32 * half : 32 * half + 32]
        y = q[..., 128 * half : 128 * half + 128]
        y[..., 0:32] = (lo & 15) | ((h & 3) << 4)
        y[..., 32:64] = (hi & 15) | (((h >> 2) & 3) << 4)
        y[..., 64:96] = (lo >> 4) | (((h >> 4) & 3) << 4)
        y[..., 96:128] = (hi >> 4) | (((h >> 6) & 3) << 4)
    sc = b[..., 192:208].view(np.int8).astype(np.int64)
    d = b[..., 208:210].copy().view(np.float16)[..., 0].astype(np.float32)
    # The test's decoder agrees with gguf-py's (through the exporter's expected_float).
    deq = d[..., None] * (np.repeat(sc, 16, axis=-1) * (q - 32)).astype(np.float32)
    np.testing.assert_array_equal(deq.reshape(w.shape), expected_float(w, "q6_k"))
    return q, sc, d


def quantize_acts(x: np.ndarray):
    """Per 256-value block: codes [T, nb, 256] and s [T, nb], all float32 steps."""
    xb = x.reshape(x.shape[0], -1, QK_K)
    m = np.maximum(np.abs(xb).max(axis=-1), EPS)
    s = (np.float32(1) / m) * np.float32(127)
    codes = np.clip(np.rint(xb * s[..., None]), -128, 127).astype(np.int64)
    return codes, s


def reference(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y [T, n_out] as q6k_int8.h defines it."""
    q, sc, d = blocks_of(w)
    codes, s = quantize_acts(x)
    n_out, nb = d.shape
    prod = (q - 32)[None] * codes[:, None]  # [T, n_out, nb, 256]
    sub = prod.reshape(*prod.shape[:-1], 16, 16).sum(-1)
    isum = (sub * sc[None]).sum(-1)  # [T, n_out, nb], exact
    assert np.abs(isum).max(initial=0) < 2**27
    f = d[None] / s[:, None]  # float32
    acc = np.zeros((x.shape[0], n_out), np.float32)
    for b in range(nb):
        acc = acc + isum[..., b].astype(np.float32) * f[..., b]
    return acc


def error_bound(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|y - x @ deq(w)^T| in exact arithmetic, per output.

    Activations: code = round(fl(x s)) is within 0.5 + 127 U of x s, so code / s
    is within (0.5 + 128 U) / s of x. Float32: three roundings per block term
    (float(isum), d / s, the product) and nb - 1 additions: gamma_(nb + 2) of
    the sum of |term| <= sum_k |w_k code_k| / s.
    """
    deq = expected_float(w, "q6_k").astype(np.float64)
    codes, s = quantize_acts(x)
    nb = s.shape[1]
    aw = np.abs(deq).reshape(w.shape[0], nb, QK_K)
    act = np.einsum("ob,tb->to", aw.sum(-1), (0.5 + 128 * U) / s.astype(np.float64))
    terms = np.einsum("obk,tbk->to", aw, np.abs(codes) / s.astype(np.float64)[..., None])
    n = nb + 2
    return act + n * U / (1 - n * U) * terms + 1e-30


@pytest.mark.parametrize("n_out,n_in", [(1, 256), (37, 512), (51, 2560)])
def test_forward_bit_exact(tmp_path, n_out, n_in):
    r = np.random.default_rng(n_out + n_in)
    w = weights(r, n_out, n_in)
    lin = q6k_linear(tmp_path, w)
    assert (lin.n_out, lin.n_in, lin.type) == (n_out, n_in, 14)
    # AVX-512 runs up to 32 tokens per pass over the rows: 33 and 41 take two passes,
    # the last of one token (the GEMV) or several.
    for t in (1, 2, 7, 8, 9, 16, 32, 33, 41):
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
                np.testing.assert_array_equal(lin.forward(x[i : i + 1])[0], want[i])


@pytest.mark.parametrize("n_in", [256, 512, 2560])
def test_special_tokens(tmp_path, n_in):
    r = np.random.default_rng(n_in)
    w = weights(r, 19, n_in)
    x = special_tokens(r, n_in, QK_K)
    want = reference(w, x)
    assert (want[0] == 0).all()
    assert_exact_alone_and_batched(q6k_linear(tmp_path, w), x, want)


@pytest.mark.parametrize("n_out,n_in", [(37, 512), (51, 2560)])
def test_error_within_bound(tmp_path, n_out, n_in):
    r = np.random.default_rng(7 * n_out + n_in)
    w = weights(r, n_out, n_in)
    x = np.concatenate([r.standard_normal((6, n_in)), special_tokens(r, n_in, QK_K)])
    x = x.astype(np.float32)
    exact = x.astype(np.float64) @ expected_float(w, "q6_k").astype(np.float64).T
    assert_within_bound(q6k_linear(tmp_path, w), x, exact, error_bound(w, x))


def test_non_finite_token_gives_nan(tmp_path):
    r = np.random.default_rng(3)
    w = weights(r, 21, 512)
    x = r.standard_normal((3, 512)).astype(np.float32)
    x[1, 300] = np.inf
    lin = q6k_linear(tmp_path, w)
    assert_non_finite_token_gives_nan(lin, x, reference(w, x[[0, 2]]))
    # In both of AVX-512's passes (32 tokens, then 8): only the bad tokens are NaN.
    x = r.standard_normal((40, 512)).astype(np.float32)
    bad = [3, 37]
    x[bad, 7] = np.nan
    good = [t for t in range(40) if t not in bad]
    want = reference(w, x[good])
    for isa in ISAS:
        K.set_isa(isa)
        y = lin.forward(x, threads=2)
        assert np.isnan(y[bad]).all(), isa
        np.testing.assert_array_equal(y[good], want, err_msg=isa)
