"""Q4_0 files made by llama.cpp's own quantizer run in the engine as llama.cpp runs them.

A small random-weight F16 model is quantized to Q4_0 by ``llama_model_quantize`` (the
code behind ``llama-quantize``), its token embedding (tied: also the head) to Q4_0 as
well. Both engines then quantize the activations to int8 per 32 values with slightly
different rounding (ternlab's quantizer, llama.cpp's Q8_0), so their logits are close,
not equal: they must disagree far less than either differs from the F16 model, which is
the cost of the 4-bit weights both share.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, quants

from ternlab.inference import _kernels as K

llama_cpp = pytest.importorskip("llama_cpp")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import random_gguf  # noqa: E402

GGML_TYPE_Q4_0 = 2
N_TOKENS = 24


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """(the F16 model, llama.cpp's Q4_0 of it)."""
    d = tmp_path_factory.mktemp("q4_0")
    src, dst = d / "f16.gguf", d / "q4_0.gguf"
    random_gguf.write_random_gguf(src, random_gguf.SHAPES["small"], "f16", "f16", "bitnet", 0)
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    p.nthread = 1
    p.token_embedding_type = GGML_TYPE_Q4_0
    p.output_tensor_type = GGML_TYPE_Q4_0
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p))
    assert rc == 0, f"llama_model_quantize returned {rc}"
    return src, dst


def _tokens() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 1000, N_TOKENS).astype(np.int32)


def _ours(path: Path) -> np.ndarray:
    return np.asarray(K.Model(str(path), 1, 128, "auto").eval(_tokens(), True))


def test_linear_layers_decode_as_gguf_py(files):
    """Every Q4_0 matrix llama.cpp wrote multiplies within the activation rounding of
    x @ W^T, W being gguf-py's dequantization of the same bytes."""
    _, dst = files
    tensors = [t for t in GGUFReader(dst).tensors if t.tensor_type.name == "Q4_0"]
    assert {t.name for t in tensors} >= {"token_embd.weight", "blk.0.attn_q.weight"}
    r = np.random.default_rng(1)
    for t in tensors:
        w = quants.dequantize(t.data, t.tensor_type).reshape(int(t.shape[1]), int(t.shape[0]))
        lin = K.load_linear(str(dst), t.name)
        x = r.standard_normal((3, w.shape[1])).astype(np.float32)
        exact = x.astype(np.float64) @ w.astype(np.float64).T
        # Per 32 values, a code moves x by at most half a step, max|x_block| / 254.
        step = np.abs(x.reshape(3, -1, 32)).max(-1) / 254 * 1.001
        bound = np.einsum("tb,ob->to", step, np.abs(w).reshape(w.shape[0], -1, 32).sum(-1))
        err = np.abs(lin.forward(x) - exact)
        assert (err <= bound + 1e-5).all(), f"{t.name}: max error / bound {np.max(err / bound):.3g}"
        np.testing.assert_array_equal(K.dequantize_row(str(dst), t.name, 5), w[5])


def test_logits_match_llamacpp(files):
    src, dst = files
    llm = llama_cpp.Llama(model_path=str(dst), n_ctx=128, logits_all=True, verbose=False)
    llm.eval(_tokens().tolist())
    theirs = np.array(llm.scores[:N_TOKENS], dtype=np.float32)
    ours = _ours(dst).reshape(theirs.shape)
    f16 = _ours(src).reshape(theirs.shape)

    def rms(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))

    disagreement, weight_cost = rms(ours - theirs), rms(theirs - f16)
    print(f"rms: ternlab - llama.cpp {disagreement:.4f}, llama.cpp - f16 {weight_cost:.4f}")
    assert weight_cost > 0.01  # the 4-bit weights do change the logits
    assert disagreement < 0.25 * weight_cost
    assert np.abs(ours - theirs).max() < 0.25 * np.abs(theirs - f16).max()
