"""The Triton BitLinear kernels against the PyTorch reference (docs/triton.md).

Without CUDA the kernels run under ``TRITON_INTERPRET=1`` on CPU tensors (set
below, before the kernel module is first imported), so CI checks them too.

Tolerances (``eps`` = ``torch.finfo(dtype).eps``, u = 2**-24):

* quantization: int8 activation codes, ``s_x``, ternary codes and the weight scale
  are compared for *bit* equality with ``ternlab.bitlinear.quant``.
* against the exact product of the reference codes (float64): forward within
  ``eps + 2**-21`` relative (one output rounding; the interpreter truncates to
  bfloat16, hence one ulp, not half; plus three float32 roundings in the epilogue);
  gradients within one output rounding plus the classic float32 summation bound
  ``(n u + ...) * (|A| @ |B|)``.
* against the reference layer (which rounds its fake-quantized copies to the
  dtype before an ordinary GEMM): ``max|a - b| <= tol * max|b|`` with tol
  2**-6 (bf16), 2**-9 (fp16), 1e-5 (fp32): about two output ulps.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed (pip install 'ternlab[triton]')")

import torch.nn.functional as F  # noqa: E402

from ternlab.bitlinear import BitLinear, kernels  # noqa: E402
from ternlab.bitlinear import triton_function as tf  # noqa: E402
from ternlab.bitlinear import triton_kernels as tk  # noqa: E402
from ternlab.bitlinear.quant import act_quant, weight_quant  # noqa: E402
from ternlab.bitlinear.ste import ste_act, ste_weight  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not tk.INTERPRET:
    pytest.skip(
        "no CUDA and the Triton kernels were not built under TRITON_INTERPRET=1",
        allow_module_level=True,
    )

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
SHAPES = [(1, 16, 16), (7, 33, 17), (19, 40, 70), ((2, 5), 33, 17)]  # (batch dims, K, N)
REF_TOL = {torch.float32: 1e-5, torch.bfloat16: 2.0**-6, torch.float16: 2.0**-9}
U = 2.0**-24


def _ids(shape) -> str:
    return "x".join(str(s) for s in shape)


def _batch(m) -> tuple[int, ...]:
    return m if isinstance(m, tuple) else (m,)


def _assert_within(
    actual: torch.Tensor, exact: torch.Tensor, bound: torch.Tensor, what: str
) -> None:
    err = (actual.detach().double() - exact).abs()
    bad = err > bound
    assert not bool(bad.any()), (
        f"{what}: {int(bad.sum())} element(s) out of bound; worst excess "
        f"{float((err - bound).max()):.3g} (max err {float(err.max()):.3g})"
    )


def _assert_normwise(actual: torch.Tensor, ref: torch.Tensor, tol: float, what: str) -> None:
    err = float((actual.detach().double() - ref.detach().double()).abs().max())
    scale = float(ref.detach().double().abs().max())
    assert err <= tol * scale, f"{what}: max|diff| {err:.3g} > {tol:.3g} * max|ref| {scale:.3g}"


def _inputs(batch, k, n, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, k, generator=gen).to(dtype)
    w = (torch.rand(n, k, generator=gen) * 2 - 1).div(k**0.5).to(dtype)
    return x.to(DEVICE), w.to(DEVICE)


# --------------------------------------------------------------------------- quantizers


def _special_rows(k: int) -> torch.Tensor:
    """A zero row, a row below eps, a single spike, and ordinary rows."""
    rows = torch.randn(5, k)
    rows[0] = 0.0
    rows[1] = torch.linspace(-4e-6, 3e-6, k)
    rows[2] = 0.0
    rows[2, k // 2] = -7.25
    return rows


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", [1, 16, 33, 40])
def test_act_quant_bit_identical(dtype, k):
    x = torch.cat([_special_rows(k), 3 * torch.randn(9, k)]).to(dtype).to(DEVICE)
    ref = act_quant(x)
    codes, s_x = tk.act_quant(x)
    assert codes.dtype == torch.int8
    assert torch.equal(codes, ref.codes)
    assert torch.equal(s_x, ref.inv_scale.squeeze(-1))  # bitwise: same float32 values
    # The scale-only mode (used by the fused forward) agrees too.
    assert torch.equal(tk.act_quant(x, store_codes=False)[1], s_x)


def _tie_row(k: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """A float32 row whose products x * s_x land exactly on n + 0.5 for many n."""
    amax = torch.tensor([3.0])
    s_x = act_quant(amax).inv_scale  # the reference multiplier of a row with max |x| = 3
    n = torch.arange(-120, 120, dtype=torch.float32)
    cand = (n + 0.5) / s_x
    ties = cand[(cand * s_x) == n + 0.5]  # keep those whose float32 product is an exact tie
    row = torch.cat([amax, ties])[:k]
    return row, n[((cand * s_x) == n + 0.5)][: k - 1] + 0.5


def test_act_quant_ties_round_half_to_even():
    row, tie_vals = _tie_row()
    # The crafted ties include both parities, and half-away-from-zero would differ.
    floor = torch.floor(tie_vals)
    assert bool((floor % 2 == 0).any()) and bool((floor % 2 == 1).any())
    x = row[None].to(DEVICE)
    ref = act_quant(x)
    half_away = torch.sign(tie_vals) * torch.floor(tie_vals.abs() + 0.5)
    assert not torch.equal(ref.codes[0, 1:].cpu().float(), half_away)
    codes, s_x = tk.act_quant(x)
    assert torch.equal(codes, ref.codes)
    # The fused forward quantizes in registers; its stored codes must agree as well.
    w_codes = torch.ones(16, x.shape[1], dtype=torch.int8, device=DEVICE)
    _, fused_codes = tk.quant_matmul(
        x, s_x, w_codes, torch.tensor(1.0, device=DEVICE), torch.float32, store_codes=True
    )
    assert torch.equal(fused_codes, ref.codes)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 16), (17, 33), (70, 40)], ids=_ids)
def test_weight_quant_bit_identical(dtype, shape):
    w = (torch.randn(shape) * 0.02).to(dtype).to(DEVICE)
    ref = weight_quant(w)
    codes, scale = tf.quantize_weight(w)
    assert codes.dtype == torch.int8
    assert torch.equal(codes, ref.codes)
    assert torch.equal(scale, ref.scale)


def test_weight_quant_ties_round_half_to_even():
    # mean |W| is exactly 1, so s_w = 1 and +-0.5 are ties (-> 0), +-1.5 round to +-2 -> +-1.
    w = torch.tensor([0.5, -0.5, 1.5, -1.5] * 15).reshape(5, 12).to(DEVICE)
    ref = weight_quant(w)
    assert float(ref.scale) == 1.0
    codes, _ = tf.quantize_weight(w)
    assert torch.equal(codes, ref.codes)
    assert torch.equal(codes[0, :4].cpu(), torch.tensor([0, 0, 1, -1], dtype=torch.int8))


# --------------------------------------------------------------------------- forward and backward


def _exact(x, w):
    """Float64 fake-quantized operands and product from the reference codes.

    The product is the integer sum of codes (exact in float64) times the scales,
    so an all-zero accumulator gives exactly 0.
    """
    qa, qw = act_quant(x), weight_quant(w)
    xq = qa.codes.double() / qa.inv_scale.double()
    wq = qw.codes.double() * qw.scale.double()
    acc = qa.codes.double() @ qw.codes.double().T
    return xq, wq, acc * qw.scale.double() / qa.inv_scale.double()


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "two_pass"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_forward_backward(shape, dtype, fuse):
    m, k, n = shape
    x, w = _inputs(_batch(m), k, n, dtype)
    eps = torch.finfo(dtype).eps

    xt, wt = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = tf.bitlinear_triton(xt, wt, fuse_act_quant=fuse)
    assert y.dtype == dtype and y.shape == (*_batch(m), n)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype).to(DEVICE)
    y.backward(g)

    # Against the exact product of the reference codes.
    xq, wq, y_exact = _exact(x, w)
    _assert_within(y, y_exact, (eps + 2.0**-21) * y_exact.abs(), "forward vs exact")
    g64 = g.double().reshape(-1, n)
    gx_exact = g64 @ wq
    gx_bound = eps * gx_exact.abs() + (n * U + 2 * U) * (g64.abs() @ wq.abs())
    _assert_within(xt.grad.reshape(-1, k), gx_exact, gx_bound, "grad_x vs exact")
    xq2 = xq.reshape(-1, k)
    gw_exact = g64.T @ xq2
    gw_bound = eps * gw_exact.abs() + (eps + 2.0**-22 + xq2.shape[0] * U) * (
        g64.abs().T @ xq2.abs()
    )
    _assert_within(wt.grad, gw_exact, gw_bound, "grad_w vs exact")

    # Against the reference layer computation (STE fake quantization + F.linear).
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    y_ref = F.linear(ste_act(xr), ste_weight(wr))
    y_ref.backward(g)
    tol = REF_TOL[dtype]
    _assert_normwise(y, y_ref, tol, "forward vs reference")
    _assert_normwise(xt.grad, xr.grad, tol, "grad_x vs reference")
    _assert_normwise(wt.grad, wr.grad, tol, "grad_w vs reference")
    assert xt.grad.dtype == dtype and wt.grad.dtype == dtype


def test_non_contiguous_input_matches_contiguous():
    x, w = _inputs((33,), 40, 17, torch.float32)
    xt = x.T.contiguous().T  # same values, column-major strides
    assert not xt.is_contiguous()
    assert torch.equal(tf.bitlinear_triton(xt, w), tf.bitlinear_triton(x, w))


def test_empty_batch():
    x, w = _inputs((0,), 33, 17, torch.float32)
    xt, wt = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = tf.bitlinear_triton(xt, wt)
    assert y.shape == (0, 17)
    y.sum().backward()
    assert xt.grad.shape == (0, 33)
    assert torch.equal(wt.grad, torch.zeros_like(w))


def test_saves_int8_codes_not_fake_quantized_copies():
    x, w = _inputs((19,), 40, 70, torch.bfloat16)

    def saved(fn):
        seen: list[torch.Tensor] = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t) or t, lambda t: t):
            fn(x.clone().requires_grad_(), w.clone().requires_grad_())
        return seen

    big_floats = lambda ts: [t for t in ts if t.is_floating_point() and t.numel() >= w.numel() // 2]  # noqa: E731
    # The reference keeps bf16 fake-quantized copies of x and W (what this test would catch) ...
    assert big_floats(saved(lambda a, b: F.linear(ste_act(a), ste_weight(b))))
    # ... the Triton Function keeps int8 codes and float32 scales only.
    ours = saved(tf.bitlinear_triton)
    assert not big_floats(ours)
    assert [t.dtype for t in ours if t.numel() > 70] == [torch.int8, torch.int8]  # x and W codes


@pytest.mark.skipif(DEVICE != "cpu", reason="checks CPU autocast under the interpreter")
def test_autocast_matches_reference():
    x, w = _inputs((7,), 33, 17, torch.float32)
    results = []
    for fn in (tf.bitlinear_triton, lambda a, b: F.linear(ste_act(a), ste_weight(b))):
        xa, wa = x.clone().requires_grad_(), w.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fn(xa, wa)
        y.float().sum().backward()
        results.append((y, xa.grad, wa.grad))
    (y, gx, gw), (y_ref, gx_ref, gw_ref) = results
    assert y.dtype == y_ref.dtype == torch.bfloat16
    assert gx.dtype == gw.dtype == torch.float32
    tol = REF_TOL[torch.bfloat16]
    _assert_normwise(y, y_ref, tol, "forward")
    _assert_normwise(gx, gx_ref, tol, "grad_x")
    _assert_normwise(gw, gw_ref, tol, "grad_w")


# --------------------------------------------------------------------------- BitLinear switch


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_bitlinear_kernel_switch(strength):
    torch.manual_seed(0)
    ref = BitLinear(33, 17, bias=True, input_norm=True, kernel="torch").to(DEVICE)
    tri = BitLinear(33, 17, bias=True, input_norm=True, kernel="triton").to(DEVICE)
    tri.load_state_dict(ref.state_dict())
    ref.quant_strength = tri.quant_strength = strength
    assert "kernel=triton" in repr(tri)
    x = torch.randn(2, 5, 33, device=DEVICE)
    outs = []
    for layer in (ref, tri):
        xi = x.clone().requires_grad_()
        y = layer(xi)
        (y * torch.arange(17, device=DEVICE)).sum().backward()
        outs.append([y, xi.grad] + [p.grad for p in layer.parameters()])
    for a, b in zip(outs[1], outs[0], strict=True):
        _assert_normwise(a, b, REF_TOL[torch.float32], "BitLinear triton vs torch")


def test_kernel_name_and_dtype_errors():
    with pytest.raises(ValueError, match=r"`kernel` must be one of 'auto', 'triton', 'torch'"):
        BitLinear(4, 4, kernel="cuda")
    x = torch.randn(3, 16)
    assert kernels.resolve_kernel("auto", x, torch.randn(8, 16)) == "torch"  # CPU tensors
    layer = BitLinear(16, 8, kernel="triton", dtype=torch.float64)
    with pytest.raises(TypeError, match="kernel='torch'"):
        layer(x.double().to(DEVICE))


def test_falls_back_cleanly_without_triton(monkeypatch):
    layer = BitLinear(16, 8, kernel="auto")
    x = torch.randn(3, 16)
    expected = BitLinear(16, 8, kernel="torch")
    expected.load_state_dict(layer.state_dict())
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now raises ImportError
    try:
        importlib.reload(kernels)
        assert not kernels.triton_available()
        assert torch.equal(layer(x), expected(x))
        with pytest.raises(RuntimeError, match="`triton` package cannot be imported"):
            BitLinear(16, 8, kernel="triton")(x)
    finally:
        monkeypatch.undo()
        importlib.reload(kernels)
    assert kernels.triton_available()


def test_package_import_does_not_import_triton():
    import subprocess

    code = (
        "import sys, ternlab.bitlinear; "
        "assert 'triton' not in sys.modules, 'triton imported'; "
        "assert 'ternlab.bitlinear.triton_kernels' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


_COMPILE_CHECK = r"""
import inspect, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
if "constexprs" not in inspect.signature(ASTSource.__init__).parameters:
    sys.exit(77)  # older triton compile API: nothing to check with this script
