"""Units of the trainer: embedded data, schedules, data order, packing and the token cache."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ternlab.train import compose
from ternlab.train.arith_data import extract_answer, generate
from ternlab.train.config import OptimConfig
from ternlab.train.data import micro_batch_rows, pack, prepare_data
from ternlab.train.optim import lr_factor, weight_decay_at
from ternlab.train.tokenizer import BOS, EOS, train_bpe


def test_arith_is_deterministic_exact_and_gsm8k_formatted():
    a, b = generate(300, seed=7), generate(300, seed=7)
    assert a == b and generate(300, seed=8) != a
    for ex in a:
        assert extract_answer(ex.answer) == ex.result
        assert ex.answer.endswith(f"#### {ex.result}")
        # every calculator annotation <<expr=value>> is exact
        for expr, val in re.findall(r"<<([^=]+)=(-?\d+)>>", ex.answer):
            assert eval(expr) == int(val)  # noqa: S307 (digits and + - * only)
    assert extract_answer("no answer here") is None


def test_two_stage_schedule_drops_lr_and_weight_decay_at_the_midpoint():
    cfg = OptimConfig(
        schedule="two_stage",
        warmup_steps=10,
        stage2_start=0.5,
        stage2_lr_ratio=0.3,
        min_lr_ratio=0.1,
        weight_decay=0.1,
    )
    f = [lr_factor(cfg, s, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(f[10:50], f[11:50], strict=False))  # stage 1 decays
    assert f[50] == pytest.approx(0.3) and f[49] > f[50]  # the cooldown starts lower
    assert f[99] == pytest.approx(0.1, abs=1e-3)
    assert weight_decay_at(cfg, 49, 100) == 0.1 and weight_decay_at(cfg, 50, 100) == 0.0


def test_cosine_schedule():
    cfg = OptimConfig(schedule="cosine", warmup_steps=0, min_lr_ratio=0.1)
    assert lr_factor(cfg, 0, 50) == pytest.approx(1.0)
    assert lr_factor(cfg, 50, 50) == pytest.approx(0.1)
    assert weight_decay_at(cfg, 49, 50) == cfg.weight_decay


@pytest.mark.parametrize("world,bs,accum", [(2, 4, 1), (1, 4, 2), (4, 1, 2)])
def test_global_batch_is_the_same_for_any_split(world, bs, accum):
    """Processes x micro-batches of a step read exactly the rows of one big batch."""
    n, seed = 37, 3
    for step in range(12):  # crosses epoch boundaries
        one = micro_batch_rows(step, 0, 0, world=1, batch_size=8, grad_accum=1, n=n, seed=seed)
        split = np.concatenate(
            [
                micro_batch_rows(
                    step, m, r, world=world, batch_size=bs, grad_accum=accum, n=n, seed=seed
                )
                for m in range(accum)
                for r in range(world)
            ]
        )
        assert np.array_equal(one, split)


def test_each_epoch_visits_every_row_once():
    rows = np.concatenate(
        [
            micro_batch_rows(s, 0, 0, world=1, batch_size=5, grad_accum=1, n=20, seed=0)
            for s in range(4)
        ]
    )
    assert sorted(rows.tolist()) == list(range(20))


def test_pack_inserts_bos_eos_and_cuts_fixed_rows():
    tok = train_bpe(["hello world"] * 20 + ["another text"] * 20, vocab_size=300)
    rows = pack(["hello world", "another text"] * 10, tok, seq_len=8)
    assert rows.shape[1] == 8
    flat = rows.ravel().tolist()
    assert flat[0] == tok.convert_tokens_to_ids(BOS)
    assert tok.convert_tokens_to_ids(EOS) in flat


def test_token_cache_is_reused_and_keyed_by_seq_len(tmp_path):
    cfg = compose([f"data.cache_dir={tmp_path}", "data.arith.num_examples=400", "data.seq_len=32"])
    tok = train_bpe(["Question: 1 + 2 #### 3"] * 50, vocab_size=300)
    first = prepare_data(cfg.data, tok)
    calls = []
    again = prepare_data(cfg.data, tok, texts_fn=lambda: calls.append(1) or [])
    assert not calls and again.cache_path == first.cache_path  # no re-tokenization
    assert isinstance(first.train, np.memmap) and first.train.shape[1] == 32
    cfg.data.seq_len = 16
    assert prepare_data(cfg.data, tok).cache_path != first.cache_path
