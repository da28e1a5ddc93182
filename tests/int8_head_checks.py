"""Checks shared by the tests of the engine's int8-activation kernels (Q6_K, Q4_0, Q8_0).

Each kernel's test file brings its own numpy model of the numerics (``want``) and
its error bound; what is checked against them is the same for all. The per-32-value
activation quantizer and the exact fma are shared by the Q4_0 and Q8_0 models.
"""

from __future__ import annotations

import numpy as np

from ternlab.inference import _kernels as K

EPS = np.float32(1e-5)  # the activation quantizer's EPS (quant_act.h)
QK = 32  # values per Q4_0 / Q8_0 block, and per activation block of their kernels


def quantize_acts(x: np.ndarray):
    """Per 32-value block: codes [T, nb, 32] and s [T, nb], all float32 steps."""
    xb = x.reshape(x.shape[0], -1, QK)
    m = np.maximum(np.abs(xb).max(axis=-1), EPS)
    s = (np.float32(1) / m) * np.float32(127)
    codes = np.clip(np.rint(xb * s[..., None]), -128, 127).astype(np.int64)
    return codes, s


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 fma(a, b, c), correctly rounded, elementwise.

    a b is exact in float64 (a an integer of at most 17 bits, b 24 bits). The
    float64 sum of it and c may round; TwoSum gives that rounding error e
    exactly, and rounding the sum to odd (s, or its float64 neighbour towards
    e when s has an even significand) keeps enough information that one
    rounding to float32 (24 bits <= 53 - 2) gives the correctly rounded result.
    """
    p = a.astype(np.float64) * b.astype(np.float64)
    c = c.astype(np.float64)
    s = p + c
    bp = s - c
    e = (p - bp) + (c - (s - bp))
    even = (s.view(np.uint64) & 1) == 0
    odd = np.where((e != 0) & even, np.nextafter(s, np.copysign(np.inf, e)), s)
    return odd.astype(np.float32)


def special_tokens(r: np.random.Generator, n_in: int, block: int) -> np.ndarray:
    """Zero, an outlier, magnitudes varying per activation block, tiny values, exact ties."""
    zero = np.zeros(n_in)
    outlier = r.standard_normal(n_in)
    outlier[n_in // 3] = 1e6  # its block's other codes all round to 0
    blocky = r.standard_normal(n_in) * np.repeat(10.0 ** r.integers(-4, 5, n_in // block), block)
    tiny = r.standard_normal(n_in) * 1e-7  # below EPS: s = 127 / EPS, codes small
    ties = np.round(r.standard_normal(n_in) * 8) / 2  # many exact .5 multiples
    ties[0] = 127 / 2
    return np.stack([zero, outlier, blocky, tiny, ties]).astype(np.float32)


def assert_exact_alone_and_batched(lin, x: np.ndarray, want: np.ndarray) -> None:
    """Every ISA gives ``want`` bit for bit, in a batch (2 threads) and token by token."""
    for isa in K.available_isas():
        K.set_isa(isa)
        np.testing.assert_array_equal(lin.forward(x, threads=2), want, err_msg=isa)
        for i in range(len(x)):
            np.testing.assert_array_equal(lin.forward(x[i : i + 1])[0], want[i], err_msg=isa)


def assert_within_bound(lin, x: np.ndarray, exact: np.ndarray, bound: np.ndarray) -> None:
    """|y - exact| <= bound on every ISA, and the bound is not slack: the first 6 tokens
    (random ones) use a good part of it."""
    for isa in K.available_isas():
        K.set_isa(isa)
        err = np.abs(lin.forward(x).astype(np.float64) - exact)
        assert (err <= bound).all(), f"{isa}: max error / bound {np.max(err / bound):.3g}"
        assert np.max((err / bound)[:6]) > 0.01, isa


def assert_non_finite_token_gives_nan(lin, x: np.ndarray, want_others: np.ndarray) -> None:
    """``x`` has 3 tokens, the middle one non-finite: NaN for it alone (GEMM and GEMV), the
    others ``want_others`` bit for bit."""
    for isa in K.available_isas():
        K.set_isa(isa)
        for rows in (x, x[1:2]):  # GEMM and GEMV
            y = lin.forward(rows, threads=2)
            assert np.isnan(y[1 if len(rows) == 3 else 0]).all(), isa
        np.testing.assert_array_equal(lin.forward(x)[[0, 2]], want_others, err_msg=isa)
