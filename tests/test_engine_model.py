"""The C++ transformer runner (``_kernels.Model``) against PyTorch, on GGUF files.

Parity: tiny ternlab checkpoints exported with ``export_gguf`` run in the engine
and in PyTorch (transformers' BitNet with ternlab's *frozen* BitLinear, the
exact integer computation of the engine). The PyTorch side uses exactly what the
file holds: embeddings/head rounded as exported (F16, Q8_0, Q6_K or Q4_0), TQ
scales rounded to fp16, the int8 activations of Q6_K, Q8_0 and Q4_0 matrices
(``IntActLinear``). What remains are float32 rounding differences (RMSNorm sums,
exp, attention order), about 4e-7 of the logit scale; they depend on the CPU
(PyTorch picks its kernels by CPU family, and the tiny checkpoints are trained on it).

The flip analysis. Rarely such a 1-ulp difference moves an activation across an
int8 rounding boundary; that one flipped code shifts the logits of its position,
and through the KV cache every later one of its prompt, by up to ~1e-2 of the
logit scale. Flips are rare independent events, at a rate per position measured
at 0.005-0.0125 on these models (24 prompts of 32 tokens, PyTorch on its AVX2
and AVX-512 kernels, the engine on every x86 ISA). So ternary parity runs many
short prompts and checks: every position within ``FLIPPED``, and the number of
prompts holding any position beyond ``CLOSE`` at most the binomial budget
(``flip_budget``) for ``FLIP_RATE``, a bound such a process exceeds with
probability below 1e-6. A real bug (a wrong norm, RoPE or attention) moves every
prompt past its first positions, far beyond that budget.
Float models (FP16 baseline, llama) have no int8 step and are held to
``CLOSE``-level tolerances everywhere, except a Q8_0 baseline, whose layers quantize
their inputs to int8 as the ternary ones do (the same flip analysis).

A ``llama`` file written here from a random transformers Llama (q/k permuted as
llama.cpp's converter does) checks the interleaved RoPE; hand-written files
check the KV cache, chunked prefill and every refusal.
"""

from __future__ import annotations

import math
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from export_helpers import quick_checkpoint

from ternlab.bitlinear import act_quant, freeze
from ternlab.bitlinear.surgery import bitlinear_modules
from ternlab.export import names
from ternlab.export.codec import expected_float, fp16_scale
from ternlab.export.gguf_export import export_gguf
from ternlab.export.torch_model import load_torch_model
from ternlab.inference import _kernels

# Relative to max |logit| of the reference, per position (row).
CLOSE = 1e-5  # float32 rounding (measured: about 4e-7)
FLIPPED = 3e-2  # after an int8 activation code flipped by rounding (measured: up to 1.0e-2)
FLIP_RATE = 0.025  # design rate of flips per position: twice the highest measured (0.0125)
PARITY_PROMPTS, PARITY_LEN = 24, 12  # the prompts of every ternary parity check


# --- checkpoints and their exports --------------------------------------------------------


def _train(root: Path, *extra: str) -> Path:
    # Rows of 256 values: the smallest shape every ternary GGUF type accepts.
    return quick_checkpoint(root, "model.hidden_size=256", "model.intermediate_size=512", *extra)


@pytest.fixture(scope="module")
def silu(tmp_path_factory) -> Path:
    """Ternary, SiLU, tied embeddings: ``bitnet``."""
    root = tmp_path_factory.mktemp("silu")
    return _train(root, "model.hidden_act=silu", "model.tie_word_embeddings=true")


@pytest.fixture(scope="module")
def relu2(tmp_path_factory) -> Path:
    """Ternary, ReLU², untied head: ``bitnet-b1.58``; trained a little (20 steps) so
    that greedy decoding produces a varied continuation."""
    root = tmp_path_factory.mktemp("relu2")
    return _train(root, "trainer.max_steps=20", "data.arith.num_examples=2000")


