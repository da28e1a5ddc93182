"""End-to-end runs of the `tiny` preset: loss falls, FP16 baseline, NaN stop, atomic saves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ternlab.bitlinear import BitLinear
from ternlab.train import NonFiniteLossError, compose, train
from ternlab.train.checkpoint import latest_checkpoint
from ternlab.train.tracking import read_metrics


def tiny(out: Path, cache: Path, *extra: str) -> list[str]:
    """Overrides for a fast tiny run (about 10 ms per step on one CPU core)."""
    return [
        "model=tiny",
        "tracking=disabled",
        "data.seq_len=32",
        "data.arith.num_examples=1500",
        "trainer.batch_size=8",
        "trainer.progress=false",
        "trainer.plot=false",
        "trainer.log_every=1",
        "trainer.eval_every=1000",
        "trainer.eval_batches=2",
        "optim.warmup_steps=2",
        "optim.lr=3e-3",
        f"data.cache_dir={cache}",
        f"trainer.output_dir={out}",
        *extra,
    ]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One tokenizer/packing cache per module: each run after the first starts at once."""
    return tmp_path_factory.mktemp("cache")


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(ckpt / "model.safetensors")


def test_tiny_ternary_loss_falls(tmp_path, cache):
    out = tmp_path / "run"
    res = train(
        compose(
            tiny(out, cache, "trainer.max_steps=40", "trainer.plot=true", "trainer.eval_every=20")
        )
    )
    losses = _losses(out)
    assert len(losses) == 40 and res.steps == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses
    assert math.isfinite(res.val_loss)
    assert (out / "loss.png").stat().st_size > 1000
    cfg = json.loads((res.checkpoint / "config.json").read_text())
    assert cfg["model_type"] == "bitnet" and cfg["quantization_config"]["quant_method"] == "bitnet"
    assert res.checkpoint == latest_checkpoint(out)


def test_fp16_baseline_trains_without_bitlinear(tmp_path, cache, monkeypatch):
    out = tmp_path / "fp"
    built = {}
    import ternlab.train.loop as loop

    real_build = loop.build_model

    def spy(*a, **k):
        built["model"] = real_build(*a, **k)
        return built["model"]

    monkeypatch.setattr(loop, "build_model", spy)
    res = train(
        compose(
            tiny(out, cache, "quant=none", "trainer.max_steps=25", "trainer.mixed_precision=bf16")
        )
    )
    model = built["model"]
    assert not any(isinstance(m, BitLinear) for m in model.modules())
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 2 * 7 + 1
    losses = _losses(out)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses
    cfg = json.loads((res.checkpoint / "config.json").read_text())
    assert "quantization_config" not in cfg and res.checkpoint.name == "step-00000025"


def test_nan_loss_stops_naming_step_and_keeps_last_good_checkpoint(tmp_path, cache):
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 5\b") as err:
        train(
            compose(
                tiny(
                    out,
                    cache,
                    "trainer.max_steps=10",
                    "trainer.save_every=3",
                    "trainer.debug_nan_at_step=5",
                )
            )
        )
    good = latest_checkpoint(out)
    assert good is not None and good.name == "step-00000003"
    assert str(good) in str(err.value)
    assert all(torch.isfinite(t).all() for t in _weights(good).values())
    records = read_metrics(out / "metrics.jsonl")
    assert records[-1]["step"] == 5 and "error" in records[-1]


def test_kill_during_save_keeps_previous_checkpoint(tmp_path, cache, monkeypatch):
    from accelerate import Accelerator

    out = tmp_path / "kill"
    real_save_state, calls = Accelerator.save_state, []

    def dies_on_second_save(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # the model files of step 4 are already written: die mid-save
            raise KeyboardInterrupt
        return real_save_state(self, *a, **k)

    monkeypatch.setattr(Accelerator, "save_state", dies_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(compose(tiny(out, cache, "trainer.max_steps=6", "trainer.save_every=2")))
    assert (out / "checkpoints" / ".tmp-step-00000004" / "model.safetensors").exists()
    assert latest_checkpoint(out).name == "step-00000002"
    monkeypatch.setattr(Accelerator, "save_state", real_save_state)
    res = train(
        compose(
            tiny(out, cache, "trainer.max_steps=6", "trainer.save_every=2", "trainer.resume=true")
        )
    )
    assert res.steps == 6 and latest_checkpoint(out).name == "step-00000006"
    assert not (out / "checkpoints" / ".tmp-step-00000004").exists()


def test_existing_run_needs_resume_flag(tmp_path, cache):
    out = tmp_path / "again"
    train(compose(tiny(out, cache, "trainer.max_steps=2")))
    with pytest.raises(FileExistsError, match="trainer.resume=true"):
        train(compose(tiny(out, cache, "trainer.max_steps=2")))
