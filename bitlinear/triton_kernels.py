"""Triton kernels for BitLinear training (spec: docs/quantization.md, design: docs/triton.md).

Imported lazily by :mod:`ternlab.bitlinear.kernels`: importing ``ternlab.bitlinear``
never imports this module, so the package works without triton.

Kernels (``M`` tokens, ``K`` in_features, ``N`` out_features):

* ``_weight_quant_kernel``: ternary codes of the latent weight, given the absmean
  multiplier ``s_w`` (computed by the reference code, so the scale is bit-identical).
* ``_act_quant_kernel``: per-token ``s_x = 127 / max|x|`` and, optionally, int8 codes.
* ``_fwd_kernel``: ``y = (codes_x @ codes_w^T) * scale_w / s_x`` on int8 tensor cores
  (int32 accumulators, exact), rescaled in the epilogue, output in the input dtype.
  With ``A_IS_CODES=False`` it quantizes ``x`` tiles in registers (the fusion) and
  the first column of programs writes the int8 codes that backward needs.
* ``_grad_input_kernel``: ``grad_x = (grad_y @ codes_w) * scale_w`` (STE: identity
  through the activation quantizer).
* ``_grad_weight_kernel``: ``grad_w = grad_y^T @ (codes_x / s_x)``, the dequantized
  activation built in registers from the saved int8 codes (never materialised).

Every quantization step runs in float32 like the reference. Round-half-to-even
is ``libdevice.rint`` on GPUs (one instruction, exact, and immune to mul+add
contraction) and an explicit floor-based formula under ``TRITON_INTERPRET=1``,
where libdevice is not available.

Interpreter caveats (why some constexpr switches exist): it stores bfloat16 as
raw uint16, so ``tl.dot`` on bf16 and int8->bf16 casts are wrong there; under
the interpreter float dots are done on float32 upcasts instead, which is the
same arithmetic a GPU bf16/fp16 dot does (exact products, fp32 accumulation).
It also truncates (not rounds) float32->bfloat16 stores, hence the one-ulp
tolerances in the tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from ternlab.bitlinear import spec

# Spec constants as constexpr: jit functions may only read constexpr globals.
EPS = tl.constexpr(spec.EPS)
ACT_QMIN = tl.constexpr(float(spec.ACT_QMIN))
ACT_QMAX = tl.constexpr(float(spec.ACT_QMAX))
WEIGHT_QMIN = tl.constexpr(float(spec.WEIGHT_QMIN))
WEIGHT_QMAX = tl.constexpr(float(spec.WEIGHT_QMAX))

# --------------------------------------------------------------------------- jit helpers
# Only builtins of triton.language (and our own jit functions) are used: the
# library's @jit helpers (tl.zeros, tl.max, tl.cdiv, ...) are decorated when
# triton is first imported, so they cannot run under the interpreter when triton
# was imported before TRITON_INTERPRET=1 was set (e.g. by transformers).


@triton.jit
def _round_half_even(v, USE_RINT: tl.constexpr):
    """torch.round semantics; ``v`` must be float32 with |v| < 2**22 (callers clamp first)."""
    if USE_RINT:
        r = libdevice.rint(v)
    else:
        # floor(v + 0.5) is exact for |v| < 2**22; fix up exact ties to the even neighbour.
        f = tl.floor(v + 0.5)
        half = f * 0.5
        odd = half != tl.floor(half)
        r = tl.where(((f - v) == 0.5) & odd, f - 1.0, f)
    return r


@triton.jit
def _maximum(a, b):
    return tl.maximum(a, b)


@triton.jit
def _tile_ids(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Grouped ("swizzled") program order: neighbouring programs share row blocks in L2."""
    pid = tl.program_id(0)
    num_m = (M + BLOCK_M - 1) // BLOCK_M
    num_n = (N + BLOCK_N - 1) // BLOCK_N
    width = GROUP_M * num_n
    group = pid // width
    first_m = group * GROUP_M
    size_m = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m
    return pid_m, pid_n


