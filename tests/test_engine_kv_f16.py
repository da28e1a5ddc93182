"""The f16 KV cache (``kv_type="f16"``): its kernels, its rounding, and models using it.

Kernels: each ISA's f16 attention kernels (scores over K, weighted sum over V^T, reading
IEEE halves) against the scalar f16 reference, within the bounds the self-test states for
the float32 kernels (``tools/selftest.cpp``), and bit-identical to the same ISA's float32
kernels on the widened cache (the half -> float conversion is exact).

Models: random ``llama`` files against PyTorch with the attention's K and V rounded to
half (``.half()``, as the cache stores them). The engine's K and V differ from PyTorch's
by float32 rounding, and about 2e-4 of the values (measured) sit close enough to a half
rounding boundary for that to round them the other way: a flip of one half ulp, which
moves the logits of the later positions of its prompt by up to ~2e-4 of the logit scale
(as much as rounding the whole cache does). So, over 24 prompts of 12 tokens: the median
position within ``CLOSE`` (float32 rounding; measured 3e-7 to 4e-7, while the float32
cache is 1.5e-4 away and a cache that truncated instead of rounding 3.7e-4), the mean
error at most a quarter of the float32 cache's (measured 2-6%), every position within
1e-3. Then the engine-level paths that touch the cache: KV bytes, ``eval_batch`` over
slots, copying a slot's prefix, ``Engine.logits(first=)`` prefix reuse.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from test_engine_model import CLOSE, LLAMA_SHAPES, make_llama, prompt, row_errors, torch_logits

from ternlab.inference import _kernels
from ternlab.inference.engine import Engine

U = 2.0**-24  # float32 unit roundoff
ISAS = ["scalar", "avx2", "avxvnni", "avx512", "avx512vbmi", "amx", "neon", "neondot"]
PROMPTS, LENGTH = 24, 12


@pytest.fixture(params=ISAS)
def isa(request):
    if request.param not in _kernels.available_isas():
        pytest.skip(f"{request.param} is not available on this CPU")
    _kernels.set_isa(request.param)
    yield request.param
    _kernels.set_isa("auto")


# --- the rounding -----------------------------------------------------------------------


def test_float_to_half_rounds_like_numpy():
    """Ties to even, overflow to inf at 65520, subnormals, signed zeros (as ``.half()``).

    Checked by hand over all 2**32 float32 bit patterns; here a sweep with a prime stride,
    random values of every magnitude, and the boundaries.
    """
    rng = np.random.default_rng(0)
    sweep = np.arange(0, 2**32, 65521, dtype=np.uint64).astype(np.uint32).view(np.float32)
    scaled = (rng.normal(0, 1, 200_000) * 2.0 ** rng.integers(-30, 20, 200_000)).astype(np.float32)
    half_ulps = np.arange(0, 2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    mids = half_ulps[np.isfinite(half_ulps)].astype(np.float32)  # every half, and neighbours
    edges = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, 0)])
    specials = np.array([65504, 65519.996, 65520, 2**-24, 2**-25, 2**-25 * 1.0000001, 3 * 2**-26,
                         -0.0, 0.0, np.inf, -np.inf, np.nan], np.float32)  # fmt: skip
    x = np.concatenate([sweep, scaled, edges, specials, -specials])
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(np.float16)
    got = _kernels.float_to_half(x)
    assert got.dtype == np.float16 and got.shape == x.shape
    nan = np.isnan(x)
    assert np.isnan(got[nan]).all()
    bad = np.flatnonzero(got.view(np.uint16)[~nan] != want.view(np.uint16)[~nan])
    assert bad.size == 0, f"{bad.size} values, e.g. {x[~nan][bad[:5]]} -> {got[~nan][bad[:5]]}"


# --- the kernels ----------------------------------------------------------------------------


@pytest.mark.parametrize("hd", [4, 8, 12, 16, 64, 128])
def test_f16_kernels_match_the_scalar_f16_reference(isa, hd):
    rng = np.random.default_rng(hd)
    scale = np.float32(1 / np.sqrt(hd))
    for n in (1, 2, 3, 5, 8, 13, 33, 100):
        for G in range(1, 5):
            q = rng.uniform(-2, 2, (G, hd)).astype(np.float32)
            k16 = rng.uniform(-2, 2, (n, hd)).astype(np.float16)
            vt16 = rng.uniform(-1, 1, (hd, n)).astype(np.float16)
            p = rng.uniform(0, 1, (G, n)).astype(np.float32)
            p /= p.sum(axis=1, keepdims=True)
            k, vt = k16.astype(np.float32), vt16.astype(np.float32)  # exact
            what = f"{isa} hd={hd} n={n} G={G}"

            s, mx = _kernels.attention_scores(q, k16, scale)
            s_ref, mx_ref = _kernels.attention_scores(q, k16, scale, reference=True)
            # The f16 kernel is its ISA's float32 kernel on the widened cache, bit for bit.
            s32, mx32 = _kernels.attention_scores(q, k, scale)
            np.testing.assert_array_equal(s, s32, err_msg=what)
            np.testing.assert_array_equal(mx, mx32, err_msg=what)
            np.testing.assert_array_equal(mx, s.max(axis=1), err_msg=what)
            np.testing.assert_array_equal(s_ref, _kernels.attention_scores(q, k, scale, True)[0])
            bound = (2 * hd + 2) * U * scale * (np.abs(q[:, None, :]) * np.abs(k)).sum(-1)
            assert (np.abs(s.astype(np.float64) - s_ref) <= bound).all(), what
            exact = (q.astype(np.float64) @ k.T.astype(np.float64)) * float(scale)
            assert (np.abs(s_ref - exact) <= bound).all(), what  # the reference itself

            o = _kernels.attention_weighted_sum(p, vt16)
            o_ref = _kernels.attention_weighted_sum(p, vt16, reference=True)
            np.testing.assert_array_equal(o, _kernels.attention_weighted_sum(p, vt), err_msg=what)
            np.testing.assert_array_equal(o_ref, _kernels.attention_weighted_sum(p, vt, True))
            bound = (2 * n + 2) * U * (np.abs(p)[:, None, :] * np.abs(vt)).sum(-1)
            assert (np.abs(o.astype(np.float64) - o_ref) <= bound).all(), what
            exact = p.astype(np.float64) @ vt.T.astype(np.float64)
            assert (np.abs(o_ref - exact) <= bound).all(), what
            # Deterministic.
            np.testing.assert_array_equal(_kernels.attention_scores(q, k16, scale)[0], s)
            np.testing.assert_array_equal(_kernels.attention_weighted_sum(p, vt16), o)


def test_kernel_arguments_are_checked():
    q = np.zeros((2, 8), np.float32)
    with pytest.raises(TypeError, match="`k` must be float32 or float16"):
        _kernels.attention_scores(q, np.zeros((3, 8), np.float64), 1.0)
    with pytest.raises(ValueError, match=r"k \[n >= 1, hd\]"):
        _kernels.attention_scores(q, np.zeros((3, 4), np.float16), 1.0)
    with pytest.raises(ValueError, match="1 <= G <= 4"):
        _kernels.attention_weighted_sum(np.zeros((5, 3), np.float32), np.zeros((8, 3), np.float16))


# --- models -------------------------------------------------------------------------------


def half_kv_logits(model, ids: np.ndarray) -> np.ndarray:
    """PyTorch's logits with every layer's K (after RoPE) and V rounded to half."""
    from transformers.models.llama import modeling_llama

    eager = modeling_llama.eager_attention_forward

    def rounded(module, query, key, value, *args, **kwargs):
        return eager(module, query, key.half().float(), value.half().float(), *args, **kwargs)

    with mock.patch.object(modeling_llama, "eager_attention_forward", rounded):
        return torch_logits(model, ids)


# Default GQA, a group of 4 then 2 query heads, head_dim 12 (scalar kernels on x86).
MODEL_SHAPES = ("gqa2", "gqa6", "hd12")


@pytest.fixture(scope="module", params=MODEL_SHAPES)
def llama(request, tmp_path_factory):
    """A random llama, and PyTorch's logits of PROMPTS prompts with half K/V and float K/V."""
    hp = LLAMA_SHAPES[request.param]
    path, model = make_llama(tmp_path_factory.mktemp("kv16"), hp)
    model.set_attn_implementation("eager")
    prompts = [prompt(LENGTH, hp["n_vocab"], seed=100 + i) for i in range(PROMPTS)]
    return path, prompts, [half_kv_logits(model, ids) for ids in prompts]


