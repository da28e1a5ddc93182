"""Micro-benchmark: the C++ ternary kernels against float32 matmul on the CPU.

Not a test: it times, it does not assert. For BitNet-b1.58-2B4T-like shapes it
times the whole frozen layer (``ternary_matmul``: quantize activations, integer
product, rescale) for every available ISA and 1/2 threads, beside numpy float32
``x @ W.T`` of the same shape in the same run (numpy's BLAS uses its default
thread count) and torch ``F.linear`` at the same thread counts. Medians; GEMV
(T = 1) also reports the effective bandwidth over the packed weight bytes.

    python benchmarks/engine_kernels.py --out bench-results/engine_kernels.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ternlab.inference import kernels as tk

# (out_features N, in_features K): attention/out projections, FFN up/gate, FFN down.
DEFAULT_SHAPES = [(2560, 2560), (6912, 2560), (2560, 6912)]
DEFAULT_TOKENS = [1, 128]
QUICK_SHAPES = [(256, 512)]
QUICK_TOKENS = [1, 8]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_seconds(step: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    if first > 0.5:  # the scalar reference on prefill shapes: a few runs suffice
        repeats = min(repeats, 3)
    times = [first]
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(
    shapes: list[tuple[int, int]],
    tokens: list[int],
    isas: list[str],
    threads: list[int],
    warmup: int,
    repeats: int,
) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    before_isa, before_threads = tk.current_isa(), torch.get_num_threads()
    try:
        for n, k in shapes:
            codes = rng.integers(-1, 2, size=(n, k)).astype(np.int8)
            packed = tk.pack_ternary_weights(codes)
            w32 = codes.astype(np.float32) * np.float32(0.02)
            w32_t = np.ascontiguousarray(w32.T)  # numpy peer: x @ W^T with W^T stored [K, N]
            wt = torch.from_numpy(w32)
            weight_bytes = packed.data.nbytes
            for t in tokens:
                x = rng.standard_normal((t, k)).astype(np.float32)
                xt = torch.from_numpy(x)
                peer = _median_seconds(partial(np.matmul, x, w32_t), warmup, repeats)
                base = {"out_features": n, "in_features": k, "tokens": t}
                rows.append(
                    {**base, "impl": "numpy f32", "threads": "blas", "median_ms": peer * 1e3}
                )
                for th in threads:
                    torch.set_num_threads(th)
                    step = partial(torch.nn.functional.linear, xt, wt)
                    sec = _median_seconds(step, warmup, repeats)
                    rows.append(
                        {**base, "impl": "torch f32", "threads": th, "median_ms": sec * 1e3}
                    )
                for isa in isas:
                    tk.set_isa(isa)
                    for th in threads:
                        step = partial(tk.ternary_matmul, packed, 0.02, x, threads=th)
                        sec = _median_seconds(step, warmup, repeats)
                        row = {**base, "impl": f"ternlab {isa}", "threads": th}
                        row["median_ms"] = sec * 1e3
                        row["speedup_vs_numpy"] = peer / sec
                        if t == 1:
                            row["weight_GBps"] = weight_bytes / sec / 1e9
                        row["GOPS"] = 2.0 * t * n * k / sec / 1e9
                        rows.append(row)
    finally:
        tk.set_isa(before_isa)
        torch.set_num_threads(before_threads)
    return rows


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'N x K':>12} {'T':>4} {'impl':>16} {'thr':>4} {'median ms':>10} "
        f"{'GB/s':>7} {'GOPS':>7} {'vs numpy':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        gbps = f"{r['weight_GBps']:.1f}" if "weight_GBps" in r else ""
        gops = f"{r['GOPS']:.1f}" if "GOPS" in r else ""
        vs = f"{r['speedup_vs_numpy']:.2f}x" if "speedup_vs_numpy" in r else ""
        print(
            f"{r['out_features']:>5}x{r['in_features']:<6} {r['tokens']:>4} {r['impl']:>16} "
            f"{r['threads']!s:>4} {r['median_ms']:>10.3f} {gbps:>7} {gops:>7} {vs:>9}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--isas", nargs="+", default=None, help="default: every available ISA")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 3 repeats (smoke test)")
    args = p.parse_args(argv)
    shapes, tokens, repeats = DEFAULT_SHAPES, DEFAULT_TOKENS, args.repeats
    if args.quick:
        shapes, tokens, repeats = QUICK_SHAPES, QUICK_TOKENS, 3
    isas = args.isas or tk.available_isas()
    rows = run(shapes, tokens, isas, args.threads, args.warmup, repeats)
    print_table(rows)
    report = {
        "benchmark": "engine_kernels",
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "available_isas": tk.available_isas(),
        },
        "numpy": np.__version__,
        "torch": torch.__version__,
        "repeats": repeats,
        "results": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
