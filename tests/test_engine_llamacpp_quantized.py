"""Q4_0 and Q8_0 files made by llama.cpp's own quantizer run in the engine as llama.cpp
runs them.

A small random-weight F16 model is quantized to Q4_0 or Q8_0 by ``llama_model_quantize``
(the code behind ``llama-quantize``), its token embedding (tied: also the head) to the
same type. Both engines then quantize the activations to int8 per 32 values with slightly
different rounding (ternlab's quantizer, llama.cpp's Q8_0), so their logits are close,
not equal. For Q4_0 they must disagree far less than either differs from the F16 model,
the cost of the 4-bit weights both share. For Q8_0 that cost is of the size of the
disagreement itself: llama.cpp rounds each activation block's scale to fp16, so a few per
cent of its codes round the other way than ternlab's (measured, rms over the logits:
engines 0.0065 apart on Q8_0 and 0.0003 on the F16 file; Q8_0 against F16 0.0065; logits
0.32). There the check is that the disagreement is no larger than that cost and a small
part of the logits' size (a misread block would move them by their whole size).
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

# type name: (GGML type id, llama.cpp's file type)
TYPES = {
    "q4_0": (2, llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0),
    "q8_0": (8, llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0),
}
N_TOKENS = 24


@pytest.fixture(scope="module", params=sorted(TYPES))
def files(request, tmp_path_factory) -> tuple[Path, Path]:
    """(the F16 model, llama.cpp's Q4_0 or Q8_0 of it)."""
    type_id, ftype = TYPES[request.param]
    d = tmp_path_factory.mktemp(request.param)
    src, dst = d / "f16.gguf", d / f"{request.param}.gguf"
    random_gguf.write_random_gguf(src, random_gguf.SHAPES["small"], "f16", "f16", "bitnet", 0)
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 1
    p.token_embedding_type = type_id
    p.output_tensor_type = type_id
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p))
    assert rc == 0, f"llama_model_quantize returned {rc}"
    return src, dst


def _tokens() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 1000, N_TOKENS).astype(np.int32)


def _ours(path: Path) -> np.ndarray:
    return np.asarray(K.Model(str(path), 1, 128, "auto").eval(_tokens(), True))


def test_linear_layers_decode_as_gguf_py(files):
    """Every quantized matrix llama.cpp wrote multiplies within the activation rounding of
    x @ W^T, W being gguf-py's dequantization of the same bytes."""
    _, dst = files
    qtype = dst.stem.upper()
    tensors = [t for t in GGUFReader(dst).tensors if t.tensor_type.name == qtype]
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
    assert weight_cost > 0.001  # the quantized weights do change the logits
    if dst.stem == "q4_0":
        assert disagreement < 0.25 * weight_cost
        assert np.abs(ours - theirs).max() < 0.25 * np.abs(theirs - f16).max()
    else:
        assert disagreement < 1.5 * weight_cost
        assert disagreement < 0.05 * rms(theirs)