@pytest.fixture(scope="module")
def fp(tmp_path_factory) -> Path:
    """The full-precision baseline (quant=none), SiLU, tied."""
    root = tmp_path_factory.mktemp("fp")
    return _train(root, "quant=none", "model.hidden_act=silu", "model.tie_word_embeddings=true")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(ckpt, qtype, embed_type)``: the GGUF file, exported once per module."""
    cache: dict[tuple, Path] = {}

    def get(ckpt: Path, qtype: str, embed_type: str = "f16") -> Path:
        key = (ckpt, qtype, embed_type)
        if key not in cache:
            out = tmp_path_factory.mktemp("gguf") / f"{qtype}-{embed_type}.gguf"
            export_gguf(ckpt, out, qtype, embed_type=embed_type)
            cache[key] = out
        return cache[key]

    return get


INT8_BLOCK = {"q6_k": 256, "q8_0": 32, "q4_0": 32}  # activation block of the int8 kernels


class IntActLinear(torch.nn.Module):
    """The engine's Q6_K, Q8_0 and Q4_0 matrices (inference/csrc/kernels/q6k_int8.h,
    q8_0_int8.h, q4_0_int8.h) quantize their input to int8 per block of 256 or 32 values:
    against a float head that moves every position's logits by 1.5e-3 to 3e-3 of their scale
    (measured, Q6_K), far beyond CLOSE. With the same codes, what remains is float32 rounding
    (here float64; measured 1.8e-7), and the flip analysis of the module doc."""

    def __init__(self, weight: torch.Tensor, block: int):
        super().__init__()
        self.weight = weight
        self.block = block

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q = act_quant(h.reshape(*h.shape[:-1], -1, self.block))
        x = (q.codes.double() / q.inv_scale.double()).reshape(h.shape)
        return (x @ self.weight.double().T).float()


@torch.no_grad()
def torch_reference(ckpt: Path, qtype: str, embed_type: str = "f16") -> torch.nn.Module:
    """The checkpoint in PyTorch holding exactly the values of its ``qtype`` export."""
    model = load_torch_model(ckpt)
    done = set()
    for mod in (model.model.embed_tokens, model.lm_head):  # tied: one tensor, rounded once
        if mod.weight.data_ptr() not in done:
            done.add(mod.weight.data_ptr())
            mod.weight.copy_(torch.from_numpy(expected_float(mod.weight.numpy(), embed_type)))
    if embed_type in INT8_BLOCK:
        model.lm_head = IntActLinear(model.lm_head.weight, INT8_BLOCK[embed_type])
    if any(True for _ in bitlinear_modules(model)):
        freeze(model)
        if qtype in ("tq1_0", "tq2_0"):
            for _, m in bitlinear_modules(model):
                m.weight_scale.copy_(torch.tensor(fp16_scale(float(m.weight_scale))))
    else:
        for name, m in list(model.named_modules()):
            if isinstance(m, torch.nn.Linear) and name.endswith("_proj"):
                m.weight.copy_(torch.from_numpy(expected_float(m.weight.numpy(), qtype)))
                if qtype in INT8_BLOCK:
                    parent, _, child = name.rpartition(".")
                    setattr(
                        model.get_submodule(parent),
                        child,
                        IntActLinear(m.weight, INT8_BLOCK[qtype]),
                    )
    return model


@torch.no_grad()
def torch_logits(model: torch.nn.Module, ids: np.ndarray) -> np.ndarray:
    return model(torch.as_tensor(ids, dtype=torch.long)[None]).logits[0].numpy()


def prompt(n: int, vocab: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, n).astype(np.int32)


def row_errors(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """max |got - want| of each position, relative to max |want|."""
    assert got.shape == want.shape, (got.shape, want.shape)
    return np.abs(got - want).max(axis=-1) / np.abs(want).max()


def assert_close(got: np.ndarray, want: np.ndarray, what: str, tol: float = CLOSE) -> None:
    err = float(row_errors(got, want).max())
    assert err <= tol, f"{what}: max |diff| = {err:.2e} x max |logit| > {tol:g}"


def flip_budget(prompts: int, length: int, rate: float = FLIP_RATE, p_fail: float = 1e-6) -> int:
    """The most prompts that may hold a flipped code: the smallest k with
    P(Binomial(prompts, q) > k) < p_fail, q = 1 - (1 - rate)**length the chance that
    a prompt of ``length`` positions holds at least one flip."""
    q = 1.0 - (1.0 - rate) ** length
    tail = 1.0
    for k in range(prompts + 1):
        tail -= math.comb(prompts, k) * q**k * (1.0 - q) ** (prompts - k)
        if tail < p_fail:
            return k
    return prompts


def parity_prompts(vocab: int, seed: int = 0) -> list[np.ndarray]:
    return [prompt(PARITY_LEN, vocab, seed * 1000 + i) for i in range(PARITY_PROMPTS)]


def assert_ternary_parity(got: list[np.ndarray], want: list[np.ndarray], what: str) -> None:
    """Per prompt, every position CLOSE or FLIPPED; few prompts with any flip (module doc)."""
    err = np.stack([row_errors(g, w) for g, w in zip(got, want, strict=True)])
    assert err.max() <= FLIPPED, f"{what}: max |diff| = {err.max():.2e} x max |logit|"
    flipped, budget = int((err > CLOSE).any(axis=1).sum()), flip_budget(*err.shape)
    assert budget < len(err), "the budget must leave prompts that have to agree"
    assert flipped <= budget, (
        f"{what}: {flipped} of {len(err)} prompts have positions beyond {CLOSE:g} x max |logit| "
        f"(flips at {FLIP_RATE}/position stay within {budget})"
    )


def engine_and_torch(m, ref: torch.nn.Module, prompts: list[np.ndarray]):
    """Each prompt's logits from a fresh cache, and PyTorch's (one batch)."""
    got = []
    for ids in prompts:
        m.truncate(0)
        got.append(m.eval(ids, all_logits=True))
    with torch.no_grad():
        batch = torch.as_tensor(np.stack(prompts), dtype=torch.long)
        want = ref(batch).logits.float().numpy()
    return got, list(want)


def decode_each(m, ids: np.ndarray) -> np.ndarray:
    """Token-by-token through the KV cache, logits of every step."""
    return np.stack([m.eval(ids[i : i + 1]) for i in range(len(ids))])


# --- parity with PyTorch ---------------------------------------------------------------------


@pytest.fixture(params=_kernels.available_isas())
def isa(request):
    """Runs the test once per ISA this CPU has, its kernels forced (set_isa)."""
    _kernels.set_isa(request.param)
    yield request.param
    _kernels.set_isa("auto")


@pytest.mark.parametrize("which", ["silu", "relu2"])
@pytest.mark.parametrize("qtype", ["i2_s", "tq2_0"])
def test_ternary_parity(which, qtype, request, exported, isa):
    ckpt = request.getfixturevalue(which)
    m = _kernels.Model(exported(ckpt, qtype), threads=2)
    assert m.config["arch"] == {"silu": "bitnet", "relu2": "bitnet-b1.58"}[which]
    prompts = parity_prompts(m.config["n_vocab"])
    got, want = engine_and_torch(m, torch_reference(ckpt, qtype), prompts)
    assert_ternary_parity(got, want, f"{which} {qtype} prefill ({isa})")
    # Decoding through the KV cache computes exactly what the prefill computes.
    m.truncate(0)
    np.testing.assert_array_equal(decode_each(m, prompts[0]), got[0])
    assert m.n_past == PARITY_LEN


def test_fp_baseline_parity(fp, exported, isa):
    m = _kernels.Model(exported(fp, "f16"))
    ids = prompt(40, m.config["n_vocab"], seed=1)
    want = torch_logits(torch_reference(fp, "f16"), ids)
    assert_close(m.eval(ids, all_logits=True), want, f"fp f16 ({isa})")


def test_fp_baseline_q8_0_parity(fp, exported, isa):
    # Q8_0 layers quantize their input to int8 (IntActLinear): the flip analysis applies.
    m = _kernels.Model(exported(fp, "q8_0"))
    prompts = parity_prompts(m.config["n_vocab"], seed=3)
    got, want = engine_and_torch(m, torch_reference(fp, "q8_0"), prompts)
    assert_ternary_parity(got, want, f"fp q8_0 ({isa})")
    m.truncate(0)
    np.testing.assert_array_equal(decode_each(m, prompts[0]), got[0])


@pytest.mark.parametrize("embed_type", ["q8_0", "q6_k", "q4_0"])
def test_quantized_embeddings(relu2, exported, embed_type, isa):
    m = _kernels.Model(exported(relu2, "tq2_0", embed_type))
    prompts = parity_prompts(m.config["n_vocab"], seed=2)
    got, want = engine_and_torch(m, torch_reference(relu2, "tq2_0", embed_type), prompts)
    assert_ternary_parity(got, want, f"tq2_0 with {embed_type} embeddings ({isa})")
    m.truncate(0)  # decode (the GEMV) gives the logits of prefill (the GEMM) exactly
    for i, tok in enumerate(prompts[0]):
        np.testing.assert_array_equal(m.eval([int(tok)], all_logits=False), got[0][i])


def test_greedy_generation_matches_torch(relu2, exported):
    """32 greedy tokens after a training-format prompt, engine (KV cache) vs PyTorch."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(relu2 / "tokenizer.json"))
    ids = tok.encode("Question: Ada has 3 apples. Ada gets 4 more. How many apples does").ids
    m = _kernels.Model(exported(relu2, "i2_s"), threads=2)
    logits, engine = m.eval(ids), []
    for _ in range(32):
        engine.append(int(np.argmax(logits)))
        logits = m.eval([engine[-1]])
    ref, seq = torch_reference(relu2, "i2_s"), list(ids)
    for _ in range(32):
        seq.append(int(np.argmax(torch_logits(ref, np.array(seq))[-1])))
    assert engine == seq[len(ids) :], tok.decode(engine)
    assert len(set(engine)) > 3  # a real continuation, not one token repeated


