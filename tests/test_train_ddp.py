"""A real 2-process CPU launch (gloo) matches one process with the same global batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ternlab.train import compose, train
from ternlab.train.tracking import read_metrics

COMMON = [
    "model=tiny",
    "tracking=disabled",
    "data.seq_len=32",
    "data.arith.num_examples=1500",
    "trainer.progress=false",
    "trainer.plot=false",
    "trainer.max_steps=8",
    "trainer.log_every=1",
    "trainer.eval_every=4",
    "trainer.eval_batches=2",
    "trainer.cpu=true",
    "optim.warmup_steps=2",
]

# DDP averages the two processes' gradients with an all-reduce, one process averages
# inside its loss: the same math in another float order. 8 steps of AdamW keep the
# difference at float32 rounding level.
ATOL = 1e-5


def _run_group(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in its own session; on timeout kill the launcher *and* its workers."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"2-process run timed out after {timeout}s:\n{out[-4000:]}")
    return proc.returncode, out


@pytest.mark.slow
def test_two_process_gloo_launch_matches_one_process(tmp_path):
    cache = tmp_path / "cache"
    single = train(
        compose(
            [
                *COMMON,
                "trainer.batch_size=8",
                f"data.cache_dir={cache}",
                f"trainer.output_dir={tmp_path / 'one'}",
            ]
        )
    )
    two = tmp_path / "two"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "ternlab.train",
        *COMMON,
        "trainer.batch_size=4",
        f"data.cache_dir={cache}",
        f"trainer.output_dir={two}",
    ]
    rc, output = _run_group(cmd, timeout=180)
    assert rc == 0, output[-4000:]
    assert "global batch 8 on 2 process(es)" in output

    ckpt = Path(two) / "checkpoints" / "step-00000008"
    a = load_file(single.checkpoint / "model.safetensors")
    b = load_file(ckpt / "model.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=ATOL, rtol=0, msg=k)
    la = [r["loss"] for r in read_metrics(single.output_dir / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(two / "metrics.jsonl") if "loss" in r]
    assert len(lb) == 8
    torch.testing.assert_close(torch.tensor(lb), torch.tensor(la), atol=1e-4, rtol=0)
