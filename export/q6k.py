"""ggml's Q6_K (type 14) encoder in numpy; gguf-py only decodes it.

A block holds 256 values: ``ql[128]`` (low 4 bits), ``qh[64]`` (high 2 bits),
``scales[16]`` (int8, one per 16 values) and an fp16 ``d``; value ``i`` of
sub-block ``b`` is ``d * scales[b] * (q[i] - 32)`` with ``q`` in ``0..63``.
Within each half of 128 values, ``ql[l]`` holds values ``l`` and ``l + 64`` in
its low and high nibble, ``ql[l + 32]`` values ``l + 32`` and ``l + 96``, and
``qh[l]`` the high bits of ``l``, ``l + 32``, ``l + 64``, ``l + 96`` in bits
0-1, 2-3, 4-5, 6-7 (ggml-quants.c ``quantize_row_q6_K_ref``).

The scales follow ggml's structure: a sub-block's scale maps its largest-magnitude
value to -32, and the 16 scales are quantized against the block's largest one.
ggml's reference additionally searches a few scales around that one for the
least squared error; we do not, so our bytes can differ from llama-quantize's
while decoding the same way (the layout is what runtimes read).
"""

from __future__ import annotations

import numpy as np

QK_K = 256
BLOCK_BYTES = 210


def _signed_absmax(x: np.ndarray, axis: int) -> np.ndarray:
    """The value of largest magnitude along ``axis``, with its sign."""
    idx = np.abs(x).argmax(axis=axis)
    return np.take_along_axis(x, np.expand_dims(idx, axis), axis=axis).squeeze(axis)


def _levels(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q in 0..63 [n, 256] uint8, int8 scales [n, 16], fp16 d [n])."""
    sub = blocks.reshape(-1, 16, 16)
    s = _signed_absmax(sub, 2) / np.float32(-32)  # [n, 16]
    top = _signed_absmax(s, 1)  # [n]
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(top == 0, 0, np.float32(-128) / top).astype(np.float32)
        sc = np.clip(np.rint(iscale[:, None] * s), -128, 127).astype(np.int8)
        d = np.where(iscale == 0, 0, np.float32(1) / iscale).astype(np.float16)
        dd = d.astype(np.float32)[:, None] * sc.astype(np.float32)  # [n, 16]
        q = np.where(dd[:, :, None] == 0, 0, np.rint(sub / dd[:, :, None]))
    q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(-1, QK_K)
    return q, sc, d


def _pack(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levels [n, 256] -> ql [n, 128], qh [n, 64]."""
    h = q.reshape(-1, 2, 4, 32)  # [block, half, quarter, l]: value 128*half + 32*quarter + l
    lo, hi = h & 0x0F, h >> 4
    ql = np.concatenate([lo[:, :, 0] | (lo[:, :, 2] << 4), lo[:, :, 1] | (lo[:, :, 3] << 4)], 2)
    qh = hi[:, :, 0] | (hi[:, :, 1] << 2) | (hi[:, :, 2] << 4) | (hi[:, :, 3] << 6)
    return ql.reshape(-1, 128), qh.reshape(-1, 64)


def quantize_q6_k(array: np.ndarray) -> np.ndarray:
    """float32 ``[..., K]`` (``K % 256 == 0``) -> uint8 ``[..., K // 256 * 210]``."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    if a.shape[-1] % QK_K:
        raise ValueError(f"Q6_K packs rows of a multiple of {QK_K} values, got {a.shape[-1]}")
    blocks = a.reshape(-1, QK_K)
    q, sc, d = _levels(blocks)
    ql, qh = _pack(q)
    out = np.concatenate([ql, qh, sc.view(np.uint8), d.reshape(-1, 1).view(np.uint8)], axis=1)
    return out.reshape(*a.shape[:-1], a.shape[-1] // QK_K * BLOCK_BYTES)
