"""The engine's weight matrices (``_kernels.load_linear`` / ``dequantize_row``) on GGUF files.

Small GGUF files are written with gguf-py (through ternlab's exporter codec) and
loaded by the C++ engine:

* ternary I2_S / TQ2_0 / TQ1_0: the codes come back exactly, the scale as the
  format stores it, and ``forward`` equals the frozen ``BitLinear`` bit for bit;
* F32 / F16: ``forward`` is within the float32 summation error bound of a
  float64 product with the dequantized weights, for every ISA, and identical
  for any thread count and for one token versus a batch (Q6_K, Q8_0 and Q4_0
  quantize the activations to int8, so their ``forward`` has its own bound and
  bit-exact reference in test_engine_q6k_head.py, test_engine_q8_0_int8.py and
  test_engine_q4_0_head.py; their rows and Q6_K's ISA agreement are here);
* corrupt or unsupported tensors raise ``GGUFError`` with a clear message.
"""

from __future__ import annotations

import gc
import itertools
import math
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

from ternlab.bitlinear import BitLinear
from ternlab.export.codec import add_float, add_ternary, expected_float, fp16_scale
from ternlab.export.i2s import I2S_TYPE_ID, pack_i2s
from ternlab.inference import _kernels as K

ISAS = K.available_isas()
TYPE_IDS = {
    "i2_s": I2S_TYPE_ID,
    "tq2_0": 35,
    "tq1_0": 34,
    "f32": 0,
    "f16": 1,
    "q8_0": 8,
    "q6_k": 14,
}
U = 2.0**-24  # float32 unit roundoff


@pytest.fixture(autouse=True)
def _restore_isa():
    before = K.current_isa()
    yield
    K.set_isa(before)