from ternlab.bitlinear import triton_kernels as tk
assert not tk.INTERPRET

def build(fn, types, consts, warps):
    names = fn.arg_names
    sig = {n: "constexpr" if n in consts else types[n] for n in names}
    const = {(names.index(k),): v for k, v in consts.items()}
    src = ASTSource(fn=fn, signature=sig, constexprs=const)
    target = GPUTarget("cuda", int(sys.argv[1]), 32)
    return triton.compile(src, target=target, options={"num_warps": warps, "num_stages": 3})

i = "i32"
strides = lambda *names: {n: i for n in names}
for dt in ("bf16",):
    for codes in (False, True):
        t = dict(x_ptr="*i8" if codes else f"*{dt}", s_x_ptr="*fp32", w_ptr="*i8",
                 w_scale_ptr="*fp32", y_ptr=f"*{dt}", xc_ptr="*i8",
                 **strides("M", "N", "K", "stride_xm", "stride_xk", "stride_wn", "stride_wk",
                           "stride_ym", "stride_yn", "stride_cm"))
        c = dict(A_IS_CODES=codes, STORE_CODES=not codes, USE_RINT=True,
                 BLOCK_M=128, BLOCK_N=128, BLOCK_K=128, GROUP_M=8)
        ptx = build(tk._fwd_kernel, t, c, 8).asm["ptx"]
        assert "cvt.rni.f32.f32" in ptx or codes, "round-half-even is not a single cvt.rni"
        assert "div.full" not in ptx, "approximate division in the forward kernel"
        assert "wgmma" in ptx, "the int8 GEMM does not use the sm_90 tensor cores"
    gemm = dict(UPCAST=False, IEEE=dt == "fp32", BLOCK_M=64, BLOCK_N=64, BLOCK_K=128, GROUP_M=8)
    t = dict(g_ptr=f"*{dt}", w_ptr="*i8", w_scale_ptr="*fp32", out_ptr=f"*{dt}",
             **strides("M", "N", "K", "stride_gm", "stride_gn", "stride_wn", "stride_wk",
                       "stride_om", "stride_ok"))
    build(tk._grad_input_kernel, t, gemm, 4)
    t = dict(g_ptr=f"*{dt}", xc_ptr="*i8", s_x_ptr="*fp32", out_ptr=f"*{dt}",
             **strides("M", "N", "K", "stride_gm", "stride_gn", "stride_cm", "stride_on",
                       "stride_ok"))
    build(tk._grad_weight_kernel, t, gemm, 4)
    t = dict(x_ptr=f"*{dt}", s_x_ptr="*fp32", codes_ptr="*i8",
             **strides("K", "stride_xm", "stride_xk", "stride_cm"))
    ptx = build(tk._act_quant_kernel, t, dict(BLOCK_K=4096, STORE_CODES=True, USE_RINT=True), 8)
    ptx = ptx.asm["ptx"]
    assert "div.rn.f32" in ptx and "div.full" not in ptx, "s_x must use IEEE division"
    t = dict(w_ptr=f"*{dt}", s_w_ptr="*fp32", codes_ptr="*i8", numel=i)
    build(tk._weight_quant_kernel, t, dict(BLOCK=1024, USE_RINT=True), 4)
