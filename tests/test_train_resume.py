"""Exact resume: interrupted + resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ternlab.train.loop as loop
from ternlab.train import compose, train
from ternlab.train.checkpoint import latest_checkpoint
from ternlab.train.tracking import read_metrics


def _cfg(out: Path, cache: Path, *extra: str):
    return compose(
        [
            "model=tiny",
            "tracking=disabled",
            "data.seq_len=32",
            "data.arith.num_examples=1500",
            "trainer.batch_size=4",
            "trainer.grad_accum=2",
            "trainer.progress=false",
            "trainer.plot=false",
            "trainer.log_every=1",
            "trainer.eval_every=5",
            "trainer.eval_batches=2",
            "trainer.max_steps=12",
            "trainer.save_every=5",
            # two_stage: the cooldown (lr drop, zero weight decay) falls after the interruption
            "optim.schedule=two_stage",
            "optim.warmup_steps=3",
            # λ warmup spans the interruption too
            "quant.warmup_steps=8",
            f"data.cache_dir={cache}",
            f"trainer.output_dir={out}",
            *extra,
        ]
    )


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    straight = train(_cfg(tmp_path / "straight", cache))

    real_step, out = loop._train_step, tmp_path / "resumed"

    def ctrl_c_at_step_8(run):
        if run.step == 7:  # after 7 steps; the last checkpoint is step 5
            raise KeyboardInterrupt
        return real_step(run)

    monkeypatch.setattr(loop, "_train_step", ctrl_c_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(out, cache))
    assert latest_checkpoint(out).name == "step-00000005"
    monkeypatch.setattr(loop, "_train_step", real_step)
    resumed = train(_cfg(out, cache, "trainer.resume=true"))

    assert resumed.steps == straight.steps == 12
    a = load_file(straight.checkpoint / "model.safetensors")
    b = load_file(resumed.checkpoint / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # metrics.jsonl reads as one run: the interrupted attempt's extra records are dropped
    ma = [r for r in read_metrics(straight.output_dir / "metrics.jsonl") if "loss" in r]
    mb = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in mb] == list(range(1, 13))
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]
    assert [r["lr"] for r in ma] == [r["lr"] for r in mb]
    assert resumed.val_loss == straight.val_loss


def test_resume_refuses_a_different_model(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    base = ["trainer.max_steps=2", "trainer.save_every=2"]
    train(_cfg(out, cache, *base))
    with pytest.raises(ValueError, match="different `model` config"):
        train(_cfg(out, cache, *base, "trainer.resume=true", "model.hidden_size=32"))
