"""``llama-bench``-style speed figures: prompt processing (pp) and text generation (tg).

- pp: one batched evaluation of ``n_prompt`` tokens into an empty KV cache.
- tg: ``n_gen`` single-token evaluations from an empty cache (no sampling).

Token ids are random with a fixed seed (the speed does not depend on them). One
warm-up run precedes the ``repetitions`` timed runs; results give every run and the
median. Peak RSS is the process-wide high-water mark (``VmHWM``), so it covers
everything the process did before, including earlier thread counts.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ternlab import __version__

SEED = 1234


def run_bench(
    path: str | os.PathLike,
    n_prompt: int = 128,
    n_gen: int = 128,
    threads: int = 1,
    repetitions: int = 3,
    model=None,
    kv_type: str = "f32",
) -> dict:
    """Measure ``path`` with ``threads`` threads; returns a JSON-ready dict.

    ``model`` may be an already loaded ``_kernels.Model`` of ``path`` (its thread count
    is set to ``threads``), to avoid loading the file once per thread count; ``load_s``
    is then ``None``, and ``kv_type`` is the model's. The result records the KV cache's
    value type and bytes (``kv_type``, ``kv_cache_bytes``: ``max(n_prompt, n_gen)``
    positions, one slot).
    """
    from ternlab.inference import _kernels

    if n_prompt < 0 or n_gen < 0 or n_prompt + n_gen == 0:
        raise ValueError(f"n_prompt and n_gen must be >= 0, not both 0 (got {n_prompt}, {n_gen})")
    if threads < 1 or repetitions < 1:
        raise ValueError(f"threads and repetitions must be >= 1 (got {threads}, {repetitions})")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such GGUF file")
    load_s = None
    if model is None:
        t0 = time.perf_counter()
        model = _kernels.Model(str(p), threads, max(n_prompt, n_gen), "auto", 1, kv_type)
        load_s = time.perf_counter() - t0
    model.threads = threads
    cfg, meta = model.config, model.metadata
    rng = np.random.default_rng(SEED)
    prompt = rng.integers(0, cfg["n_vocab"], n_prompt, dtype=np.int32)
    gen = rng.integers(0, cfg["n_vocab"], n_gen, dtype=np.int32)
    result = {
        "model": str(p),
        "model_name": p.stem,
        "file_size": p.stat().st_size,
        "arch": cfg["arch"],
        "type": meta.get("ternlab.tensor_type", _file_type(meta)),
        "n_layer": cfg["n_layer"],
        "n_embd": cfg["n_embd"],
        "n_vocab": cfg["n_vocab"],
        "n_params": n_params(p),
        "threads": threads,
        "isa": _kernels.current_isa(),
        "layout": model.layout,
        "kv_type": model.kv_type,
        "kv_cache_bytes": model.kv_cache_bytes,
        "n_prompt": n_prompt,
        "n_gen": n_gen,
        "repetitions": repetitions,
        "load_s": load_s,
        "pp": _measure(model, n_prompt, repetitions, lambda: _pp(model, prompt)),
        "tg": _measure(model, n_gen, repetitions, lambda: _tg(model, gen)),
        "peak_rss_bytes": peak_rss_bytes(),
        "machine": machine_info(),
        "ternlab_version": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return result


def _pp(model, tokens: np.ndarray) -> float:
    model.truncate(0)
    t0 = time.perf_counter()
    model.eval(tokens, False)
    return time.perf_counter() - t0


def _tg(model, tokens: np.ndarray) -> float:
    model.truncate(0)
    t0 = time.perf_counter()
    for i in range(tokens.shape[0]):
        model.eval(tokens[i : i + 1], False)
    return time.perf_counter() - t0


def _measure(model, n: int, reps: int, run) -> dict | None:
    """Warm up once, then ``reps`` timed runs of ``n`` tokens; the cache is left empty."""
    stats = timed_phase(n, reps, run)
    if stats is not None:
        model.truncate(0)
    return stats


def timed_phase(n: int, reps: int, run) -> dict | None:
    """llama-bench's statistics of ``reps`` runs of ``n`` tokens after one warm-up.

    ``run()`` processes the ``n`` tokens and returns the seconds it took.
    """
    if n == 0:
        return None
    run()
    secs = [run() for _ in range(reps)]
    tps = [n / s for s in secs]
    med = statistics.median(tps)
    return {
        "n_tokens": n,
        "tokens_per_s": med,
        "tokens_per_s_runs": tps,
        "tokens_per_s_stdev": statistics.stdev(tps) if len(tps) > 1 else 0.0,
        "ms_per_token": 1000.0 / med,
        "seconds_runs": secs,
    }


def n_params(path: Path) -> int:
    """Number of weights in the file (every tensor's element count)."""
    from ternlab.inference import _kernels

    return sum(math.prod(t["shape"]) for t in _kernels.GGUFFile(str(path)).tensors)


def _file_type(meta: dict) -> str:
    ft = meta.get("general.file_type")
    return f"file_type {ft}" if ft is not None else "unknown"


def peak_rss_bytes() -> int:
    """The process's peak resident set size (``VmHWM``; ``ru_maxrss`` off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if platform.system() == "Darwin" else rss * 1024  # macOS: bytes, Linux: KiB


def machine_info() -> dict:
    """CPU model, logical CPUs, OS and Python."""
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "Processor")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
