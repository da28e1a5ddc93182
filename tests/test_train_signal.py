"""Preemption: SIGTERM/SIGINT stop at the step boundary with a checkpoint; resume is exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ternlab.train.loop as loop
from ternlab.train import compose, train
from ternlab.train.checkpoint import latest_checkpoint, read_trainer_state
from ternlab.train.tracking import read_metrics


def _overrides(out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "model=tiny",
        "tracking=disabled",
        "data.seq_len=32",
        "data.arith.num_examples=600",
        "trainer.batch_size=4",
        "trainer.progress=false",
        "trainer.plot=false",
        "trainer.log_every=1",
        "trainer.eval_every=1000",
        "trainer.eval_batches=1",
        "trainer.save_every=1000",
        # constant lr and weight decay: the schedule does not depend on max_steps, so the
        # interrupted run (max_steps large) and the straight one (max_steps = where it ends)
        # take the same updates
        "optim.schedule=constant",
        "optim.warmup_steps=2",
        f"data.cache_dir={cache}",
        f"trainer.output_dir={out}",
        *extra,
    ]


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(ckpt / "model.safetensors")


@pytest.mark.slow
def test_sigterm_saves_at_the_step_boundary_and_resume_is_exact(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    train(compose(_overrides(tmp_path / "warm", cache, "trainer.max_steps=1")))  # fills the cache
    cmd = [
        sys.executable,
        "-m",
        "ternlab.train",
        *_overrides(out, cache, "trainer.max_steps=100000"),
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and len(read_metrics(metrics)) >= 3):
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run never started training"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, log[-3000:]
    assert "Traceback" not in log and "stopped by SIGTERM" in log

    ckpt = latest_checkpoint(out)
    k = read_trainer_state(ckpt)["step"]
    assert 3 <= k < 100000 and ckpt.name == f"step-{k:08d}"
    rec = read_metrics(metrics)
    assert rec[-1]["stopped_by"] == "SIGTERM" and rec[-1]["step"] == k
    assert max(r["step"] for r in rec if "loss" in r) == k  # no step after the signal's

    resumed = train(
        compose(_overrides(out, cache, f"trainer.max_steps={k + 3}", "trainer.resume=true"))
    )
    straight = train(
        compose(_overrides(tmp_path / "straight", cache, f"trainer.max_steps={k + 3}"))
    )
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    la = [r["loss"] for r in read_metrics(straight.output_dir / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(metrics) if "loss" in r]
    assert la == lb and len(la) == k + 3


def test_sigint_stops_in_process_with_a_checkpoint(tmp_path, monkeypatch):
    real_step = loop._train_step

    def ctrl_c_during_step_3(run):
        loss = real_step(run)
        if run.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-loop; handled at the boundary
        return loss

    monkeypatch.setattr(loop, "_train_step", ctrl_c_during_step_3)
    before = signal.getsignal(signal.SIGINT)
    res = train(compose(_overrides(tmp_path / "run", tmp_path / "cache", "trainer.max_steps=50")))
    assert res.stopped_by == "SIGINT" and res.steps == 3
    assert res.checkpoint == latest_checkpoint(tmp_path / "run")
    assert read_trainer_state(res.checkpoint)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