print("ok")
"""


@pytest.mark.slow
def test_kernels_compile_for_gpu_without_one():
    """Compile the kernels to an sm_90 cubin (bundled LLVM and ptxas; no GPU needed).

    Catches what the interpreter cannot: lowering errors, an approximate division,
    a rounding that is not one ``cvt.rni``. bf16 only, to keep it to seconds.
    """
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # the default; set to silence a warning
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_CHECK, "90"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if done.returncode == 77:
        pytest.skip("this triton's compile API predates the check (needs ASTSource(constexprs=))")
    assert done.returncode == 0, done.stderr[-3000:]


def test_benchmark_smoke_and_no_cuda_exit(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bitlinear_train_gpu as bench

    if not torch.cuda.is_available():
        assert bench.main([]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    out = tmp_path / "b.json"
    args = ["--device", DEVICE, "--shapes", "32x48", "--tokens", "16", "--iters", "2"]
    args += ["--warmup", "0", "--out", str(out), "--variants"]
    args += ["bitlinear_triton", "bitlinear_torch", "linear_bf16"]
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    rows = {r["variant"]: r for r in report["results"]}
    assert rows["linear_bf16"]["time_vs_linear_bf16"] == 1.0
    assert rows["bitlinear_torch"]["median_ms"] > 0
    assert "goal_faster_than_torch" in rows["bitlinear_triton"]  # ran (interpreter on CPU)


@pytest.mark.skipif(DEVICE != "cpu", reason="interpreter-only concern")
def test_interpreter_works_when_triton_was_imported_first():
    """transformers (and others) import triton before a test can set TRITON_INTERPRET."""
    import subprocess

    code = (
        "import os, torch, triton\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "from ternlab.bitlinear.triton_function import bitlinear_triton\n"
        "x = torch.randn(5, 20, requires_grad=True)\n"
        "w = torch.randn(18, 20, requires_grad=True)\n"
        "bitlinear_triton(x, w).sum().backward()\n"
        "assert x.grad.shape == x.shape and w.grad.shape == w.shape\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
