"""Held-out bits per byte: loss (nats/token) × target tokens / their UTF-8 bytes / ln 2."""

from __future__ import annotations

import math

import numpy as np
from transformers import AutoTokenizer

from ternlab.train import compose, train
from ternlab.train.data import target_bytes
from ternlab.train.tokenizer import train_bpe
from ternlab.train.tracking import read_metrics


def test_target_bytes_counts_the_text_of_every_position_but_the_first():
    tok = train_bpe(["héllo wörld, plain text here"] * 20, 300)
    ids = tok("héllo wörld", add_special_tokens=False)["input_ids"]
    row = np.asarray([[tok.bos_token_id, *ids, tok.eos_token_id]])
    assert target_bytes(row, tok) == len("héllo wörld".encode())  # specials count 0 bytes
    first = tok.decode(ids[:1])
    assert target_bytes(np.asarray([ids]), tok) == len("héllo wörld".encode()) - len(first.encode())


def test_val_bpb_is_the_loss_over_the_bytes_of_the_evaluated_rows(tmp_path):
    res = train(
        compose(
            [
                "model=tiny",
                "tracking=disabled",
                "data.seq_len=32",
                "data.arith.num_examples=300",
                "trainer.batch_size=4",
                "trainer.max_steps=2",
                "trainer.eval_batches=3",
                "trainer.progress=false",
                "trainer.plot=false",
                f"data.cache_dir={tmp_path / 'cache'}",
                f"trainer.output_dir={tmp_path / 'run'}",
            ]
        )
    )
    (packed,) = (tmp_path / "cache").glob("packed-*")
    val = np.load(packed / "val.npy")
    tok = AutoTokenizer.from_pretrained(res.checkpoint)
    rows = val[np.arange(12) % len(val)]  # 3 eval batches of 4 rows
    text_bytes = sum(len(tok.decode(r[1:], skip_special_tokens=True).encode()) for r in rows)
    expect = res.val_loss * rows.shape[0] * (rows.shape[1] - 1) / text_bytes / math.log(2)
    assert math.isclose(res.val_bpb, expect, rel_tol=1e-9)
    last = [r for r in read_metrics(res.output_dir / "metrics.jsonl") if "val_bpb" in r][-1]
    assert last["val_bpb"] == res.val_bpb and 0 < res.val_bpb < 10