def engine_logits(path, prompts, kv_type: str) -> list[np.ndarray]:
    m = _kernels.Model(path, kv_type=kv_type)
    assert m.kv_type == kv_type
    out = []
    for ids in prompts:
        m.truncate(0)
        out.append(m.eval(ids, all_logits=True))
    return out


def test_f16_cache_matches_pytorch_with_half_kv(llama, isa):
    path, prompts, ref = llama
    e16, e32 = engine_logits(path, prompts, "f16"), engine_logits(path, prompts, "f32")
    err16 = np.concatenate([row_errors(g, w) for g, w in zip(e16, ref, strict=True)])
    err32 = np.concatenate([row_errors(g, w) for g, w in zip(e32, ref, strict=True)])
    summary = (
        f"{isa}: f16 cache median {np.median(err16):.1e} mean {err16.mean():.1e} max "
        f"{err16.max():.1e}; f32 cache median {np.median(err32):.1e} mean {err32.mean():.1e}"
    )
    assert np.median(err32) > 10 * CLOSE, summary  # the reference does see the rounding
    assert np.median(err16) <= CLOSE, summary
    assert err16.mean() <= 0.25 * err32.mean(), summary
    assert err16.max() <= 1e-3, summary


def test_f16_logits_are_close_to_f32(llama):
    """The f16 cache moves the logits by rounding only: small, never a clear argmax."""
    path, prompts, _ = llama
    e16 = np.concatenate(engine_logits(path, prompts, "f16"))
    e32 = np.concatenate(engine_logits(path, prompts, "f32"))
    diff = np.abs(e16 - e32).max(axis=1)
    scale = np.abs(e32).max()
    # Half rounds each cached value by at most 2^-11 of it; measured 1.4e-4 to 3e-4.
    assert 0 < diff.max() <= 2e-3 * scale, diff.max() / scale
    top2 = np.sort(e32, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * diff  # no rounding of this size can swap them
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(e16.argmax(1)[clear], e32.argmax(1)[clear])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random llama with a word-level tokenizer embedded, so that ``Engine`` loads it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    hp = LLAMA_SHAPES["gqa2"]
    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(hp["n_vocab"])}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path, _ = make_llama(tmp_path_factory.mktemp("kv16e"), hp, tok.to_str())
    return path, hp


