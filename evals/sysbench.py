"""Systems metrics of one model: prefill and decode speed, memory, file size, energy.

Each model is measured in a fresh child process (``python -m ternlab.evals.sysbench``)
so that its peak RSS is its own, not that of the evaluation process around it.

* GGUF files: :func:`ternlab.inference.bench.run_bench` (llama-bench's pp/tg).
* Checkpoints: the same two phases in PyTorch with transformers' KV cache: ``pp`` one
  forward pass of ``n_prompt`` random tokens into an empty cache, ``tg`` ``n_gen``
  single-token steps from an empty cache, one warm-up then ``repetitions`` timed runs,
  median tokens/s.

Energy: where RAPL is readable each phase is run once more inside a
:class:`~ternlab.evals.rapl.RaplMeter` and reported as measured joules per token;
the arithmetic estimate of :mod:`ternlab.evals.energy` is always added, labelled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ternlab.evals import energy, rapl
from ternlab.evals.backends import checkpoint_dir, is_gguf
from ternlab.inference.bench import timed_phase

SEED = 1234


def _rapl_j_per_token(n: int, run) -> float | None:
    if n == 0 or not rapl.available():
        return None
    with rapl.RaplMeter() as m:
        run()
    return m.joules / n


def _torch_bench(path: Path, n_prompt: int, n_gen: int, threads: int, reps: int) -> dict:
    import torch
    from transformers import DynamicCache

    from ternlab.evals.backends import TorchScorer

    model = TorchScorer(path, threads).model
    vocab = int(model.config.vocab_size)
    rng = np.random.default_rng(SEED)
    prompt = torch.from_numpy(rng.integers(0, vocab, (1, n_prompt)))
    gen = torch.from_numpy(rng.integers(0, vocab, (1, n_gen)))

    @torch.no_grad()
    def pp() -> float:
        t0 = time.perf_counter()
        model(prompt, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
        return time.perf_counter() - t0

    @torch.no_grad()
    def tg() -> float:
        cache = DynamicCache()
        t0 = time.perf_counter()
        for i in range(n_gen):
            model(gen[:, i : i + 1], past_key_values=cache, use_cache=True, logits_to_keep=1)
        return time.perf_counter() - t0

    ckpt = checkpoint_dir(path)
    return {
        "model": str(path),
        "backend": "pytorch",
        "file_size": sum(f.stat().st_size for f in ckpt.glob("*.safetensors")),
        "threads": threads,
        "n_prompt": n_prompt,
        "n_gen": n_gen,
        "repetitions": reps,
        "pp": timed_phase(n_prompt, reps, pp),
        "tg": timed_phase(n_gen, reps, tg),
        "rapl_j_per_token": {
            "pp": _rapl_j_per_token(n_prompt, pp),
            "tg": _rapl_j_per_token(n_gen, tg),
        },
    }


def _gguf_bench(path: Path, n_prompt: int, n_gen: int, threads: int, reps: int) -> dict:
    from ternlab.inference import _kernels
    from ternlab.inference.bench import run_bench

    model = _kernels.Model(str(path), threads, max(n_prompt, n_gen))
    out = run_bench(path, n_prompt, n_gen, threads, reps, model=model)
    out["backend"] = "engine"
    rng = np.random.default_rng(SEED)
    prompt = rng.integers(0, out["n_vocab"], n_prompt, dtype=np.int32)
    gen = rng.integers(0, out["n_vocab"], n_gen, dtype=np.int32)

    def pp() -> None:  # run_bench's phases again, inside the energy meter
        model.truncate(0)
        model.eval(prompt, False)

    def tg() -> None:
        model.truncate(0)
        for i in range(n_gen):
            model.eval(gen[i : i + 1], False)

    out["rapl_j_per_token"] = {
        "pp": _rapl_j_per_token(n_prompt, pp),
        "tg": _rapl_j_per_token(n_gen, tg),
    }
    return out


def bench_here(path: str | Path, n_prompt: int, n_gen: int, threads: int, reps: int) -> dict:
    """Measure ``path`` in this process (the child's side of :func:`measure`)."""
    from ternlab.inference.bench import peak_rss_bytes

    p = Path(path)
    run = _gguf_bench if is_gguf(p) else _torch_bench
    out = run(p, n_prompt, n_gen, threads, reps)
    out["peak_rss_bytes"] = peak_rss_bytes()
    return out


def energy_report(path: str | Path, bench: dict) -> dict:
    """RAPL joules/token where measured, and the labelled arithmetic estimate, per phase."""
    shape, ternary = energy.shape_of(path)
    measured = bench.get("rapl_j_per_token") or {}
    out: dict = {"ternary_arithmetic": ternary}
    for phase, n in (("pp", bench["n_prompt"]), ("tg", bench["n_gen"])):
        # Tokens of a phase attend to 0 .. n-1 earlier positions: the mean is (n - 1) / 2.
        est = energy.estimate(shape, ternary, context=max(n - 1, 0) // 2)
        j = measured.get(phase)
        out[phase] = {
            "method": "rapl" if j is not None else "estimate",
            "j_per_token": j if j is not None else est["j_per_token_7nm"],
            "estimate": est,
        }
    return out


def measure(
    path: str | Path, n_prompt: int = 64, n_gen: int = 64, threads: int = 1, repetitions: int = 3
) -> dict:
    """Systems metrics of ``path`` measured in a child process, with the energy report."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such GGUF file or checkpoint folder")
    cmd = [
        sys.executable, "-m", "ternlab.evals.sysbench", str(path),
        "--n-prompt", str(n_prompt), "--n-gen", str(n_gen),
        "--threads", str(threads), "--repetitions", str(repetitions),
    ]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {path} failed:\n{proc.stderr[-3000:]}")
    bench = json.loads(proc.stdout.strip().splitlines()[-1])
    bench["energy"] = energy_report(path, bench)
    return bench


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ternlab.evals.sysbench", description=__doc__)
    ap.add_argument("model", help="a GGUF file or a ternlab checkpoint")
    ap.add_argument("--n-prompt", type=int, default=64)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repetitions", type=int, default=3)
    a = ap.parse_args(argv)
    res = bench_here(a.model, a.n_prompt, a.n_gen, a.threads, a.repetitions)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
