"""Our Q6_K encoder against gguf-py's decoder: layout, error bound, edge cases, export."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import quick_checkpoint
from gguf import GGMLQuantizationType, GGUFReader, quants

from ternlab.export.gguf_export import export_gguf
from ternlab.export.q6k import BLOCK_BYTES, QK_K, quantize_q6_k

Q6 = GGMLQuantizationType.Q6_K


def _roundtrip(a: np.ndarray) -> np.ndarray:
    return quants.dequantize(quantize_q6_k(a), Q6).reshape(a.shape)


def test_size_matches_ggml():
    a = np.ones((3, 512), np.float32)
    assert quantize_q6_k(a).shape == (3, 512 // QK_K * BLOCK_BYTES)
    assert BLOCK_BYTES == quants.GGML_QUANT_SIZES[Q6][1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_error_within_half_a_step(seed):
    """A value inside its sub-block's range decodes within half a step; the few beyond it (the
    quantized sub-block scale can fall short of the largest value, as in ggml) are clipped."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((16, 768)) * rng.uniform(1e-3, 10)).astype(np.float32)
    got = _roundtrip(a)
    blocks = quantize_q6_k(a).reshape(-1, BLOCK_BYTES)
    d = blocks[:, -2:].copy().view(np.float16).astype(np.float32)  # [n, 1]
    sc = blocks[:, 192:208].view(np.int8).astype(np.float32)  # [n, 16]
    step = np.abs(np.repeat(d * sc, 16, axis=1)).reshape(a.shape)
    inside = np.abs(a) <= 31 * step
    assert inside.mean() > 0.9
    assert np.all((np.abs(got - a) <= 0.5 * step * (1 + 1e-5))[inside])
    rel = np.sqrt(((got - a) ** 2).mean() / (a**2).mean())
    assert rel < 0.03, rel


def test_largest_value_is_exact_in_a_one_value_block():
    a = np.zeros((1, 256), np.float32)
    a[0, 77] = -3.5
    got = _roundtrip(a)
    assert abs(got[0, 77] + 3.5) <= 3.5 * 2**-10  # only d's fp16 rounding
    assert np.count_nonzero(got) == 1


def test_layout_positions():
    """Each position decodes to its own value: catches any nibble/bit-pair shuffle."""
    a = np.linspace(-1, 1, 256, dtype=np.float32)[None].repeat(2, 0)
    a[1] = a[1][::-1]
    got = _roundtrip(a)
    assert np.all(np.abs(got - a) < 0.05)


def test_zeros_and_bad_rows():
    assert not _roundtrip(np.zeros((2, 256), np.float32)).any()
    with pytest.raises(ValueError, match="multiple of 256"):
        quantize_q6_k(np.zeros((2, 100), np.float32))


def test_export_with_q6k_head(tmp_path):
    ckpt = quick_checkpoint(
        tmp_path,
        "model.hidden_size=256",
        "model.intermediate_size=512",
        "model.hidden_act=silu",
        "model.tie_word_embeddings=true",
    )
    out = tmp_path / "m.gguf"
    export_gguf(ckpt, out, "tq2_0", embed_type="q6_k")  # verify=True reads it back
    types = {t.name: t.tensor_type for t in GGUFReader(out).tensors}
    assert types["token_embd.weight"] == Q6