def test_kv_cache_bytes_halve(tiny):
    path, hp = tiny
    hd = hp["n_embd"] // hp["n_head"]
    values = 3 * 40 * hp["n_layer"] * 2 * hp["n_head_kv"] * hd  # slots, n_ctx, K and V
    e32 = Engine(path, threads=1, n_ctx=40, slots=3)
    e16 = Engine(path, threads=1, n_ctx=40, slots=3, kv_type="f16")
    assert (e32.kv_type, e16.kv_type) == ("f32", "f16")
    assert (e32.kv_cache_bytes, e16.kv_cache_bytes) == (4 * values, 2 * values)


def test_slots_batches_and_copies_with_f16(tiny):
    """A sequence's logits in an f16 batch equal its logits alone; a copied prefix too."""
    path, hp = tiny
    alone = Engine(path, threads=2, kv_type="f16")
    eng = Engine(path, threads=2, slots=3, kv_type="f16")
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, hp["n_vocab"], n).tolist() for n in (30, 9, 4)]
    want = [alone.logits(s) for s in seqs]
    assert not np.array_equal(want[0], Engine(path, threads=2).logits(seqs[0]))  # f16 is used
    out = eng.eval_batch([1, 0, 2], [seqs[0][:20], seqs[1][:5], seqs[2][:2]], [True, False, True])
    np.testing.assert_array_equal(out[:20], want[0][:20])
    np.testing.assert_array_equal(out[20], want[1][4])
    np.testing.assert_array_equal(out[21:], want[2][:2])
    pos = [20, 5, 2]
    while any(p < len(s) for p, s in zip(pos, seqs, strict=True)):
        live = [i for i in range(3) if pos[i] < len(seqs[i])]
        step = [seqs[i][pos[i] : pos[i] + 1] for i in live]
        out = eng.eval_batch([[1, 0, 2][i] for i in live], step, [False] * len(live))
        for row, i in zip(out, live, strict=True):
            np.testing.assert_array_equal(row, want[i][pos[i]])
            pos[i] += 1
    eng.keep_prefix(2, 12, source=1)  # copy_seq of an f16 cache
    np.testing.assert_array_equal(eng.eval_batch([2], [seqs[0][12:]], [True]), want[0][12:])


def test_prefix_reuse_with_f16_equals_a_fresh_evaluation(tiny):
    path, hp = tiny
    rng = np.random.default_rng(2)
    ctx = rng.integers(0, hp["n_vocab"], 17).tolist()
    choices = [rng.integers(0, hp["n_vocab"], n).tolist() for n in (2, 3, 6)]
    eng = Engine(path, threads=2, kv_type="f16")
    fresh = Engine(path, threads=1, kv_type="f16")
    for i, cont in enumerate(choices):
        inp = ctx + cont[:-1]
        got = eng.logits(inp, first=len(ctx) - 1)
        np.testing.assert_array_equal(got, fresh.logits(inp)[len(ctx) - 1 :])
        assert eng.last.cached_tokens == (0 if i == 0 else len(ctx) - 1)


def test_bad_kv_type_names_the_option(tiny):
    path, _ = tiny
    with pytest.raises(ValueError, match=r"kv_type must be 'f32' or 'f16', got 'bf16'"):
        Engine(path, kv_type="bf16")
    with pytest.raises(ValueError, match=r"kv_type must be 'f32' or 'f16', got 'q8_0'"):
        _kernels.Model(path, kv_type="q8_0")
    assert Engine(path, threads=1).kv_type == "f32"
