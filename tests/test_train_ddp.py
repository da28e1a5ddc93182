"""A real 2-process CPU launch (gloo) matches one process with the same global batch."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import psutil
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
    "trainer.dist_timeout_s=120",
]

# DDP averages the two processes' gradients with an all-reduce, one process averages
# inside its loss: the same math in another float order. 8 steps of AdamW keep the
# difference at float32 rounding level.
ATOL = 1e-5


def _run_group(cmd: list[str], log: Path, timeout: float) -> tuple[int, str]:
    """Run ``cmd`` with output to ``log``; on timeout kill the launcher and its workers.

    torchrun starts each worker in a session of its own, so killing the launcher's
    process group leaves them alive; they are found as its descendants instead. The
    output goes to a file, not a pipe, so no surviving worker can block the read.
    """
    # Loopback only: in a sandbox whose hostname resolves to an unreachable address
    # the rendezvous otherwise times out (seen: a failure after ~190 s).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tree = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
            for p in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            psutil.wait_procs(tree, timeout=30)
            pytest.fail(f"2-process run timed out after {timeout}s:\n{log.read_text()[-4000:]}")
    return proc.returncode, log.read_text()


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
        "--local-addr=127.0.0.1",
        "-m",
        "ternlab.train",
        *COMMON,
        "trainer.batch_size=4",
        f"data.cache_dir={cache}",
        f"trainer.output_dir={two}",
    ]
    rc, output = _run_group(cmd, tmp_path / "launch.log", timeout=180)
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