@triton.jit
def _float_dot(a, b, acc, UPCAST: tl.constexpr, IEEE: tl.constexpr):
    """``acc + a @ b`` in float32; ``IEEE`` keeps float32 operands off TF32."""
    if UPCAST:
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    elif IEEE:
        acc = tl.dot(a, b, acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc)
    return acc


# --------------------------------------------------------------------------- quantizers


@triton.jit
def _weight_quant_kernel(
    w_ptr,
    s_w_ptr,
    codes_ptr,
    numel,
    BLOCK: tl.constexpr,
    USE_RINT: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    s_w = tl.load(s_w_ptr)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    # Clamping to the integer range before rounding gives the same codes as after.
    v = tl.minimum(tl.maximum(w * s_w, WEIGHT_QMIN), WEIGHT_QMAX)
    tl.store(codes_ptr + offs, _round_half_even(v, USE_RINT).to(tl.int8), mask=mask)


@triton.jit
def _act_quant_kernel(
    x_ptr,
    s_x_ptr,
    codes_ptr,
    K,
    stride_xm,
    stride_xk,
    stride_cm,
    BLOCK_K: tl.constexpr,
    STORE_CODES: tl.constexpr,
    USE_RINT: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    rk = tl.arange(0, BLOCK_K)
    x_row = x_ptr + row * stride_xm
    amax = tl.full((BLOCK_K,), 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        v = tl.load(x_row + kk * stride_xk, mask=kk < K, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.abs(v))
    m = tl.maximum(tl.reduce(amax, 0, _maximum), EPS)
    # The reference computes 127 / m as reciprocal(m) * 127 (Tensor.__rtruediv__);
    # div_rn is the IEEE division (a plain `/` may be approximate on GPUs).
    s_x = tl.math.div_rn(1.0, m) * ACT_QMAX
    tl.store(s_x_ptr + row, s_x)
    if STORE_CODES:
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + rk
            v = tl.load(x_row + kk * stride_xk, mask=kk < K, other=0.0).to(tl.float32)
            q = tl.minimum(tl.maximum(v * s_x, ACT_QMIN), ACT_QMAX)
            q = _round_half_even(q, USE_RINT).to(tl.int8)
            tl.store(codes_ptr + row * stride_cm + kk, q, mask=kk < K)


# --------------------------------------------------------------------------- forward GEMM


@triton.jit
def _fwd_kernel(
    x_ptr,
    s_x_ptr,
    w_ptr,
    w_scale_ptr,
    y_ptr,
    xc_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_xk,
    stride_wn,
    stride_wk,
    stride_ym,
    stride_yn,
    stride_cm,
    A_IS_CODES: tl.constexpr,
    STORE_CODES: tl.constexpr,
    USE_RINT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    pid_m, pid_n = _tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < N
    s_x = tl.load(s_x_ptr + rm, mask=m_ok, other=1.0)
    x_rows = x_ptr + rm.to(tl.int64)[:, None] * stride_xm
    w_cols = w_ptr + rn.to(tl.int64)[None, :] * stride_wn
    # Only the first column of programs writes the activation codes (once per element).
    store_mask_m = rm < tl.where(pid_n == 0, M, 0)
    acc = tl.full((BLOCK_M, BLOCK_N), 0, tl.int32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        a_mask = m_ok[:, None] & (kk[None, :] < K)
        if A_IS_CODES:
            a = tl.load(x_rows + kk[None, :] * stride_xk, mask=a_mask, other=0)
        else:
            v = tl.load(x_rows + kk[None, :] * stride_xk, mask=a_mask, other=0.0).to(tl.float32)
            q = tl.minimum(tl.maximum(v * s_x[:, None], ACT_QMIN), ACT_QMAX)
            a = _round_half_even(q, USE_RINT).to(tl.int8)
            if STORE_CODES:
                c_ptrs = xc_ptr + rm.to(tl.int64)[:, None] * stride_cm + kk[None, :]
                tl.store(c_ptrs, a, mask=store_mask_m[:, None] & (kk[None, :] < K))
        b = tl.load(
            w_cols + kk[:, None] * stride_wk, mask=(kk[:, None] < K) & n_ok[None, :], other=0
        )
        acc = tl.dot(a, b, acc)
    # Epilogue: one float32 rescale per token (weight scale over the activation multiplier).
    row_scale = tl.load(w_scale_ptr) * tl.math.div_rn(1.0, s_x)
    y = acc.to(tl.float32) * row_scale[:, None]
    y_ptrs = y_ptr + rm.to(tl.int64)[:, None] * stride_ym + rn[None, :] * stride_yn
    tl.store(y_ptrs, y.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


# --------------------------------------------------------------------------- backward GEMMs


@triton.jit
def _grad_input_kernel(
    g_ptr,
    w_ptr,
    w_scale_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_gm,
    stride_gn,
    stride_wn,
    stride_wk,
    stride_om,
    stride_ok,
    UPCAST: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    # Output tile [BLOCK_M, BLOCK_K] of grad_x; the reduction runs over N.
    pid_m, pid_k = _tile_ids(M, K, BLOCK_M, BLOCK_K, GROUP_M)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rn = tl.arange(0, BLOCK_N)
    m_ok = rm < M
    k_ok = rk < K
    g_rows = g_ptr + rm.to(tl.int64)[:, None] * stride_gm
    acc = tl.full((BLOCK_M, BLOCK_K), 0.0, tl.float32)
    for n0 in range(0, N, BLOCK_N):
        nn = n0 + rn
        a = tl.load(
            g_rows + nn[None, :] * stride_gn, mask=m_ok[:, None] & (nn[None, :] < N), other=0.0
        )
        codes = tl.load(
            w_ptr + nn.to(tl.int64)[:, None] * stride_wn + rk[None, :] * stride_wk,
            mask=(nn[:, None] < N) & k_ok[None, :],
            other=0,
        )
        # Ternary codes are exact in every float dtype; the scale is applied once, below.
        if UPCAST:
            b = codes.to(tl.float32)
        else:
            b = codes.to(a.dtype)
        acc = _float_dot(a, b, acc, UPCAST, IEEE)
    out = acc * tl.load(w_scale_ptr)
    o_ptrs = out_ptr + rm.to(tl.int64)[:, None] * stride_om + rk[None, :] * stride_ok
    tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & k_ok[None, :])


@triton.jit
def _grad_weight_kernel(
    g_ptr,
    xc_ptr,
    s_x_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_gm,
    stride_gn,
    stride_cm,
    stride_on,
    stride_ok,
    UPCAST: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    # Output tile [BLOCK_N, BLOCK_K] of grad_w; the reduction runs over the M tokens.
    pid_n, pid_k = _tile_ids(N, K, BLOCK_N, BLOCK_K, GROUP_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rm = tl.arange(0, BLOCK_M)
    n_ok = rn < N
    k_ok = rk < K
    acc = tl.full((BLOCK_N, BLOCK_K), 0.0, tl.float32)
    for m0 in range(0, M, BLOCK_M):
        mm = m0 + rm
        m_ok = mm < M
        mm64 = mm.to(tl.int64)
        # grad_y^T tile, read transposed straight from grad_y.
        a = tl.load(
            g_ptr + mm64[None, :] * stride_gm + rn[:, None] * stride_gn,
            mask=n_ok[:, None] & m_ok[None, :],
            other=0.0,
        )
        codes = tl.load(
            xc_ptr + mm64[:, None] * stride_cm + rk[None, :],
            mask=m_ok[:, None] & k_ok[None, :],
            other=0,
        )
        # The fake-quantized activation codes / s_x, rounded to the GEMM dtype as the
        # reference does; a per-row reciprocal keeps the division out of the inner loop.
        inv_s = tl.math.div_rn(1.0, tl.load(s_x_ptr + mm, mask=m_ok, other=1.0))
        b = (codes.to(tl.float32) * inv_s[:, None]).to(a.dtype)
        acc = _float_dot(a, b, acc, UPCAST, IEEE)
    o_ptrs = out_ptr + rn.to(tl.int64)[:, None] * stride_on + rk[None, :] * stride_ok
    tl.store(o_ptrs, acc.to(out_ptr.dtype.element_ty), mask=n_ok[:, None] & k_ok[None, :])


# --------------------------------------------------------------------------- launch configuration

#: True when these kernels were decorated under ``TRITON_INTERPRET=1`` (they then run on CPU).
INTERPRET: bool = type(_fwd_kernel).__name__ == "InterpretedFunction"
_USE_RINT = not INTERPRET

# Under the interpreter: small fixed tiles, so tests cover multi-tile loops and masking.
_INTERP_GEMM = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "GROUP_M": 2}
_INTERP_ROW_BLOCK = 16


# (output-tile rows, output-tile cols, stages, warps) that every GEMM kernel's autotuner tries.
_TILES = [
    (128, 128, 4, 8),
    (128, 256, 3, 8),
    (256, 128, 3, 8),
    (64, 128, 4, 4),
    (128, 64, 4, 4),
]


def _configs(rows: str, cols: str, reduce: str, reduce_block: int) -> list[triton.Config]:
    """One config per tile shape: output tile ``[rows, cols]``, reduction block ``reduce``."""
    return [
        triton.Config(
            {rows: r, cols: c, reduce: reduce_block, "GROUP_M": 8}, num_stages=s, num_warps=w
        )
        for r, c, s, w in _TILES
    ]


def _gemm_configs(block_k: int) -> list[triton.Config]:
    return _configs("BLOCK_M", "BLOCK_N", "BLOCK_K", block_k)


def _grad_input_configs() -> list[triton.Config]:
    return _configs("BLOCK_M", "BLOCK_K", "BLOCK_N", 64)


def _grad_weight_configs() -> list[triton.Config]:
    return _configs("BLOCK_N", "BLOCK_K", "BLOCK_M", 64)


if INTERPRET:
    _fwd, _grad_input, _grad_weight = _fwd_kernel, _grad_input_kernel, _grad_weight_kernel
    _FIXED: dict[str, int] = _INTERP_GEMM
else:
    _fwd = triton.autotune(_gemm_configs(128), key=["M", "N", "K", "A_IS_CODES"])(_fwd_kernel)
    _grad_input = triton.autotune(_grad_input_configs(), key=["M", "N", "K"])(_grad_input_kernel)
    _grad_weight = triton.autotune(_grad_weight_configs(), key=["M", "N", "K"])(_grad_weight_kernel)
    _FIXED = {}


def _gemm_grid(rows: int, cols: int, row_key: str, col_key: str):
    def grid(meta: dict) -> tuple[int]:
        return (triton.cdiv(rows, meta[row_key]) * triton.cdiv(cols, meta[col_key]),)

    return grid


def _dot_flags(dtype: torch.dtype) -> dict[str, bool]:
    # Mirror torch: float32 matmuls use TF32 only where torch allows it.
    ieee = dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32
    return {"UPCAST": INTERPRET, "IEEE": ieee}


# --------------------------------------------------------------------------- launchers


def weight_quant(weight: torch.Tensor, s_w: torch.Tensor) -> torch.Tensor:
    """Int8 ternary codes of ``weight`` (any float dtype) for the float32 multiplier ``s_w``."""
    w = weight.contiguous()
    codes = torch.empty(w.shape, dtype=torch.int8, device=w.device)
    numel = w.numel()
    block = 1024 if not INTERPRET else 256
    _weight_quant_kernel[(triton.cdiv(numel, block),)](
        w, s_w, codes, numel, BLOCK=block, USE_RINT=_USE_RINT, num_warps=4
    )
    return codes


def _row_block(k: int) -> int:
    return _INTERP_ROW_BLOCK if INTERPRET else min(triton.next_power_of_2(k), 4096)


def act_quant(
    x2: torch.Tensor, *, store_codes: bool = True
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Per-row int8 codes (or ``None``) and float32 ``s_x`` ``[M]`` of a 2-D float ``x2``."""
    m, k = x2.shape
    s_x = torch.empty(m, dtype=torch.float32, device=x2.device)
    codes = torch.empty((m, k), dtype=torch.int8, device=x2.device) if store_codes else None
    if m:
        _act_quant_kernel[(m,)](
            x2,
            s_x,
            codes if store_codes else s_x,
            k,
            x2.stride(0),
            x2.stride(1),
            k,
            BLOCK_K=_row_block(k),
            STORE_CODES=store_codes,
            USE_RINT=_USE_RINT,
            num_warps=8 if not INTERPRET else 1,
        )
    return codes, s_x


def quant_matmul(
    a: torch.Tensor,
    s_x: torch.Tensor,
    w_codes: torch.Tensor,
    w_scale: torch.Tensor,
    out_dtype: torch.dtype,
    *,
    store_codes: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y = act_codes @ w_codes^T * w_scale / s_x`` in ``out_dtype``.

    ``a`` is either the int8 activation codes ``[M, K]`` or the float activation
    itself, quantized tile by tile in registers with the given ``s_x``; in that
    case ``store_codes=True`` also returns the int8 codes (for the backward pass).
    """
    m, k = a.shape
    n = w_codes.shape[0]
    a_is_codes = a.dtype == torch.int8
    y = torch.empty((m, n), dtype=out_dtype, device=a.device)
    store = store_codes and not a_is_codes
    codes = torch.empty((m, k), dtype=torch.int8, device=a.device) if store else None
    if m:
        _fwd[_gemm_grid(m, n, "BLOCK_M", "BLOCK_N")](
            a,
            s_x,
            w_codes,
            w_scale,
            y,
            codes if store else y,
            m,
            n,
            k,
            a.stride(0),
            a.stride(1),
            w_codes.stride(0),
            w_codes.stride(1),
            y.stride(0),
            y.stride(1),
            k,
            A_IS_CODES=a_is_codes,
            STORE_CODES=store,
            USE_RINT=_USE_RINT,
            **_FIXED,
        )
    return y, codes


def grad_input(
    g: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """``(g @ w_codes) * w_scale`` for ``g`` [M, N], ``w_codes`` [N, K]; float32 accumulation."""
    m, n = g.shape
    k = w_codes.shape[1]
    out = torch.empty((m, k), dtype=out_dtype, device=g.device)
    if m:
        _grad_input[_gemm_grid(m, k, "BLOCK_M", "BLOCK_K")](
            g,
            w_codes,
            w_scale,
            out,
            m,
            n,
            k,
            g.stride(0),
            g.stride(1),
            w_codes.stride(0),
            w_codes.stride(1),
            out.stride(0),
            out.stride(1),
            **_dot_flags(g.dtype),
            **_FIXED,
        )
    return out


def grad_weight(
    g: torch.Tensor, x_codes: torch.Tensor, s_x: torch.Tensor, out_dtype: torch.dtype
) -> torch.Tensor:
    """``g^T @ (x_codes / s_x)`` for ``g`` [M, N] and contiguous ``x_codes`` [M, K].

    Float32 accumulation; the dequantized activations exist only in registers.
    """
    m, n = g.shape
    k = x_codes.shape[1]
    if m == 0:
        return torch.zeros((n, k), dtype=out_dtype, device=g.device)
    out = torch.empty((n, k), dtype=out_dtype, device=g.device)
    _grad_weight[_gemm_grid(n, k, "BLOCK_N", "BLOCK_K")](
        g,
        x_codes,
        s_x,
        out,
        m,
        n,
        k,
        g.stride(0),
        g.stride(1),
        x_codes.stride(0),
        out.stride(0),
        out.stride(1),
        **_dot_flags(g.dtype),
        **_FIXED,
    )
    return out