# --- llama: interleaved RoPE on converter-permuted q/k ----------------------------------------


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf's permute: rotate-half rows -> interleaved pairs."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


HP = dict(n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=96, n_vocab=80, n_ctx=64)


def write_gguf(
    path: Path,
    arch: str,
    hp: dict,
    tensors: dict[str, np.ndarray],
    tokenizer_json: str | None = None,
    **extra,
) -> Path:
    """A model file from numpy tensors (row-major [out, in]); ``hp`` gives the metadata.

    ``tokenizer_json``: a ``tokenizer.huggingface.json`` to embed (what ``Engine`` needs).
    """
    w = gguf.GGUFWriter(path, arch)
    if tokenizer_json is not None:
        w.add_string("tokenizer.huggingface.json", tokenizer_json)
    w.add_context_length(hp["n_ctx"])
    w.add_embedding_length(hp["n_embd"])
    w.add_block_count(hp["n_layer"])
    w.add_feed_forward_length(hp["n_ff"])
    w.add_head_count(hp["n_head"])
    w.add_head_count_kv(hp["n_head_kv"])
    w.add_layer_norm_rms_eps(hp.get("eps", 1e-5))
    w.add_rope_freq_base(hp.get("rope_base", 10000.0))
    for key, value in extra.items():
        if isinstance(value, str):
            w.add_string(f"{arch}.{key}", value)
        else:
            w.add_uint32(f"{arch}.{key}", value)
    for name, a in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def random_tensors(hp: dict, sub_norm: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Float32 weights of a model with ``hp``, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    e, f, v = hp["n_embd"], hp["n_ff"], hp["n_vocab"]
    hd = e // hp["n_head"]
    nq, nkv = hp["n_head"] * hd, hp["n_head_kv"] * hd

    def lin(o: int, i: int) -> np.ndarray:
        return rng.normal(0, i**-0.5, (o, i)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return rng.uniform(0.5, 1.5, n).astype(np.float32)

    t = {"token_embd.weight": rng.normal(0, 1, (v, e)).astype(np.float32)}
    for i in range(hp["n_layer"]):
        p = f"blk.{i}."
        t |= {
            p + "attn_norm.weight": norm(e),
            p + "attn_q.weight": lin(nq, e),
            p + "attn_k.weight": lin(nkv, e),
            p + "attn_v.weight": lin(nkv, e),
            p + "attn_output.weight": lin(e, nq),
            p + "ffn_norm.weight": norm(e),
            p + "ffn_gate.weight": lin(f, e),
            p + "ffn_up.weight": lin(f, e),
            p + "ffn_down.weight": lin(e, f),
        }
        if sub_norm:
            t |= {p + "attn_sub_norm.weight": norm(nq), p + "ffn_sub_norm.weight": norm(f)}
    t |= {"output_norm.weight": norm(e), "output.weight": lin(v, e)}
    return t


def make_llama(
    folder: Path, hp: dict, tokenizer_json: str | None = None
) -> tuple[Path, torch.nn.Module]:
    """A random transformers Llama and its ``llama`` GGUF (F32, q/k permuted)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=hp["n_vocab"],
        hidden_size=hp["n_embd"],
        intermediate_size=hp["n_ff"],
        num_hidden_layers=hp["n_layer"],
        num_attention_heads=hp["n_head"],
        num_key_value_heads=hp["n_head_kv"],
        max_position_embeddings=hp["n_ctx"],
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    tensors = random_tensors(hp, sub_norm=False)
    state = {}
    for name in model.state_dict():
        a = tensors[names.to_gguf(name)]
        state[name] = torch.from_numpy(a)
        if name.endswith("q_proj.weight"):
            tensors[names.to_gguf(name)] = permute_qk(a, hp["n_head"])
        elif name.endswith("k_proj.weight"):
            tensors[names.to_gguf(name)] = permute_qk(a, hp["n_head_kv"])
    model.load_state_dict(state)
    return write_gguf(folder / "llama.gguf", "llama", hp, tensors, tokenizer_json), model


# Head layouts the attention kernels treat differently: query heads per KV head
# 2, 6 (a group of 4, then 2), 3, and head_dim 12 (not a multiple of 8: scalar).
LLAMA_SHAPES = {
    "gqa2": HP,
    "gqa6": HP | {"n_embd": 96, "n_head": 6, "n_head_kv": 1},
    "gqa3": HP | {"n_embd": 96, "n_head": 3, "n_head_kv": 1},
    "hd12": HP | {"n_embd": 48, "n_head": 4, "n_head_kv": 4},
}


@pytest.fixture(scope="module", params=list(LLAMA_SHAPES))
def llama(request, tmp_path_factory):
    hp = LLAMA_SHAPES[request.param]
    path, model = make_llama(tmp_path_factory.mktemp("llama"), hp)
    return path, model, hp


def test_llama_parity(llama):
    path, model, hp = llama
    m = _kernels.Model(path)
    assert m.config["arch"] == "llama" and not m.config["neox_rope"]
    ids = prompt(hp["n_ctx"], hp["n_vocab"], seed=4)
    want = torch_logits(model, ids)
    assert_close(m.eval(ids, all_logits=True), want, "llama prefill")
    m.truncate(0)
    assert_close(decode_each(m, ids), want, "llama decode")


@pytest.mark.parametrize("isa", ["scalar", "avx2"])
def test_llama_parity_per_isa(llama, isa):
    """The scalar reference and the AVX2 attention kernels, each against PyTorch."""
    if isa not in _kernels.available_isas():
        pytest.skip(f"{isa} is not available on this CPU")
    path, model, hp = llama
    ids = prompt(hp["n_ctx"], hp["n_vocab"], seed=5)
    _kernels.set_isa(isa)
    try:
        got = _kernels.Model(path).eval(ids, all_logits=True)
    finally:
        _kernels.set_isa("auto")
    assert_close(got, torch_logits(model, ids), f"llama with {isa}")


# --- the KV cache, batching and threads ----------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A random ``bitnet`` (F32 weights, sub-norms) with a 1200-token context."""
    hp = HP | {"n_ctx": 1200}
    path = tmp_path_factory.mktemp("syn") / "bitnet.gguf"
    return write_gguf(path, "bitnet", hp, random_tensors(hp, sub_norm=True, seed=5))


def test_chunked_prefill_equals_pieces(synthetic):
    """1100 tokens: chunks of 512 inside one call, against pieces and single tokens."""
    m = _kernels.Model(synthetic)
    assert m.n_ctx == 1200
    ids = prompt(1100, HP["n_vocab"], seed=6)
    whole = m.eval(ids, all_logits=True)
    m.truncate(0)
    parts = [m.eval(ids[a:b], all_logits=True) for a, b in [(0, 700), (700, 1000), (1000, 1100)]]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    m.truncate(1050)
    np.testing.assert_array_equal(decode_each(m, ids[1050:]), whole[1050:])


def test_last_logits_equal_last_row(silu, exported):
    m = _kernels.Model(exported(silu, "tq2_0"))
    ids = prompt(20, m.config["n_vocab"], seed=8)
    last = m.eval(ids)
    assert last.shape == (m.config["n_vocab"],) and last.dtype == np.float32
    m.truncate(0)
    assert np.array_equal(m.eval(ids, all_logits=True)[-1], last)


def test_truncate_then_reeval_is_identical(relu2, exported):
    m = _kernels.Model(exported(relu2, "tq2_0"))
    ids = prompt(30, m.config["n_vocab"], seed=9)
    first = m.eval(ids, all_logits=True)
    m.truncate(10)
    assert m.n_past == 10
    assert np.array_equal(m.eval(ids[10:], all_logits=True), first[10:])
    m.truncate(0)
    assert np.array_equal(m.eval(ids, all_logits=True), first)


@pytest.mark.parametrize("act", ["relu2", "silu"])
def test_threads_do_not_change_results(request, exported, act):
    path = exported(request.getfixturevalue(act), "i2_s")
    # 160 tokens x 512 FFN values: past the size from which the FFN's activation is
    # split over the threads (model.cpp split_range), and one decode step under it.
    ids = prompt(160, 512, seed=10)

    def run(m) -> tuple[np.ndarray, np.ndarray]:
        m.truncate(0)
        return m.eval(ids, all_logits=True), m.eval([5])  # prefill, then one decode step

    one = run(_kernels.Model(path, threads=1))
    m = _kernels.Model(path, threads=2)
    assert m.threads == 2
    for got, want in zip(run(m), one, strict=True):
        np.testing.assert_array_equal(got, want)
    m.threads = 1
    for got, want in zip(run(m), one, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("qtype", ["i2_s", "tq1_0", "tq2_0"])
def test_layouts_give_identical_logits(relu2, exported, qtype):
    # The base-3 and 2-bit in-memory layouts hold the same codes: prefill and
    # decode logits must be bit-identical, whatever the file's type.
    path = exported(relu2, qtype)
    ids = prompt(24, 512, seed=11)
    runs = {}
    for layout in ("bits2", "base3"):
        m = _kernels.Model(path, threads=2, layout=layout)
        assert m.layout == layout
        runs[layout] = (m.eval(ids, all_logits=True), m.eval([7]))
    for got, want in zip(runs["base3"], runs["bits2"], strict=True):
        np.testing.assert_array_equal(got, want)
    assert _kernels.Model(path, layout="auto").layout == _kernels.preferred_layout()
    with pytest.raises(ValueError, match="unknown ternary layout 'base4'"):
        _kernels.Model(path, layout="base4")


def test_config_metadata_and_context(relu2, exported):
    m = _kernels.Model(exported(relu2, "i2_s"), n_ctx=100)
    c = m.config
    assert (c["n_embd"], c["n_layer"], c["n_head"], c["n_head_kv"]) == (256, 2, 4, 2)
    assert (c["n_ff"], c["n_vocab"], c["head_dim"], c["n_ctx_train"]) == (512, 512, 64, 256)
    assert c["relu2"] and c["sub_norm"] and c["neox_rope"] and c["rope_base"] == 500000.0
    assert (c["bos"], c["eos"]) == (1, 2)
    assert m.metadata["general.architecture"] == "bitnet-b1.58"
    assert (m.n_ctx, m.n_past) == (100, 0)
    assert _kernels.Model(exported(relu2, "i2_s")).n_ctx == 256  # default: the training context


def test_token_array_likes(relu2, exported):
    m = _kernels.Model(exported(relu2, "i2_s"))
    want = m.eval(np.array([5, 6, 7], dtype=np.int32))
    for ids in (
        [5, 6, 7],
        (5, 6, 7),
        np.array([5, 6, 7], dtype=np.uint16),
        torch.tensor([5, 6, 7]),
    ):
        m.truncate(0)
        assert np.array_equal(m.eval(ids), want)


# --- refusals ---------------------------------------------------------------------------------


def test_bad_tokens_and_overflow(synthetic):
    m = _kernels.Model(synthetic, n_ctx=16)
    with pytest.raises(ValueError, match=r"`tokens`\[1\] = 80 is outside the vocabulary \[0, 80\)"):
        m.eval([1, 80])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m.eval([-1])
    with pytest.raises(ValueError, match="empty"):
        m.eval([])
    with pytest.raises(ValueError, match="1-D"):
        m.eval([[1, 2]])
    with pytest.raises(TypeError, match="integers"):
        m.eval([1.0, 2.0])
    assert m.n_past == 0
    m.eval(list(range(10)))
    with pytest.raises(
        ValueError, match="context overflow.*n_past = 10 \\+ 7 new tokens > n_ctx = 16"
    ):
        m.eval(list(range(7)))
    assert m.n_past == 10
    with pytest.raises(ValueError, match="truncate"):
        m.truncate(11)
    with pytest.raises(ValueError, match="threads"):
        m.threads = 0
    with pytest.raises(ValueError, match="n_ctx = 5000 exceeds the training context"):
        _kernels.Model(synthetic, n_ctx=5000)
    with pytest.raises(ValueError, match="threads"):
        _kernels.Model(synthetic, threads=0)


def test_non_finite_activation_rolls_back(tmp_path):
    t = random_tensors(HP, sub_norm=True)
    t["token_embd.weight"][7] = np.inf
    m = _kernels.Model(write_gguf(tmp_path / "inf.gguf", "bitnet", HP, t))
    m.eval([1, 2, 3])
    with pytest.raises(RuntimeError, match=r"non-finite .*blk\.0\.attn_q\.weight.*token 1"):
        m.eval([4, 7, 5])
    assert m.n_past == 3


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t, hp: t.pop("blk.1.ffn_down.weight"), "tensor blk.1.ffn_down.weight is missing"),
        (
            lambda t, hp: t.pop("blk.0.attn_sub_norm.weight"),
            "tensor blk.0.attn_sub_norm.weight is missing; the 'bitnet' architecture needs it",
        ),
        (
            lambda t, hp: t.update({"blk.0.attn_k.weight": np.zeros((64, 64), np.float32)}),
            r"blk\.0\.attn_k\.weight has shape \[64, 64\], expected \[64, 32\]",
        ),
        (
            lambda t, hp: t.update({"output.weight": np.zeros((81, 64), np.float32)}),
            r"output\.weight has shape \[64, 81\], expected \[64, 80\]",
        ),
        (lambda t, hp: hp.update(n_head=0), "head_count = 0 is outside"),
        (lambda t, hp: hp.update(n_head=5), "not a multiple of bitnet.attention.head_count = 5"),
        (lambda t, hp: hp.update(n_head_kv=3), "head_count = 4 is not a multiple of"),
        (lambda t, hp: hp.update(n_ctx=1 << 30), "context_length = 1073741824 is outside"),
        (lambda t, hp: hp.update(eps=0.0), "epsilon = 0.0+ must be in"),
        (lambda t, hp: hp.update(n_embd=48), "token_embd.weight must be 2-D with rows of"),
        (
            lambda t, hp: t.update(
                {"token_embd.weight": t["token_embd.weight"].astype(np.float64)}
            ),
            r"token_embd\.weight \(the token embedding\) has type F64; the engine reads it as "
            r"F32, F16, Q8_0, Q6_K or Q4_0",
        ),
    ],
)
def test_bad_files_are_refused(tmp_path, change, match):
    hp, t = dict(HP), random_tensors(HP, sub_norm=True)
    change(t, hp)
    path = write_gguf(tmp_path / "bad.gguf", "bitnet", hp, t)
    with pytest.raises(_kernels.GGUFError, match=match) as e:
        _kernels.Model(path)
    assert str(path) in str(e.value)


