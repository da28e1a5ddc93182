"""The C++ ternary kernels (ternlab.inference.kernels) against the PyTorch reference.

Integer results must be exact (vs int64 numpy) and float results bit-equal to
``BitLinear.freeze()`` for every ISA this CPU can run, every thread count, and
shapes that exercise every tail of the SIMD loops.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ternlab.bitlinear import BitLinear, act_quant
from ternlab.inference import kernels as tk

ALL_ISAS = tk.known_isas()
AVAILABLE = tk.available_isas()
SKIP_REASON = {
    "avx512": "this CPU lacks AVX-512 F/BW/VL/DQ/VNNI and no emulator is available here "
    "(Intel SDE cannot be downloaded; qemu-user does not emulate AVX-512)",
    "avx512vbmi": "this CPU lacks AVX-512 VBMI (or F/BW/VL/DQ/VNNI) and no emulator is "
    "available here",
    "amx": "this CPU (or its OS) lacks AMX-INT8 tiles, or AVX-512 VBMI",
    "avx2": "this CPU lacks AVX2+FMA",
    "avxvnni": "this CPU lacks AVX-VNNI (Intel Alder Lake and later, AMD Zen 5)",
    "neon": "NEON kernels are compiled and run on aarch64 only",
    "neondot": "NEON dot-product kernels run on aarch64 CPUs with sdot only (ARMv8.2+)",
}
# K values around every SIMD width (16/32/64 bytes), the 256- and 320-code
# super-blocks, plus one past a 4096-column (3840 base-3) GEMM panel.
KS = [1, 3, 31, 33, 127, 129, 255, 257, 319, 321, 1000, 4097 + 256]
LAYOUTS = list(tk.LAYOUTS)


def isa_param(name: str):
    marks = [] if name in AVAILABLE else [pytest.mark.skip(reason=SKIP_REASON.get(name, "n/a"))]
    return pytest.param(name, marks=marks, id=name)


ISAS = [isa_param(n) for n in ALL_ISAS]


@pytest.fixture(autouse=True)
def _restore_isa():
    before = tk.current_isa()
    yield
    tk.set_isa(before)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def ternary(r: np.random.Generator, n: int, k: int) -> np.ndarray:
    return r.integers(-1, 2, size=(n, k)).astype(np.int8)


def ref_int(xcodes: np.ndarray, wcodes: np.ndarray) -> np.ndarray:
    return xcodes.astype(np.int64) @ wcodes.astype(np.int64).T


# -- activation quantization ------------------------------------------------------


def assert_act_quant_exact(x: np.ndarray) -> None:
    ref = act_quant(torch.from_numpy(x))
    for isa in AVAILABLE:
        tk.set_isa(isa)
        codes, s_x = tk.quantize_activations(x)
        assert codes.dtype == np.int8 and s_x.dtype == np.float32
        np.testing.assert_array_equal(codes, ref.codes.numpy(), err_msg=isa)
        np.testing.assert_array_equal(s_x, ref.inv_scale.numpy()[:, 0], err_msg=isa)


@pytest.mark.parametrize("k", KS)
def test_act_quant_random_bit_exact(k):
    r = rng(k)
    x = (r.standard_normal((5, k)) * r.uniform(1e-3, 1e3, size=(5, 1))).astype(np.float32)
    assert_act_quant_exact(x)


def test_act_quant_ties_round_half_to_even():
    # max 127 -> s_x == 1.0 exactly and max 254 -> s_x == 0.5: every x.5 is a tie.
    halves = np.arange(-126.5, 127, 1.0, dtype=np.float32)
    row1 = np.concatenate([[127.0], halves]).astype(np.float32)
    odds = np.arange(-253, 254, 2, dtype=np.float32)
    row2 = np.concatenate([[254.0], odds[: len(row1) - 1]]).astype(np.float32)
    x = np.stack([row1, row2])
    assert_act_quant_exact(x)
    codes, _ = tk.quantize_activations(x)
    assert codes[0, 1 + list(halves).index(0.5)] == 0 and codes[0, 1 + list(halves).index(1.5)] == 2


def test_act_quant_zero_saturated_tiny_single_row():
    k = 45
    x = np.zeros((4, k), np.float32)
    x[1] = np.linspace(-3e38, 3e38, k, dtype=np.float32)  # near float32 max
    x[2] = np.float32(1e-30) * np.arange(k, dtype=np.float32)  # below EPS: clamped max
    x[3, ::7] = -5.0
    assert_act_quant_exact(x)
    codes, s_x = tk.quantize_activations(x)
    assert not codes[0].any() and np.isfinite(s_x).all()
    assert_act_quant_exact(x[1:2].copy())  # a single row


def test_act_quant_rejects_non_finite():
    for bad in (np.inf, -np.inf, np.nan):
        for pos in (0, 40):  # in the SIMD body and in the scalar tail
            x = np.ones((3, 41), np.float32)
            x[2, pos] = bad
            for isa in AVAILABLE:
                tk.set_isa(isa)
                with pytest.raises(ValueError, match="non-finite value in row 2"):
                    tk.quantize_activations(x)
                with pytest.raises(ValueError, match="non-finite"):
                    tk.ternary_matmul(tk.pack_ternary_weights(ternary(rng(), 2, 41)), 1.0, x)


# -- packing -----------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("k", KS)
def test_pack_round_trip(k, layout):
    w = ternary(rng(k), 7, k)
    packed = tk.pack_ternary_weights(w, layout)
    block = tk.QK if layout == "bits2" else tk.QK3
    assert packed.data.dtype == np.uint8 and packed.layout == layout
    assert packed.data.shape == (7, tk.packed_row_bytes(k, layout)) == (7, -(-k // block) * 64)
    np.testing.assert_array_equal(tk.unpack_ternary_weights(packed), w)


def test_pack_layout():
    # Byte i of a super-block holds codes 64*j + i in bits 2j..2j+1 as code + 1.
    w = np.zeros((1, 300), np.int8)
    w[0, 0], w[0, 64], w[0, 128], w[0, 192] = 1, -1, 1, 1  # byte 0: fields 2, 0, 2, 2
    w[0, 256 + 5] = -1  # second super-block, byte 5, bits 0..1
    data = tk.pack_ternary_weights(w).data[0]
    assert data[0] == 0b10_10_00_10
    assert data[1] == 0b01_01_01_01  # all zero codes
    assert data[64 + 5] == 0b01_01_01_00
    assert data[64 + 50] == 0b01_01_01_01  # padding is the zero code


def test_pack_layout_base3():
    # Byte i of a super-block holds codes 64*j + i (j = 0..4) as sum (code + 1) * 3^j.
    w = np.zeros((1, 600), np.int8)
    w[0, 0], w[0, 64], w[0, 128], w[0, 192], w[0, 256] = 1, -1, 1, 0, -1  # 2, 0, 2, 1, 0
    w[0, 320 + 5] = 1  # second super-block, byte 5, digit 0
    w[0, 320 + 64 * 4 + 7] = 1  # second super-block, byte 7, digit 4
    data = tk.pack_ternary_weights(w, "base3").data[0]
    assert data.shape == (128,)
    assert data[0] == 2 + 0 * 3 + 2 * 9 + 1 * 27 + 0 * 81
    assert data[1] == 121  # all zero codes: 1 + 3 + 9 + 27 + 81
    assert data[64 + 5] == 121 + 1
    assert data[64 + 7] == 121 + 81
    assert data[64 + 50] == 121  # padding is the zero code
    assert data.max() <= 242


def test_pack_rejects_bad_codes_and_fields():
    w = np.zeros((2, 10), np.int8)
    w[1, 3] = 2
    with pytest.raises(ValueError, match=r"`codes`.*found 2 at \[1, 3\]"):
        tk.pack_ternary_weights(w)
    packed = tk.pack_ternary_weights(np.zeros((2, 10), np.int8))
    packed.data[1, 2] = 0b11
    with pytest.raises(ValueError, match="invalid field.*2-bit 0b11"):
        tk.unpack_ternary_weights(packed)
    packed = tk.pack_ternary_weights(np.zeros((2, 10), np.int8), "base3")
    packed.data[1, 2] = 243
    with pytest.raises(ValueError, match=r"base-3 byte > 242\) at weight \[1, 2\]"):
        tk.unpack_ternary_weights(packed)
    with pytest.raises(ValueError, match="layout"):
        tk.pack_ternary_weights(np.zeros((2, 10), np.int8), "base4")
    bits2 = tk.pack_ternary_weights(np.zeros((2, 300), np.int8))  # 128 bytes a row; base3: 64
    with pytest.raises(ValueError, match="bytes per row.*layout base3"):
        tk.ternary_matmul_int(bits2._replace(layout="base3"), np.zeros((1, 300), np.int8))


# -- integer accumulators ----------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", KS)
# 2-8: the few-token kernels; 9 and 17: AVX2's groups of 8 tokens and a remainder
@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 6, 7, 8, 9, 17])
def test_int_matmul_exact(isa, k, t, layout):
    tk.set_isa(isa)
    r = rng(1000 * k + t)
    n = 7 if k > 1000 else 37
    w = ternary(r, n, k)
    x = r.integers(-128, 128, size=(t, k)).astype(np.int8)
    packed = tk.pack_ternary_weights(w, layout)
    expect = ref_int(x, w)
    for threads in (1, 2, 3):
        out = tk.ternary_matmul_int(packed, x, threads=threads)
        assert out.dtype == np.int32 and out.shape == (t, n)
        np.testing.assert_array_equal(out, expect)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("t", [1, 3, 5])
def test_int_matmul_edge_values(isa, t, layout):
    tk.set_isa(isa)
    k = 4097 + 256  # two GEMM panels, several int16 widening runs
    w = np.stack(
        [np.ones(k), -np.ones(k), np.zeros(k), np.tile([1, -1, 0], k)[:k], np.ones(k)]
    ).astype(np.int8)
    x = np.stack(
        [
            np.full(k, -128),
            np.full(k, 127),
            np.full(k, -127),
            np.tile([127, -128], k)[:k],
            np.zeros(k),
        ]
    ).astype(np.int8)[:t]
    packed = tk.pack_ternary_weights(w, layout)
    np.testing.assert_array_equal(tk.ternary_matmul_int(packed, x), ref_int(x, w))
    assert tk.ternary_matmul_int(packed, x)[0, 0] == (-128 * k if t else 0)
    zeros = tk.pack_ternary_weights(np.zeros((3, k), np.int8), layout)
    assert not tk.ternary_matmul_int(zeros, x).any()


# -- the float layer ---------------------------------------------------------------


def frozen_layer(k: int, n: int, seed: int) -> BitLinear:
    torch.manual_seed(seed)
    return BitLinear(k, n).freeze()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "k,n,t", [(1, 1, 1), (33, 7, 1), (257, 40, 3), (1000, 33, 9), (2560, 64, 1)]
)
def test_float_matmul_bit_exact_vs_frozen_bitlinear(k, n, t, layout):
    # Same integer accumulators and the same float32 operations as the reference
    # (one division scale / s_x per token, one multiply per output): tolerance 0.
    layer = frozen_layer(k, n, seed=k + n)
    x = torch.randn(t, k) * 3
    with torch.no_grad():
        expect = layer(x).numpy()
    packed = tk.pack_ternary_weights(layer.weight_codes.numpy(), layout)
    scale = float(layer.weight_scale)
    for isa in AVAILABLE:
        tk.set_isa(isa)
        for threads in (1, 2, 3):
            y = tk.ternary_matmul(packed, scale, x.numpy(), threads=threads)
            assert y.dtype == np.float32 and y.shape == (t, n)
            np.testing.assert_array_equal(y, expect, err_msg=f"{isa} threads={threads}")


def test_results_do_not_depend_on_thread_count_isa_or_layout():
    r = rng(7)
    k, n = 777, 150
    w = ternary(r, n, k)
    for t in (1, 6):
        x = r.standard_normal((t, k)).astype(np.float32)
        outs = []
        for isa in AVAILABLE:
            tk.set_isa(isa)
            for layout in LAYOUTS:
                packed = tk.pack_ternary_weights(w, layout)
                outs += [tk.ternary_matmul(packed, 0.37, x, threads=th) for th in (1, 2, 3, 8)]
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])


def test_empty_token_batch():
    packed = tk.pack_ternary_weights(ternary(rng(), 5, 10))
    assert tk.ternary_matmul(packed, 1.0, np.zeros((0, 10), np.float32)).shape == (0, 5)
    assert tk.ternary_matmul_int(packed, np.zeros((0, 10), np.int8)).shape == (0, 5)


# -- dispatch ----------------------------------------------------------------------


def test_isa_selection():
    assert AVAILABLE[0] == "scalar" and set(AVAILABLE) <= set(ALL_ISAS)
    tk.set_isa("auto")
    assert tk.current_isa() == AVAILABLE[-1]
    tk.set_isa("scalar")
    assert tk.current_isa() == "scalar"
    with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
        tk.set_isa("sse9")
    for name in set(ALL_ISAS) - set(AVAILABLE):
        with pytest.raises(RuntimeError, match=f"'{name}' is not supported on this CPU"):
            tk.set_isa(name)
    assert tk.current_isa() == "scalar"


# -- bad input ---------------------------------------------------------------------


def test_bad_inputs_raise_naming_the_argument():
    w = ternary(rng(), 4, 20)
    packed = tk.pack_ternary_weights(w)
    x = np.ones((2, 20), np.float32)
    cases = [
        (
            TypeError,
            "`x` must have dtype float32",
            lambda: tk.ternary_matmul(packed, 1.0, x.astype(np.float64)),
        ),
        (
            TypeError,
            "`x` must be a numpy.ndarray",
            lambda: tk.ternary_matmul(packed, 1.0, x.tolist()),
        ),
        (
            ValueError,
            r"`x` must be 2-D \[T, K\], got shape \(20,\)",
            lambda: tk.ternary_matmul(packed, 1.0, x[0]),
        ),
        (
            ValueError,
            "`x` has K = 21 columns, but the packed weights have K = 20",
            lambda: tk.ternary_matmul(packed, 1.0, np.ones((2, 21), np.float32)),
        ),
        (
            ValueError,
            "`x` must be C-contiguous",
            lambda: tk.ternary_matmul(packed, 1.0, np.ones((20, 2), np.float32).T),
        ),
        (
            ValueError,
            "`scale` must be a positive finite",
            lambda: tk.ternary_matmul(packed, float("nan"), x),
        ),
        (
            ValueError,
            "`scale` must be a positive finite",
            lambda: tk.ternary_matmul(packed, -1.0, x),
        ),
        (ValueError, "`threads` must be in", lambda: tk.ternary_matmul(packed, 1.0, x, threads=0)),
        (TypeError, "`xcodes` must have dtype int8", lambda: tk.ternary_matmul_int(packed, x)),
        (
            ValueError,
            "`xcodes` has K = 21",
            lambda: tk.ternary_matmul_int(packed, np.ones((2, 21), np.int8)),
        ),
        (
            TypeError,
            "`codes` must have dtype int8",
            lambda: tk.pack_ternary_weights(w.astype(np.int32)),
        ),
        (ValueError, "`codes` must be 2-D", lambda: tk.pack_ternary_weights(w[0])),
        (
            ValueError,
            "`codes` must not be empty",
            lambda: tk.pack_ternary_weights(np.zeros((0, 3), np.int8)),
        ),
        (
            TypeError,
            "`packed` must be a PackedTernary",
            lambda: tk.ternary_matmul(packed.data, 1.0, x),
        ),
        (
            TypeError,
            "`packed` must have dtype uint8",
            lambda: tk.ternary_matmul(packed._replace(data=packed.data.view(np.int8)), 1.0, x),
        ),
        (
            ValueError,
            "`packed` has 64 bytes per row; K = 300 in layout bits2 needs 128",
            lambda: tk.ternary_matmul(
                packed._replace(in_features=300), 1.0, np.ones((1, 300), np.float32)
            ),
        ),
        (
            ValueError,
            "`x` must have at least one column",
            lambda: tk.quantize_activations(np.ones((2, 0), np.float32)),
        ),
        (
            TypeError,
            "`x` must have dtype float32",
            lambda: tk.quantize_activations(np.ones((2, 3), np.float16)),
        ),
    ]
    for exc, msg, call in cases:
        with pytest.raises(exc, match=msg):
            call()


# -- the benchmark script runs (timings are not checked) ------------------------------


def test_benchmark_quick_writes_json(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import engine_kernels  # benchmarks/ is not a package

    out = tmp_path / "b.json"
    isa = AVAILABLE[-1]  # the best only: the scalar reference is slow
    assert engine_kernels.main(["--quick", "--out", str(out), "--isas", isa, "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "engine_kernels"
    impls = {r["impl"] for r in report["results"]}
    assert "numpy f32" in impls and any(i.startswith("ternlab") for i in impls)
    assert all(r["median_ms"] > 0 for r in report["results"])
