"""A real llama.cpp (llama-cpp-python, the ``[interop]`` extra) runs ternlab's GGUF exports.

A small SiLU model (tied embeddings, as llama.cpp's ``bitnet`` graph needs) is
trained for 300 steps on the arithmetic data, exported as TQ1_0, TQ2_0 and, for
the FP baseline, F16. llama.cpp quantizes activations per 256 values (Q8_K)
where ternlab quantizes per token, so logits are close, not equal: we require
|Δlogit| <= 0.25 (measured about 0.05 on logits up to ~14) at every position of
one teacher-forced sequence, and the same greedy tokens for 20 steps up to the
first near tie. The model is trained on the machine that runs the test, and
PyTorch's CPU kernels differ between ISAs, so a near tie (PyTorch's top two
closer than two tolerances) can occur on one CPU and not another; there the
other activation quantization may legitimately pick the other token.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ternlab.export.gguf_export import export_gguf
from ternlab.export.torch_model import load_torch_model

llama_cpp = pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.slow

PROMPT = "12+34="
N_NEW = 20
LOGIT_TOL = 0.25


def _train(out: Path, cache: Path, quant: str) -> Path:
    from ternlab.train import compose, train

    res = train(
        compose(
            [
                "model=tiny",
                "model.hidden_size=256",
                "model.intermediate_size=512",
                "model.hidden_act=silu",
                "model.tie_word_embeddings=true",
                f"quant={quant}",
                "tracking=disabled",
                "data.seq_len=32",
                "data.arith.num_examples=1500",
                "trainer.batch_size=8",
                "trainer.max_steps=300",
                "trainer.progress=false",
                "trainer.plot=false",
                "trainer.eval_every=1000",
                "trainer.eval_batches=2",
                "optim.warmup_steps=2",
                "optim.lr=3e-3",
                f"data.cache_dir={cache}",
                f"trainer.output_dir={out}",
            ]
        )
    )
    return res.checkpoint


@pytest.fixture(scope="module")
def silu_ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("silu")
    return _train(root / "run", root / "cache", "ternary")


def _greedy_torch(model, prompt: list[int]) -> tuple[list[int], np.ndarray]:
    """Greedy tokens (no EOS stop) and the logits at every position of prompt + tokens."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(N_NEW):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        logits = model(torch.tensor([ids])).logits[0].numpy()
    return ids[len(prompt) :], logits


def _llama(path: Path):
    return llama_cpp.Llama(model_path=str(path), n_ctx=128, logits_all=True, verbose=False)


def _greedy_llama(llm, prompt: list[int]) -> list[int]:
    out: list[int] = []
    for t in llm.generate(prompt, temp=0.0, top_k=1):
        out.append(int(t))
        if len(out) == N_NEW:
            return out
    return out


def _compare(ckpt: Path, gguf: Path, model=None) -> float:
    """Assert close logits and greedy equality up to a near tie; returns the largest |Δlogit|."""
    from transformers import AutoTokenizer

    prompt = AutoTokenizer.from_pretrained(ckpt).encode(PROMPT)
    ours, logits = _greedy_torch(model or load_torch_model(ckpt), prompt)
    llm = _llama(gguf)
    try:
        theirs = _greedy_llama(llm, prompt)
        llm.reset()
        llm.eval(prompt + ours)
        scores = np.array(llm.scores[: len(prompt) + N_NEW])
    finally:
        llm.close()
    diff = float(np.abs(scores - logits).max())
    assert diff <= LOGIT_TOL, diff
    _assert_same_greedy(ours, theirs, logits[len(prompt) - 1 :])
    return diff


def _assert_same_greedy(ours: list[int], theirs: list[int], logits: np.ndarray) -> None:
    """llama.cpp's greedy tokens equal ours up to the first step where it picks a token
    PyTorch ranks within ``2 * LOGIT_TOL`` of its own pick (a flip the logit bound allows)."""
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if a == b:
            continue
        margin = float(logits[step, a] - logits[step, b])
        assert margin <= 2 * LOGIT_TOL, (
            f"greedy step {step}: llama.cpp picked token {b}, which PyTorch ranks {margin:.3f} "
            f"below its pick {a}; only a near tie (<= {2 * LOGIT_TOL}) may flip"
        )
        return


def test_llamacpp_tokenizes_like_ours(silu_ckpt, tmp_path):
    """The GGUF tokenizer (tokens, merges, pre-tokenizer ``gpt-2``) splits text as ours does."""
    from transformers import AutoTokenizer

    out = tmp_path / "m.gguf"
    export_gguf(silu_ckpt, out, "tq2_0")
    tok = AutoTokenizer.from_pretrained(silu_ckpt)
    llm = _llama(out)
    try:
        for text in [PROMPT, "Natalia sold clips.\n#### 72", "  two  spaces, ünï?!"]:
            ids = tok.encode(text)
            assert llm.tokenize(text.encode(), add_bos=False, special=False) == ids, text
            assert llm.detokenize(ids).decode() == text
    finally:
        llm.close()


@pytest.mark.parametrize("qtype", ["tq2_0", "tq1_0"])
def test_llamacpp_matches_pytorch(silu_ckpt, tmp_path, qtype):
    out = tmp_path / f"m-{qtype}.gguf"
    export_gguf(silu_ckpt, out, qtype)
    diff = _compare(silu_ckpt, out)
    print(f"{qtype}: max |Δlogit| = {diff:.4f}")


def test_llamacpp_runs_fp16_baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp")
    ckpt = _train(root / "run", root / "cache", "none")
    out = root / "fp16.gguf"
    export_gguf(ckpt, out, "f16")
    diff = _compare(ckpt, out)
    print(f"f16: max |Δlogit| = {diff:.4f}")


def test_llamacpp_reads_our_q6k_head(silu_ckpt, tmp_path):
    """Our Q6_K bytes decode in llama.cpp as gguf-py decodes them: the PyTorch model given the
    gguf-py-dequantized embedding (tied: also the head) matches llama.cpp as closely as F16."""
    from gguf import GGUFReader

    from ternlab.export.codec import decode_float

    out = tmp_path / "m-q6k.gguf"
    export_gguf(silu_ckpt, out, "tq2_0", embed_type="q6_k")
    emb = next(t for t in GGUFReader(out).tensors if t.name == "token_embd.weight")
    assert emb.tensor_type.name == "Q6_K"
    model = load_torch_model(silu_ckpt)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(torch.from_numpy(decode_float(emb)))
    diff = _compare(silu_ckpt, out, model)
    print(f"tq2_0 + q6_k head: max |Δlogit| = {diff:.4f}")