def test_unsupported_architecture(tmp_path):
    path = write_gguf(tmp_path / "g.gguf", "gpt2", HP, random_tensors(HP, sub_norm=False))
    with pytest.raises(_kernels.GGUFError, match="'gpt2' is not supported"):
        _kernels.Model(path)


@pytest.mark.parametrize(
    ("extra", "tensor", "match"),
    [
        ({"rope.dimension_count": 8}, None, "rope.dimension_count = 8"),
        ({"rope.scaling.type": "linear"}, None, "scaled RoPE is not supported"),
        ({"expert_count": 8}, None, "mixture-of-experts"),
        ({}, "rope_freqs.weight", "rope_freqs.weight .* not supported"),
    ],
)
def test_unsupported_variants_refused(tmp_path, extra, tensor, match):
    """Llama variants the engine would compute wrongly: refused, never run."""
    t = random_tensors(HP, sub_norm=False)
    if tensor:
        t[tensor] = np.ones(HP["n_embd"] // HP["n_head"] // 2, np.float32)
    path = write_gguf(tmp_path / "v.gguf", "llama", HP, t, **extra)
    with pytest.raises(_kernels.GGUFError, match=match):
        _kernels.Model(path)


def test_missing_file():
    with pytest.raises(_kernels.GGUFError):
        _kernels.Model("/nonexistent/model.gguf")


def test_attention_kernels_follow_the_isa():
    # Every x86 SIMD ISA runs the AVX2 attention (head_dim a multiple of 8), NEON its own
    # (a multiple of 4); the scalar ISA and other head sizes take the reference.
    simd = {"avx2": "avx2", "avxvnni": "avx2", "avx512": "avx2", "avx512vbmi": "avx2",
            "amx": "avx2", "neon": "neon", "neondot": "neon"}  # fmt: skip
    for isa in _kernels.available_isas():
        _kernels.set_isa(isa)
        assert _kernels.attention_kernel_isa(64) == simd.get(isa, "scalar"), isa
        assert _kernels.attention_kernel_isa(10) == "scalar"
    _kernels.set_isa("auto")
