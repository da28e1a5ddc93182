"""Micro-benchmark: BitLinear forward+backward against nn.Linear on the CPU.

Not a test: it times, it does not assert. Writes JSON (medians over several
runs, with the ratio to nn.Linear in the same run) and prints a table.

    python benchmarks/bitlinear_cpu.py --out bench-results/bitlinear_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ternlab.bitlinear import BitLinear

# (tokens, in_features, out_features): small LM shapes a 2-core CPU can time quickly.
DEFAULT_SHAPES = [(256, 512, 512), (512, 1024, 1024), (512, 1024, 4096), (512, 4096, 1024)]


def _interleaved_medians(steps: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict:
    """Median seconds per step; the variants take turns each round so that the
    noise of a shared machine falls on all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _train_step(layer: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).float().sum().backward()

    return step


def _infer_step(layer: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            layer(x)

    return step


def bench_shape(tokens: int, k: int, n: int, dtype: torch.dtype, warmup: int, repeats: int) -> dict:
    """Time each variant on one shape; returns medians in ms and ratios to nn.Linear."""
    torch.manual_seed(0)
    x = torch.randn(tokens, k, dtype=dtype, requires_grad=True)
    linear = torch.nn.Linear(k, n, bias=False, dtype=dtype)
    bit = BitLinear(k, n, dtype=dtype)
    frozen = BitLinear(k, n, dtype=dtype).freeze()
    steps = {
        "nn.Linear fwd+bwd": _train_step(linear, x),
        "BitLinear fwd+bwd": _train_step(bit, x),
        "nn.Linear fwd": _infer_step(linear, x),
        "BitLinear fwd": _infer_step(bit, x),
        "BitLinear frozen fwd": _infer_step(frozen, x),
    }
    ms = {name: sec * 1e3 for name, sec in _interleaved_medians(steps, warmup, repeats).items()}
    return {
        "tokens": tokens,
        "in_features": k,
        "out_features": n,
        "median_ms": ms,
        "ratio_train_vs_linear": ms["BitLinear fwd+bwd"] / ms["nn.Linear fwd+bwd"],
        "ratio_fwd_vs_linear": ms["BitLinear fwd"] / ms["nn.Linear fwd"],
        "ratio_frozen_vs_linear": ms["BitLinear frozen fwd"] / ms["nn.Linear fwd"],
    }


def _machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _print_table(results: list[dict]) -> None:
    table = Table(title="BitLinear vs nn.Linear on CPU (median ms, ratio to nn.Linear)")
    for col in (
        "shape (T×K→N)",
        "Linear f+b",
        "BitLinear f+b",
        "×",
        "BitLinear fwd ×",
        "frozen fwd ×",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for r in results:
        ms = r["median_ms"]
        table.add_row(
            f"{r['tokens']}×{r['in_features']}→{r['out_features']}",
            f"{ms['nn.Linear fwd+bwd']:.2f}",
            f"{ms['BitLinear fwd+bwd']:.2f}",
            f"{r['ratio_train_vs_linear']:.2f}",
            f"{r['ratio_fwd_vs_linear']:.2f}",
            f"{r['ratio_frozen_vs_linear']:.2f}",
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run every shape, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/bitlinear_cpu.json"))
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per variant (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="first shape only, 3 repeats")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    shapes = DEFAULT_SHAPES[:1] if args.quick else DEFAULT_SHAPES
    repeats = 3 if args.quick else args.repeats
    results = [bench_shape(*s, dtype, args.warmup, repeats) for s in shapes]
    report = {
        "benchmark": "bitlinear_cpu",
        "dtype": args.dtype,
        "repeats": repeats,
        "machine": _machine(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _print_table(results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