def write_gguf(path: Path, add) -> Path:
    """A GGUF file whose tensors ``add(writer)`` adds."""
    w = gguf.GGUFWriter(path, "bitnet")
    add(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def random_codes(r: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Ternary codes with an all-zero row and an all-zero 256-column block when they fit."""
    codes = r.integers(-1, 2, size=(n_out, n_in)).astype(np.int8)
    if n_out > 2:
        codes[1] = 0
    if n_in >= 512 and n_out > 1:
        codes[0, 256:512] = 0
    return codes


def frozen(codes: np.ndarray, scale: np.float32) -> BitLinear:
    layer = BitLinear(codes.shape[1], codes.shape[0]).freeze()
    layer.weight_codes.copy_(torch.from_numpy(codes))
    layer.weight_scale.fill_(float(scale))
    return layer


# -- ternary ---------------------------------------------------------------------------

TERNARY_CASES = [
    ("i2_s", 1, 256),
    ("i2_s", 3, 128),
    ("i2_s", 5, 384),
    ("i2_s", 33, 768),
    ("tq2_0", 1, 256),
    ("tq2_0", 7, 512),
    ("tq2_0", 33, 768),
    ("tq1_0", 1, 256),
    ("tq1_0", 7, 512),
    ("tq1_0", 33, 768),
]


@pytest.mark.parametrize("layout", ["bits2", "base3"])
@pytest.mark.parametrize("qtype,n_out,n_in", TERNARY_CASES)
def test_ternary_codes_scale_and_forward_bit_exact(tmp_path, qtype, n_out, n_in, layout):
    r = np.random.default_rng(n_out * 1000 + n_in)
    codes = random_codes(r, n_out, n_in)
    scale = np.float32(r.uniform(0.005, 0.05))
    path = write_gguf(tmp_path / "t.gguf", lambda w: add_ternary(w, "w", codes, scale, qtype))

    lin = K.load_linear(str(path), "w", layout)
    assert (lin.n_out, lin.n_in, lin.type, lin.ternary) == (n_out, n_in, TYPE_IDS[qtype], True)
    np.testing.assert_array_equal(lin.codes(), codes)
    expect_scale = scale if qtype == "i2_s" else fp16_scale(scale)
    assert np.float32(lin.scale) == expect_scale

    layer = frozen(codes, expect_scale)
    for t in (1, 3, 5):
        x = (r.standard_normal((t, n_in)) * 2).astype(np.float32)
        with torch.no_grad():
            expect = layer(torch.from_numpy(x)).numpy()
        for isa in ISAS:
            K.set_isa(isa)
            for threads in (1, 2):
                y = lin.forward(x, threads=threads)
                assert y.dtype == np.float32 and y.shape == (t, n_out)
                np.testing.assert_array_equal(y, expect, err_msg=f"{isa} threads={threads}")


@pytest.mark.parametrize("qtype", ["tq2_0", "tq1_0"])
def test_ternary_all_zero_tensor(tmp_path, qtype):
    # Every block has d = 0: no scale to find; the layer is exactly zero.
    codes = np.zeros((4, 256), dtype=np.int8)
    data = quants.quantize(codes.astype(np.float32), GGMLQuantizationType[qtype.upper()])
    path = write_gguf(
        tmp_path / "z.gguf",
        lambda w: w.add_tensor("w", data, raw_dtype=GGMLQuantizationType[qtype.upper()]),
    )
    lin = K.load_linear(path, "w")
    np.testing.assert_array_equal(lin.codes(), codes)
    y = lin.forward(np.ones((2, 256), dtype=np.float32))
    np.testing.assert_array_equal(y, np.zeros((2, 4), dtype=np.float32))


def test_tq_zero_scale_block_reads_as_zero(tmp_path):
    # A block with d = 0 contributes nothing, whatever its (valid) codes say.
    codes = np.ones((2, 512), dtype=np.int8)
    data = quants.quantize(codes.astype(np.float32) * np.float32(0.5), GGMLQuantizationType.TQ2_0)
    blocks = data.reshape(-1, 66).copy()
    blocks[1, 64:66] = 0  # row 0, columns 256..511: d = +0
    path = write_gguf(
        tmp_path / "d0.gguf",
        lambda w: w.add_tensor("w", blocks.reshape(2, -1), raw_dtype=GGMLQuantizationType.TQ2_0),
    )
    lin = K.load_linear(path, "w")
    expect = codes.copy()
    expect[0, 256:] = 0
    np.testing.assert_array_equal(lin.codes(), expect)
    assert lin.scale == 0.5


# -- float types -------------------------------------------------------------------------

FLOAT_CASES = [
    ("f32", 37, 33),
    ("f32", 20, 1031),
    ("f16", 1, 8),
    ("f16", 37, 33),
    ("f16", 70, 2049),
    # rows past K.panel_max_k: column panels
    ("f32", 20, 5200),
    ("f16", 37, 6912),
    ("f16", 5, 2601),
]


def float_file(tmp_path: Path, qtype: str, n_out: int, n_in: int, seed: int):
    r = np.random.default_rng(seed)
    w = (r.standard_normal((n_out, n_in)) * r.uniform(0.01, 1.0, size=(n_out, 1))).astype(
        np.float32
    )
    path = write_gguf(tmp_path / "f.gguf", lambda wr: add_float(wr, "w", w, qtype))
    return path, expected_float(w, qtype), r


def check_within_bound(y: np.ndarray, x: np.ndarray, w: np.ndarray, what: str) -> None:
    # Any float32 summation order: |error| <= gamma_(n+1) * sum |w x| (products may round too).
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref = x64 @ w64.T
    n = w.shape[1] + 1
    bound = n * U / (1 - n * U) * (np.abs(x64) @ np.abs(w64).T) + 1e-30
    err = np.abs(y.astype(np.float64) - ref)
    assert (err <= bound).all(), f"{what}: max error / bound {np.max(err / bound):.3g}"


@pytest.mark.parametrize("qtype,n_out,n_in", FLOAT_CASES)
def test_float_forward_matches_reference(tmp_path, qtype, n_out, n_in):
    path, w, r = float_file(tmp_path, qtype, n_out, n_in, seed=n_out + n_in)
    lin = K.load_linear(path, "w")
    assert (lin.n_out, lin.n_in, lin.type) == (n_out, n_in, TYPE_IDS[qtype])
    assert not lin.ternary and lin.scale is None
    for t in (1, 2, 7):
        x = r.standard_normal((t, n_in)).astype(np.float32)
        for isa in ISAS:
            K.set_isa(isa)
            y = lin.forward(x)
            assert y.dtype == np.float32 and y.shape == (t, n_out)
            check_within_bound(y, x, w, f"{qtype} {isa} T={t}")
            # Same result for any thread count, and for a token alone (GEMV) or in a batch (GEMM).
            for threads in (2, 3):
                np.testing.assert_array_equal(lin.forward(x, threads=threads), y)
            for i in range(t):
                np.testing.assert_array_equal(lin.forward(x[i : i + 1])[0], y[i])


@pytest.mark.parametrize(
    "qtype,n_in",
    [
        ("f32", 1031),
        ("f16", 2049),
        ("f16", 40),
        ("f16", 24),
        ("f16", 1047),
        ("q6_k", 2304),
        ("f16", 5003),
    ],
)
def test_float_simd_isas_identical(tmp_path, qtype, n_in):
    # avx2 and avx512 share one per-element sequence (float_matmul.h): equal bit for
    # bit, for the GEMM (8 tokens) and the GEMV (1 token; odd n_in covers the masks).
    simd = [i for i in ISAS if i in ("avx2", "avx512")]
    if len(simd) < 2:
        pytest.skip("needs both the avx2 and avx512 kernels")
    path, _, r = float_file(tmp_path, qtype, 45, n_in, seed=n_in)
    lin = K.load_linear(path, "w")
    x = r.standard_normal((8, n_in)).astype(np.float32)
    outs = []
    for isa in simd:
        K.set_isa(isa)
        outs.append((lin.forward(x), np.concatenate([lin.forward(x[i : i + 1]) for i in range(8)])))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_array_equal(outs[0][0], outs[0][1])


@pytest.mark.parametrize("qtype,n_in", [("f32", 5200), ("f16", 6912), ("f16", 2601)])
def test_float_panels_are_the_sum_of_their_products(tmp_path, qtype, n_in):
    # Rows past panel_max_k are split into column panels of whole 32-column steps,
    # as even as those allow; y is panel 0's product + panel 1's + ... in float32, in
    # order. Pinned against the panels written as tensors of their own (short rows:
    # one panel each), for every ISA, one token and a batch.
    path, w, r = float_file(tmp_path, qtype, 19, n_in, seed=n_in)
    lin = K.load_linear(path, "w")
    panels = math.ceil(n_in / K.panel_max_k)
    assert lin.panel_k == math.ceil(math.ceil(n_in / panels) / 32) * 32 <= K.panel_max_k
    bounds = list(range(0, n_in, lin.panel_k)) + [n_in]
    assert len(bounds) == panels + 1
    raw = gguf.GGUFReader(path).tensors[0].data  # f32/f16 values

    def add_parts(wr):
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            part = np.ascontiguousarray(raw[:, a:b])
            wr.add_tensor(f"p{i}", part, raw_dtype=GGMLQuantizationType[qtype.upper()])

    parts_path = write_gguf(tmp_path / "parts.gguf", add_parts)
    parts = [K.load_linear(parts_path, f"p{i}") for i in range(panels)]
    assert all(p.panel_k == 0 for p in parts)
    x = r.standard_normal((5, n_in)).astype(np.float32)
    for isa in ISAS:
        K.set_isa(isa)
        for xs in (x, x[:1]):
            expect = parts[0].forward(np.ascontiguousarray(xs[:, : bounds[1]]))
            for p, (a, b) in zip(parts[1:], itertools.pairwise(bounds[1:]), strict=True):
                expect = expect + p.forward(np.ascontiguousarray(xs[:, a:b]))
            np.testing.assert_array_equal(lin.forward(xs), expect, err_msg=f"{isa} T={len(xs)}")


def test_float_rows_at_the_panel_limit_stay_whole(tmp_path):
    path, _, _ = float_file(tmp_path, "f16", 3, K.panel_max_k, seed=1)
    assert K.load_linear(path, "w").panel_k == 0


def test_float_isas_agree_with_scalar(tmp_path):
    path, w, r = float_file(tmp_path, "f16", 50, 777, seed=3)
    lin = K.load_linear(path, "w")
    x = r.standard_normal((4, 777)).astype(np.float32)
    K.set_isa("scalar")
    assert K.float_kernel_isa() == "scalar"
    ref = lin.forward(x)
    check_within_bound(ref, x, w, "scalar")
    for isa in ISAS:
        K.set_isa(isa)
        # x86 ISAs have their own float kernels (avxvnni, avx512vbmi and amx add ternary
        # kernels only: their float ones are avx2's or avx512's); others (neon) use the
        # scalar ones.
        want = {
            "avx2": "avx2",
            "avxvnni": "avx2",
            "avx512": "avx512",
            "avx512vbmi": "avx512",
            "amx": "avx512",
        }
        want = want.get(isa, "scalar")
        assert K.float_kernel_isa() == want
        bound = 2 * 778 * U * (np.abs(x) @ np.abs(w.astype(np.float64)).T)
        assert (np.abs(lin.forward(x) - ref) <= bound).all(), isa


@pytest.mark.parametrize("qtype,n_in", [("f32", 64), ("f16", 64), ("q8_0", 64), ("q6_k", 512)])
def test_dequantize_row(tmp_path, qtype, n_in):
    path, w, _ = float_file(tmp_path, qtype, 9, n_in, seed=11)
    for row in (0, 4, 8):
        np.testing.assert_array_equal(K.dequantize_row(str(path), "w", row), w[row])
    with pytest.raises(IndexError, match="out of range"):
        K.dequantize_row(path, "w", 9)


def test_float_forward_propagates_nan(tmp_path):
    path, _, r = float_file(tmp_path, "f16", 5, 40, seed=2)
    x = r.standard_normal((2, 40)).astype(np.float32)
    x[1, 3] = np.nan
    y = K.load_linear(path, "w").forward(x)
    assert np.isfinite(y[0]).all() and np.isnan(y[1]).all()


def test_linear_keeps_its_file_alive(tmp_path):
    path, w, r = float_file(tmp_path, "f16", 6, 64, seed=5)
    f = K.GGUFFile(str(path))
    lin = K.load_linear(f, "w")
    del f
    gc.collect()
    x = r.standard_normal((1, 64)).astype(np.float32)
    check_within_bound(lin.forward(x), x, w, "after the GGUFFile object is gone")


# -- errors ------------------------------------------------------------------------------


def test_unsupported_type(tmp_path):
    data = quants.quantize(np.ones((2, 64), dtype=np.float32), GGMLQuantizationType.Q5_0)
    path = write_gguf(
        tmp_path / "q5.gguf", lambda w: w.add_tensor("w", data, raw_dtype=GGMLQuantizationType.Q5_0)
    )
    with pytest.raises(K.GGUFError, match=r"tensor 'w' has type .*the engine multiplies I2_S"):
        K.load_linear(path, "w")


def test_not_2d(tmp_path):
    path = write_gguf(tmp_path / "n.gguf", lambda w: w.add_tensor("norm", np.ones(64, np.float32)))
    with pytest.raises(K.GGUFError, match="needs a 2-D weight"):
        K.load_linear(path, "norm")


def test_missing_tensor(tmp_path):
    path, _, _ = float_file(tmp_path, "f32", 2, 8, seed=0)
    with pytest.raises(K.GGUFError, match="nope"):
        K.load_linear(path, "nope")


@pytest.mark.parametrize("qtype", ["tq2_0", "tq1_0"])
def test_tq_per_block_scales_refused(tmp_path, qtype):
    codes = np.ones((2, 256), dtype=np.float32)
    t = GGMLQuantizationType[qtype.upper()]
    data = quants.quantize(codes * np.array([[0.5], [0.25]], dtype=np.float32), t)
    path = write_gguf(tmp_path / "s.gguf", lambda w: w.add_tensor("w", data, raw_dtype=t))
    with pytest.raises(K.GGUFError, match=r"s\.gguf.*'w'.*per-block scales: ternlab's engine"):
        K.load_linear(path, "w")


@pytest.mark.parametrize("d,match", [(-0.5, "negative scale"), (np.inf, "non-finite scale")])
def test_tq_bad_block_scale(tmp_path, d, match):
    data = quants.quantize(np.ones((2, 256), np.float32), GGMLQuantizationType.TQ2_0)
    data[1, 64:66] = np.array([d], dtype=np.float16).view(np.uint8)
    path = write_gguf(
        tmp_path / "b.gguf", lambda w: w.add_tensor("w", data, raw_dtype=GGMLQuantizationType.TQ2_0)
    )
    with pytest.raises(K.GGUFError, match=rf"block 1 \(row 1, .*{match}"):
        K.load_linear(path, "w")


@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan"), float("inf")])
def test_i2s_bad_scale(tmp_path, scale):
    codes = np.ones((2, 128), dtype=np.int8)
    data = pack_i2s(codes, scale)
    path = write_gguf(
        tmp_path / "i.gguf",
        lambda w: w.add_tensor("w", data.view(np.int8), raw_shape=codes.shape, raw_dtype=36),
    )
    with pytest.raises(K.GGUFError, match="positive finite float32"):
        K.load_linear(path, "w")


def write_corrupt(tmp_path: Path, qtype: str, byte: int, value: int) -> Path:
    codes = np.ones((2, 256), dtype=np.int8)
    if qtype == "i2_s":
        data = pack_i2s(codes, 0.5)
        data[byte] = value
        # int8: gguf-py does not know type 36 (see ternlab.export.i2s.add_i2s_tensor).
        return write_gguf(
            tmp_path / "c.gguf",
            lambda w: w.add_tensor("w", data.view(np.int8), raw_shape=codes.shape, raw_dtype=36),
        )
    dtype = GGMLQuantizationType[qtype.upper()]
    data = quants.quantize(codes.astype(np.float32), dtype)  # uint8 [rows, row bytes]
    data.reshape(-1)[byte] = value
    return write_gguf(tmp_path / "c.gguf", lambda w: w.add_tensor("w", data, raw_dtype=dtype))


@pytest.mark.parametrize(
    "qtype,byte,value,match",
    [
        ("i2_s", 70, 0xFF, r"invalid 2-bit field 0b11 at weight \[1, "),
        ("tq2_0", 66 + 5, 0xC0 | 0x15, r"block 1 \(row 1, columns 0..255\) holds the invalid"),
        ("tq1_0", 3, 1, r"block 0 .* not a base-3 encoding"),
    ],
)
def test_invalid_fields(tmp_path, qtype, byte, value, match):
    path = write_corrupt(tmp_path, qtype, byte, value)
    with pytest.raises(K.GGUFError, match=match):
        K.load_linear(path, "w")


def test_forward_argument_errors(tmp_path):
    codes = np.ones((3, 128), dtype=np.int8)
    path = write_gguf(tmp_path / "a.gguf", lambda w: add_ternary(w, "w", codes, 0.5, "i2_s"))
    lin = K.load_linear(path, "w")
    with pytest.raises(TypeError, match="float32"):
        lin.forward(np.zeros((1, 128)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        lin.forward([[0.0] * 128])
    with pytest.raises(ValueError, match=r"shape \[T, 128\]"):
        lin.forward(np.zeros((1, 127), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        lin.forward(np.zeros((128, 2), np.float32).T)
    with pytest.raises(ValueError, match="threads"):
        lin.forward(np.zeros((1, 128), np.float32), threads=0)
    x = np.ones((3, 128), np.float32)
    x[2, 5] = np.inf
    with pytest.raises(ValueError, match="non-finite value in row 2"):
        lin.forward(x)
    assert lin.forward(np.zeros((0, 128), np.float32)).shape == (0, 3)


def test_codes_and_rows_of_the_wrong_kind(tmp_path):
    def add(w):
        add_float(w, "f", np.ones((2, 32), np.float32), "q8_0")
        add_ternary(w, "t", np.ones((2, 256), np.int8), 0.5, "tq2_0")

    path = write_gguf(tmp_path / "k.gguf", add)
    with pytest.raises(ValueError, match="not ternary"):
        K.load_linear(path, "f").codes()
    with pytest.raises(K.GGUFError, match="only F32, F16, Q8_0, Q6_K and Q4_0 rows"):
        K.dequantize_row(path, "t", 0)
