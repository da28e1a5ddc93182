"""The Python engine: tokenizer, sampling, chat templates, generation and perplexity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from engine_helpers import engine_model
from tokenizers import Tokenizer

from ternlab.inference import engine as engine_mod
from ternlab.inference.chat import (
    FALLBACK_STOPS,
    ChatTemplateError,
    render_chat,
    stops_for,
)
from ternlab.inference.engine import Engine, StopBuffer, sliding_windows
from ternlab.inference.sampling import (
    Sampler,
    SamplingParams,
    sample,
    softmax,
    sorted_candidates,
    top_p_cut,
)
from ternlab.inference.tokenizer import K_HF_JSON, TokenizerError, tokenizer_from_metadata

TEXTS = ["12+34=46", "héllo wörld 😀 € 日本", "  two  spaces\n\nnew lines\t", "<|bos|>1+1=2<|eos|>"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return engine_model(tmp_path_factory)


@pytest.fixture(scope="module")
def eng(model) -> Engine:
    return Engine(model[0], threads=2)


# ------------------------------------------------------------------ tokenizer
@pytest.mark.parametrize("text", TEXTS)
def test_encode_equals_checkpoint_tokenizer(eng, model, text):
    ref = Tokenizer.from_file(str(model[1] / "tokenizer.json"))
    want = ref.encode(text, add_special_tokens=False).ids
    assert eng.encode(text, add_bos=False) == want
    assert eng.encode(text, add_bos=True) == (
        [eng.bos_id] + want if want[0] != eng.bos_id else want
    )
    assert eng.decode(want) == ref.decode(want, skip_special_tokens=True)


def test_decode_round_trip(eng):
    for text in TEXTS[:3]:
        assert eng.decode(eng.encode(text)) == text


def test_special_ids_from_metadata(eng, model):
    import json

    cfg = json.loads((model[1] / "config.json").read_text())
    assert (eng.bos_id, eng.eos_id) == (cfg["bos_token_id"], cfg["eos_token_id"])
    assert eng.tokenizer.source == K_HF_JSON


def test_ggml_arrays_give_the_same_tokenizer(eng):
    """llama.cpp-style files (no tokenizer.huggingface.json): the BPE from tokens + merges."""
    meta = {k: v for k, v in eng.metadata.items() if k != K_HF_JSON}
    tok = tokenizer_from_metadata(meta, "x.gguf")
    assert tok.source == "tokenizer.ggml.tokens"
    for text in TEXTS:
        assert tok.encode(text) == eng.encode(text)
        assert tok.decode(tok.encode(text)) == eng.decode(eng.encode(text))


def test_llama3_pre_tokenizer_splits_digits_in_threes(eng):
    meta = {k: v for k, v in eng.metadata.items() if k != K_HF_JSON}
    meta["tokenizer.ggml.pre"] = "llama-bpe"
    tok = tokenizer_from_metadata(meta, "x.gguf")
    pieces = tok.tokenizer.pre_tokenizer.pre_tokenize_str("12345 ab")
    assert [p for p, _ in pieces] == ["123", "45", "Ġab"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tokenizer.ggml.model": "llama"}, ["'llama'", "not supported", "SentencePiece"]),
        ({"tokenizer.ggml.pre": "qwen2"}, ["'qwen2'", "not supported"]),
        ({"tokenizer.ggml.model": None}, ["no tokenizer"]),
        ({"tokenizer.ggml.eos_token_id": 10**6}, ["eos_token_id", "1000000"]),
    ],
)
def test_unsupported_tokenizers_are_refused_clearly(eng, change, words):
    meta = {k: v for k, v in eng.metadata.items() if k != K_HF_JSON}
    meta.update(change)
    meta = {k: v for k, v in meta.items() if v is not None}
    with pytest.raises(TokenizerError) as e:
        tokenizer_from_metadata(meta, "bad.gguf")
    assert "bad.gguf" in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_incremental_decoding_waits_for_whole_characters(eng):
    text = "héllo 😀 € 日本"
    ids = eng.encode(text, add_bos=False)
    dec = eng.tokenizer.stream(eng.encode("1+1="))
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert "" in pieces[:-1]  # some character really was split across tokens
    assert len(ids) > len(text)


def test_incremental_decoding_flushes_an_unfinished_character(eng):
    ids = eng.encode("😀", add_bos=False)[:-1]  # the last byte never comes
    dec = eng.tokenizer.stream()
    assert [dec.push(i) for i in ids] == [""] * len(ids)
    assert dec.flush() == "\ufffd"


# ------------------------------------------------------------------- sampling
def test_top_k_keeps_the_k_largest_and_breaks_ties_by_id():
    x = np.array([0.5, 2.0, 1.0, 2.0, -1.0, 1.0], dtype=np.float32)
    ids, vals = sorted_candidates(x, 3)
    assert ids.tolist() == [1, 3, 2] and vals.tolist() == [2.0, 2.0, 1.0]
    assert sorted_candidates(x)[0].tolist() == [1, 3, 2, 5, 0, 4]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert [top_p_cut(logits, p) for p in (0.4, 0.5, 0.79, 0.81, 0.96, 1.0)] == [1, 1, 2, 3, 4, 4]


def test_sampling_follows_the_filtered_distribution():
    """top-k 3 then temperature 0.5: frequencies match softmax(logits[:3] / 0.5)."""
    logits = np.array([2.0, 1.5, 1.0, 0.9, -3.0])
    params = SamplingParams(temperature=0.5, top_k=3, seed=0)
    rng = np.random.default_rng(0)
    draws = np.bincount([sample(logits, params, rng) for _ in range(6000)], minlength=5)
    want = softmax(logits[:3] / 0.5)
    assert draws[3:].sum() == 0
    assert np.abs(draws[:3] / 6000 - want).max() < 0.02


def test_top_p_ignores_the_temperature():
    """The nucleus is taken at temperature 1, so a high temperature cannot widen it."""
    logits = np.log(np.array([0.6, 0.3, 0.1]))
    params = SamplingParams(temperature=100.0, top_p=0.85, seed=1)
    s = Sampler(params)
    assert {s(logits) for _ in range(300)} == {0, 1}


def test_seeded_sampler_is_reproducible():
    logits = np.random.default_rng(5).normal(size=300)
    a = Sampler(SamplingParams(1.0, 0, 0.9, seed=7))
    b = Sampler(SamplingParams(1.0, 0, 0.9, seed=7))
    c = Sampler(SamplingParams(1.0, 0, 0.9, seed=8))
    ra, rb, rc = ([s(logits) for _ in range(50)] for s in (a, b, c))
    assert ra == rb and ra != rc


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -1},
        {"temperature": float("nan")},
        {"top_k": -1},
        {"top_p": 0},
        {"top_p": 1.5},
        {"seed": -3},
    ],
)
def test_bad_sampling_parameters_name_the_parameter(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SamplingParams(**kwargs)


# ---------------------------------------------------------------------- chat
CHATML = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "1+1?"},
]


def test_chat_template_renders_like_transformers():
    out = render_chat(MSGS[1:2], CHATML, bos_token="<s>")
    assert out == "<s><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    out = render_chat(MSGS[1:2], CHATML, add_generation_prompt=False)
    assert out == "<|im_start|>user\nhi<|im_end|>\n"


def test_fallback_template_is_a_transcript():
    out = render_chat(MSGS)
    assert out == "Be brief.\n\nUser: hi\nAssistant: hello\nUser: 1+1?\nAssistant:"
    assert stops_for(None) == FALLBACK_STOPS and stops_for(CHATML) == ()


@pytest.mark.parametrize(
    ("template", "messages", "match"),
    [
        ("{{ raise_exception('no system role') }}", MSGS, "no system role"),
        ("{{ ''.__class__.__mro__ }}", MSGS, "render"),  # the sandbox refuses
        ("{% for %}", MSGS, "not valid Jinja2"),
        (None, [{"role": "robot", "content": "x"}], r"messages\[0\].role"),
        (None, [{"role": "user", "content": 3}], r"messages\[0\].content"),
        (None, [], "non-empty"),
    ],
)
def test_chat_errors_are_clear(template, messages, match):
    with pytest.raises(ChatTemplateError, match=match):
        render_chat(messages, template)


def test_engine_chat_prompt_uses_the_fallback(eng):
    assert eng.chat_template is None
    assert eng.render_chat(MSGS[1:2]) == "User: hi\nAssistant:"
    assert eng.chat_stops() == FALLBACK_STOPS


# -------------------------------------------------------------- stop strings
def test_stop_buffer_holds_back_possible_starts():
    buf = StopBuffer(["END", "\nUser:"])
    assert buf.push("abc E") == ("abc ", False)
    assert buf.push("N") == ("", False)
    assert buf.push("x\nUs") == ("ENx", False)
    assert buf.push("er: more") == ("", True)
    buf = StopBuffer(["END"])
    assert buf.push("aEN") == ("a", False) and buf.flush() == "EN"


# ---------------------------------------------------------------- generation
def _greedy_by_logits(eng: Engine, ids: list[int], n: int) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        out.append(int(np.argmax(eng.logits(ids + out)[-1])))
    return out


def test_properties(eng, model):
    assert eng.n_vocab == 512 and eng.n_ctx == 256
    assert eng.config["arch"] == "bitnet" and eng.config["n_layer"] == 2
    assert eng.file_size == model[0].stat().st_size
    assert eng.metadata["ternlab.tensor_type"] == "i2_s"


def test_greedy_generation_is_argmax_of_logits(eng):
    ids = eng.encode("12+7=", add_bos=True)
    text = "".join(eng.generate(ids, max_tokens=12, temperature=0.0))
    st = eng.last
    got = st.tokens
    assert got == _greedy_by_logits(eng, ids, len(got))
    assert text == eng.decode(got)
    if st.finish_reason == "length":
        assert len(got) == 12
    else:  # ended at EOS: the model's next choice was EOS
        assert _greedy_by_logits(eng, ids + got, 1) == [eng.eos_id]


def test_logits_are_independent_of_chunking(eng, monkeypatch):
    ids = eng.encode("3+4=7\n5+6=11\n", add_bos=True) * 3
    whole = eng.logits(ids)
    monkeypatch.setattr(engine_mod, "N_BATCH", 7)
    chunked = eng.logits(ids)
    assert whole.shape == (len(ids), eng.n_vocab)
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-4)


def test_seeded_sampling_is_reproducible(eng):
    kw = {"max_tokens": 20, "temperature": 1.5, "seed": 3}
    a = ("".join(eng.generate("1+", **kw)), eng.last.tokens)
    b = ("".join(eng.generate("1+", **kw)), eng.last.tokens)
    c = ("".join(eng.generate("1+", **(kw | {"seed": 4}))), eng.last.tokens)
    assert a == b and a[1] != c[1]


def test_top_k_1_is_greedy(eng):
    greedy = "".join(eng.generate("4+4=", max_tokens=10))
    k1 = "".join(eng.generate("4+4=", max_tokens=10, temperature=2.0, top_k=1, seed=1))
    assert k1 == greedy


def test_stop_strings_end_the_text(eng):
    free = "".join(eng.generate("9+", max_tokens=24))
    assert len(free) >= 6
    stop = free[3:5]
    cut = free.index(stop)
    text = "".join(eng.generate("9+", max_tokens=24, stop=["never", stop]))
    assert text == free[:cut]
    assert eng.last.finish_reason == "stop"


def test_max_tokens_and_context_end(model):
    eng = Engine(model[0], threads=1, n_ctx=12)
    ids = eng.encode("1+2=3", add_bos=True)
    list(eng.generate(ids, max_tokens=100))
    st = eng.last
    assert st.finish_reason == "length"
    assert st.completion_tokens == 12 - len(ids) + 1  # the last one needs no cache slot
    assert eng.n_cached == 12
    list(eng.generate(ids, max_tokens=2))
    assert eng.last.completion_tokens == 2 and eng.last.finish_reason == "length"
    with pytest.raises(ValueError, match="context holds 12"):
        eng.generate(list(range(12)))


def test_prompt_extending_the_last_one_reuses_the_cache(eng, model):
    first = eng.encode("1+1=2\n", add_bos=True)
    list(eng.generate(first, max_tokens=4))
    said = eng.last.tokens
    nxt = first + said + eng.encode("3+3=", add_bos=False)
    text = "".join(eng.generate(nxt, max_tokens=8))
    assert eng.last.cached_tokens == len(first) + len(said) - 1  # the last sampled is new
    fresh = Engine(model[0], threads=1)
    assert "".join(fresh.generate(nxt, max_tokens=8)) == text
    assert fresh.last.cached_tokens == 0
    assert eng.last.prefill_tps > 0 and eng.last.prompt_tokens == len(nxt)


def test_timings_are_recorded(eng):
    list(eng.generate("2+2=", max_tokens=6, temperature=0.0))
    st = eng.last
    if st.completion_tokens > 1:
        assert st.decode_evals == st.completion_tokens - 1
        assert st.decode_tps > 0


# ---------------------------------------------------------------- perplexity
def _nll(eng: Engine, ids: list[int]) -> tuple[float, int]:
    lp = eng.logits(ids).astype(np.float64)
    lp = lp - lp.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    return -sum(lp[i - 1, ids[i]] for i in range(1, len(ids))), len(ids) - 1


def test_perplexity_is_exp_mean_nll_of_logits(eng):
    ids = eng.encode("12+34=46\n7+8=15\n", add_bos=True)
    res = eng.perplexity(ids)
    nll, n = _nll(eng, ids)
    assert res.n_tokens == n and res.n_windows == 1
    assert res.ppl == pytest.approx(math.exp(nll / n), rel=1e-6)


def test_sliding_window_perplexity_matches_transformers_recipe(eng):
    ids = eng.encode("1+2=3\n4+5=9\n10+11=21\n" * 3, add_bos=True)
    window, stride = 16, 5
    # transformers' guide: score the last trg_len labels of each window, minus the shift.
    nll_sum, n_scored, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        trg_len = end - prev_end
        lp = eng.logits(ids[begin:end]).astype(np.float64)
        lp -= lp.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        for j in range(max(end - trg_len, begin + 1), end):
            nll_sum -= lp[j - begin - 1, ids[j]]
            n_scored += 1
        prev_end = end
        if end == len(ids):
            break
    res = eng.perplexity(ids, window=window, stride=stride)
    assert res.n_tokens == n_scored == len(ids) - 1
    assert res.ppl == pytest.approx(math.exp(nll_sum / n_scored), rel=1e-6)
    assert res.n_windows == len(list(sliding_windows(len(ids), window, stride)))


def test_sliding_windows_cover_every_target_once():
    for n, w, s in [(10, 4, 2), (11, 4, 3), (5, 8, 4), (30, 7, 1), (9, 3, 3)]:
        scored = [j for _, end, first in sliding_windows(n, w, s) for j in range(first, end)]
        if s < w:
            assert scored == list(range(1, n))
        else:  # disjoint windows: the first token of each has no context and is skipped
            assert scored == [j for j in range(1, n) if j % w]


# -------------------------------------------------------------------- errors
def test_missing_and_bad_files(tmp_path):
    from ternlab.inference import _kernels

    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        Engine(tmp_path / "nope.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 60)
    with pytest.raises(_kernels.GGUFError, match="bad.gguf"):
        Engine(bad)


def test_bad_generation_arguments(eng):
    with pytest.raises(ValueError, match="max_tokens"):
        eng.generate("x", max_tokens=-1)
    with pytest.raises(ValueError, match="top_p"):
        eng.generate("x", top_p=2.0)
    with pytest.raises(ValueError, match="out of range"):
        eng.generate([eng.n_vocab])
    with pytest.raises(ValueError, match="window"):
        eng.perplexity("1+1=2", window=10**6)


# ------------------------------------------------------- prefix reuse, slots
def test_logits_of_choices_sharing_a_context_evaluate_it_once(eng, model):
    ctx = eng.encode("12+30=42\n7+8=15\n3+3=", add_bos=True)
    choices = [eng.encode(c, add_bos=False) for c in ("6", "7\n", "66\n1+")]
    fresh = Engine(model[0], threads=1)
    eng.logits(eng.encode("unrelated", add_bos=False))  # nothing of ctx is cached
    for i, cont in enumerate(choices):
        inp = ctx + cont[:-1]
        got = eng.logits(inp, first=len(ctx) - 1)
        # Rows from len(ctx) - 1 on predict the continuation: equal to a fresh full pass.
        np.testing.assert_array_equal(got, fresh.logits(inp)[len(ctx) - 1 :])
        assert fresh.last.cached_tokens == 0  # first=0: everything is evaluated
        assert eng.last.cached_tokens == (0 if i == 0 else len(ctx) - 1)
        assert eng.last.prefill_tokens == (len(inp) if i == 0 else len(cont))
    with pytest.raises(ValueError, match="first must be"):
        eng.logits(ctx, first=len(ctx))


def test_a_sequence_in_a_batch_has_its_logits_alone(model):
    alone = Engine(model[0], threads=2)
    eng = Engine(model[0], threads=2, slots=3)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, eng.n_vocab, n).tolist() for n in (30, 9, 4)]
    want = [alone.logits(s) for s in seqs]
    # Prefill chunks of different lengths and single-token decodes, mixed in one pass.
    out = eng.eval_batch([1, 0, 2], [seqs[0][:20], seqs[1][:5], seqs[2][:2]], [True, False, True])
    np.testing.assert_array_equal(out[:20], want[0][:20])
    np.testing.assert_array_equal(out[20], want[1][4])
    np.testing.assert_array_equal(out[21:], want[2][:2])
    pos = [20, 5, 2]
    while any(p < len(s) for p, s in zip(pos, seqs, strict=True)):
        live = [i for i in range(3) if pos[i] < len(seqs[i])]
        slot = {0: 1, 1: 0, 2: 2}
        out = eng.eval_batch([slot[i] for i in live], [seqs[i][pos[i] : pos[i] + 1] for i in live],
                             [False] * len(live))  # fmt: skip
        for row, i in zip(out, live, strict=True):
            np.testing.assert_array_equal(row, want[i][pos[i]])
            pos[i] += 1
    assert [eng.slot_tokens(s) for s in (1, 0, 2)] == seqs
    # A slot can start from another's prefix (a copy of its cache).
    eng.keep_prefix(2, 12, source=1)
    np.testing.assert_array_equal(eng.eval_batch([2], [seqs[0][12:]], [True]), want[0][12:])


def test_bad_batches_leave_every_slot_as_it_was(model):
    eng = Engine(model[0], threads=1, slots=2, n_ctx=16)
    eng.eval_batch([0, 1], [[1, 2, 3], [4]], [False, False])
    for seqs, toks, words in [
        ([0, 0], [[1], [2]], "twice"),
        ([0, 2], [[1], [2]], "outside"),
        ([0, 1], [[1], [2] * 16], "context overflow"),
        ([0, 1], [[1], [eng.n_vocab]], "vocabulary"),
    ]:
        with pytest.raises(ValueError, match=words):
            eng.eval_batch(seqs, toks, [False, False])
        assert eng.slot_tokens(0) == [1, 2, 3] and eng.slot_tokens(1) == [4]
        assert [eng._model.seq_n_past(s) for s in (0, 1)] == [3, 1]
    with pytest.raises(ValueError, match="slots must be"):
        Engine(model[0], slots=0)
